"""Reading a dataset's published files and checking they hold what an importer needs.

Every failure names the file and column and says what was expected, so a user who points an importer at
the wrong folder or a changed download learns what to fix (a :class:`~features.contract.validate.DataError`
or a ``FileNotFoundError``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.contract.errors import DataError

MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}


def dataset_folder(source: str | Path, dataset: str, files: tuple[str, ...]) -> Path:
    """The dataset folder (a file inside it is accepted too), checked to hold every file needed."""
    path = Path(source)
    if path.is_file():
        path = path.parent
    if not path.is_dir():
        raise FileNotFoundError(f"{dataset}: source folder {path} does not exist "
                                f"(expected e.g. ../shared/datasets/{dataset})")
    missing = [f for f in files if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{dataset}: {path} lacks {', '.join(missing)} (expected the dataset folder "
                                f"holding {', '.join(files)})")
    return path


def require_columns(df: pd.DataFrame, file: str, columns: tuple[str, ...] | list[str]) -> None:
    """Fail with the missing source column(s) and the columns found when ``df`` lacks any of ``columns``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        found = ", ".join(map(str, df.columns[:20]))
        raise DataError(file, missing[0] if len(missing) == 1 else None,
                        f"source column{'s' if len(missing) > 1 else ''} {', '.join(missing)} missing "
                        f"(found: {found})")


def read_jsonl(path: Path) -> pd.DataFrame:
    """JSON lines (gzip allowed) via pyarrow: nested objects become dotted columns; blank lines skipped."""
    import pyarrow.json as pj

    try:
        return pj.read_json(path).flatten().to_pandas()
    except Exception as exc:  # pyarrow raises ArrowInvalid (and others) for unreadable input
        raise DataError(path.name, None, f"not readable as JSON lines ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:200]})") from None


def bool_column(s: pd.Series, file: str, column: str) -> np.ndarray:
    """A TRUE/FALSE column (booleans or their text, any case) as a boolean array."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=bool)
    text = s.astype("str").str.strip().str.lower()
    bad = ~text.isin(["true", "false"])
    if bad.any():
        raise DataError(file, column, "a value other than TRUE/FALSE", s[bad].head().tolist(), int(bad.sum()))
    return (text == "true").to_numpy()


def read_csv_file(source: str | Path, dataset: str, file: str, columns: tuple[str, ...],
                  **read_options) -> tuple[Path, pd.DataFrame]:
    """The dataset folder and its one CSV ``file`` (read with ``read_options``), checked to hold ``columns``."""
    folder = dataset_folder(source, dataset, (file,))
    df = pd.read_csv(folder / file, **read_options)
    require_columns(df, file, columns)
    return folder, df
