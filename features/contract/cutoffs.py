"""Points in time: every timestamp the system compares is a UTC ``pd.Timestamp``, and every command that
evaluates or scores a data folder without an explicit cutoff picks it by one rule, defined here."""

from __future__ import annotations

from typing import Literal

import pandas as pd

from features.contract.schema import Tables

Fallback = Literal["end_of_log", "now", "none"]


def utc_timestamp(value) -> pd.Timestamp:
    """``value`` (text, datetime, Timestamp, numpy datetime) as a UTC Timestamp; naive values are read as UTC."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def end_of_log(tables: Tables) -> pd.Timestamp | None:
    """Midnight UTC after the last touchpoint: a cutoff that sees every event of the log (None when empty)."""
    ts = tables.touchpoints["ts"] if len(tables.touchpoints) else None
    if ts is None or ts.isna().all():
        return None
    return utc_timestamp(ts.max()).floor("D") + pd.Timedelta(days=1)


def evaluation_cutoff(tables: Tables, given=None, *, fallback: Fallback = "end_of_log") -> pd.Timestamp | None:
    """The cutoff to evaluate or score ``tables`` at.

    In order: ``given``; the manifest's ``cutoff`` (simulated worlds record theirs); the ``labels`` table's
    ``cutoff`` column (one value); then ``fallback``: ``end_of_log`` (see :func:`end_of_log`), ``now``, or
    ``none`` (return None and let the caller decide).
    """
    if given is not None:
        return utc_timestamp(given)
    manifest = tables.meta.get("manifest") or {}
    if manifest.get("cutoff"):
        return utc_timestamp(manifest["cutoff"])
    labels = tables.labels
    if labels is not None and "cutoff" in labels and labels["cutoff"].notna().any():
        cutoffs = pd.to_datetime(labels["cutoff"], utc=True).dropna().unique()
        if len(cutoffs) > 1:
            raise ValueError(f"labels.cutoff: {len(cutoffs)} different cutoffs; one per folder is supported")
        return utc_timestamp(cutoffs[0])
    if fallback == "now":
        return pd.Timestamp.now(tz="UTC")
    if fallback == "end_of_log":
        return end_of_log(tables)
    return None
