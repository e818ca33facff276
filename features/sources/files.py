"""The files of a flat data folder: which file holds each table, reading one file, reading the manifest.

A flat data folder holds ``customers`` and ``touchpoints`` (required) and optionally ``outreach``, ``labels`` and
``truth``, each as ``<table>.parquet``, ``<table>.csv`` or ``<table>.csv.gz``, plus an optional ``manifest.json``.
These readers return raw frames; :func:`features.sources.io.read_tables` validates them.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd

from features.contract.errors import DataError
from features.contract.schema import REQUIRED_TABLES, TABLES
from features.contract.validate import TEXT_COLUMNS

FORMATS: tuple[str, ...] = (".parquet", ".csv", ".csv.gz")
MANIFEST = "manifest.json"


def table_files(path: str | Path) -> dict[str, Path]:
    """The file holding each table in a data folder; two formats of one table are an error."""
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"data folder {folder} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder (a data folder holds one file per table)")
    found: dict[str, Path] = {}
    for table in TABLES:
        files = [folder / f"{table}{ext}" for ext in FORMATS if (folder / f"{table}{ext}").is_file()]
        if len(files) > 1:
            names = ", ".join(f.name for f in files)
            raise DataError(table, None, f"found in {len(files)} formats ({names}); keep exactly one",
                            source=str(folder))
        if files:
            found[table] = files[0]
    for table in REQUIRED_TABLES:
        if table not in found:
            names = ", ".join(f"{table}{ext}" for ext in FORMATS)
            raise DataError(table, None, f"required table missing: expected one of {names}",
                            source=str(folder))
    return found


def read_frame(path: str | Path, table: str = "") -> pd.DataFrame:
    """Read one table file by its extension; unreadable files raise a DataError naming the file."""
    path = Path(path)
    table = table or path.name.split(".")[0]
    name = path.name
    try:
        if name.endswith(".parquet"):
            return pd.read_parquet(path, engine="pyarrow")
        if name.endswith((".csv", ".csv.gz")):
            with warnings.catch_warnings():
                # A row longer than the header must fail, not become an index or lose fields.
                warnings.simplefilter("error", pd.errors.ParserWarning)
                header = pd.read_csv(path, nrows=0)
                text = {c: "str" for c in header.columns if c in TEXT_COLUMNS}
                # Only empty fields are missing: ids like "NA" or "null" stay text.
                return pd.read_csv(path, dtype=text, keep_default_na=False, na_values=[""], index_col=False,
                                   low_memory=False)
    except pd.errors.EmptyDataError:
        raise DataError(table, None, f"{name} is empty (no header line)", source=str(path)) from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, UnicodeDecodeError, EOFError, OSError,
            ValueError) as exc:
        kind = "parquet" if name.endswith(".parquet") else "CSV"
        detail = " ".join(str(exc).split())[:200]
        raise DataError(table, None, f"{name} is not a readable {kind} file ({type(exc).__name__}: {detail})",
                        source=str(path)) from None
    raise ValueError(f"{path}: unsupported file type; use {', '.join(FORMATS)}")


def read_manifest(path: str | Path) -> dict:
    """The manifest of a data folder (or a manifest file); an empty dict when there is none."""
    path = Path(path)
    file = path / MANIFEST if path.is_dir() else path
    if not file.is_file():
        return {}
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError("manifest", None, f"{file.name} is not valid JSON ({exc})",
                        source=str(file)) from None
    if not isinstance(manifest, dict):
        raise DataError("manifest", None, f"{file.name} must hold a JSON object", source=str(file))
    return manifest
