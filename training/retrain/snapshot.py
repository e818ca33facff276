"""What the job may see: the data folder cut at ``--as-of`` (events at or after it are ignored).

``--as-of`` defaults to the end of the day of the newest touchpoint, so a folder exported today is seen whole.
The cut drops the simulator's ground truth (an operator's data has none), and its manifest says where the
log ends, so that every training step picks its cutoffs from the as-of date and not from the folder's own.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from features.contract.cutoffs import end_of_log, utc_timestamp
from features.contract.schema import Tables


def resolve_as_of(tables: Tables, given: str | None) -> pd.Timestamp:
    """``given`` as a UTC timestamp, else the end of the day of the newest touchpoint."""
    if given is not None:
        try:
            return utc_timestamp(given)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"--as-of {given!r} is not a date or timestamp (use e.g. 2024-06-30)") from exc
    end = end_of_log(tables)
    if end is None:
        raise ValueError("touchpoints: the log is empty, so there is no --as-of to default to")
    return end


def _before(frame: pd.DataFrame | None, column: str, as_of: pd.Timestamp) -> pd.DataFrame | None:
    if frame is None or column not in frame:
        return frame
    ts = pd.to_datetime(frame[column], utc=True)
    return frame[ts.isna() | (ts < as_of)].reset_index(drop=True)


def cut_tables(tables: Tables, as_of: pd.Timestamp) -> Tables:
    """The tables as they stood at ``as_of``: touchpoints, outreach and sign-ups strictly before it, no truth."""
    customers = _before(tables.customers, "signup_ts", as_of)
    cut = tables.with_(touchpoints=_before(tables.touchpoints, "ts", as_of),
                       outreach=_before(tables.outreach, "ts", as_of), truth=None)
    if len(customers) < len(tables.customers):
        cut = cut.subset(customers["customer_id"].astype(str))
    # no "cutoff": each step picks its own from where the log ends (churn: the latest fully labelled one)
    manifest = {"as_of": as_of.isoformat(), "end": as_of.isoformat(), "source": str(tables.meta.get("source", ""))}
    return cut.with_(meta={**tables.meta, "manifest": manifest})


def snapshot_folder(work_dir: Path, tables: Tables, as_of: pd.Timestamp, fingerprint: str) -> Path:
    """Write the cut tables to ``work_dir/snapshot-<as-of>-<fingerprint>`` (kept if already there: same bytes)."""
    from features.sources.io import write_tables

    folder = Path(work_dir) / f"snapshot-{as_of.strftime('%Y%m%dT%H%M%S')}-{fingerprint[:12]}"
    if not (folder / "manifest.json").exists():
        write_tables(tables, folder, overwrite=True)
    return folder


def code_version() -> str:
    """SHA-256 of engage's own source (features and training): the same code gives the same model."""
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for package in ("features", "training"):
        for path in sorted((root / package).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()
