"""Building the data contract's tables from source columns, and finishing an import with its manifest.

The touchpoint helpers build constant columns (channel, kind, direction) as categoricals over the
contract's vocabularies and keep pandas dtypes (tz-aware times, arrow strings) rather than object arrays:
cheap to build and to validate on millions of rows. :func:`finish_import` validates the tables and records
what the dataset has and lacks, the decisions taken and the counts in ``meta["manifest"]``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract.schema import (
    CHANNELS,
    CONSENT_COLUMNS,
    DIRECTIONS,
    KINDS,
    TOUCHPOINT_REQUIRED,
    UTC_NS,
    Tables,
)
from features.contract.validate import validate_tables


def customers_frame(ids: pd.Series, signup: pd.Series | None = None, consent: tuple[str, ...] = (),
                    attributes: pd.DataFrame | None = None) -> pd.DataFrame:
    """A customers table: ids, sign-up (NaT when unknown), consent flags, then static attributes."""
    n = len(ids)
    cols: dict[str, object] = {"customer_id": ids.astype("str").array}
    cols["signup_ts"] = (pd.Series(pd.NaT, index=range(n), dtype=UTC_NS).array if signup is None
                         else pd.Series(signup).astype(UTC_NS).array)
    for channel, col in CONSENT_COLUMNS.items():
        cols[col] = np.full(n, channel in consent)
    out = pd.DataFrame(cols)
    if attributes is not None:
        for c in attributes.columns:
            out[c] = attributes[c].to_numpy()
    return out


def empty_touchpoints() -> pd.DataFrame:
    """A touchpoints table without rows, for datasets that have no event log."""
    return pd.DataFrame({c: pd.Series([], dtype=UTC_NS if c == "ts" else "str") for c in TOUCHPOINT_REQUIRED})


def constant_category(value: str, vocab: tuple[str, ...], n: int) -> pd.Categorical:
    """A constant column as a categorical over the contract's vocabulary (cheap to build and validate)."""
    return pd.Categorical.from_codes(np.full(n, vocab.index(value), dtype=np.int8),
                                     categories=pd.Index(vocab, dtype="str"))


def column_values(value, n: int):
    """Column data that keeps pandas dtypes (tz-aware times, arrow strings) instead of object arrays."""
    if isinstance(value, pd.Series | pd.Index):
        return value.array
    if np.isscalar(value) or value is None:
        return np.full(n, value, dtype=object if value is None or isinstance(value, str) else None)
    return value


def touch(customer_id, ts, channel: str, kind: str, direction: str = "inbound", **extra) -> pd.DataFrame:
    """Touchpoint rows sharing one channel/kind/direction."""
    n = len(customer_id)
    frame = {"customer_id": column_values(customer_id, n), "ts": column_values(ts, n),
             "channel": constant_category(channel, CHANNELS, n), "kind": constant_category(kind, KINDS, n),
             "direction": constant_category(direction, DIRECTIONS, n)}
    frame.update({k: column_values(v, n) for k, v in extra.items()})
    return pd.DataFrame(frame)


def concat_touch(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The non-empty touchpoint frames one after the other (an empty table when there are none)."""
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else empty_touchpoints()


def finish_import(name: str, folder: Path, tables: Tables, manifest: dict, notes: dict[str, list[str]],
                  start: float) -> Tables:
    """Validate the imported tables and attach the manifest (dataset, decisions, counts, ``notes``).

    ``notes`` says what the dataset has and lacks (``{"has": [...], "lacks": [...]}``); ``start`` is the
    ``time.perf_counter()`` reading when the import began.
    """
    valid, report = validate_tables(tables, source=f"import {name} from {folder}")
    counts = {t: len(getattr(valid, t)) for t in ("customers", "touchpoints", "outreach", "labels")
              if getattr(valid, t) is not None}
    if len(valid.touchpoints):
        counts["touchpoints_by_kind"] = {
            str(k): int(v) for k, v in valid.touchpoints["kind"].value_counts(sort=False).items() if v}
    if report.duplicate_touchpoints_dropped:
        dropped = manifest.setdefault("dropped", {})
        dropped["exact_duplicate_touchpoints"] = report.duplicate_touchpoints_dropped
    full = {"dataset": name, "source": str(folder), "kind": "import", "counts": counts, **manifest, **notes}
    meta = {**valid.meta, "manifest": full, "import_seconds": round(time.perf_counter() - start, 3)}
    return valid.with_(meta=meta)
