"""The reference data profile: what a healthy export looks like, stored with each model version the job trains.

Computed over the last ``window_days`` before the as-of date, so that a broken export of the newest week shows:
touchpoints and active customers per day, each channel's and kind's share of the volume, each column's share
of missing values (touchpoints of the window, and the customers table), and the newest timestamp. It holds
counts and shares only, never a customer's row.
"""

from __future__ import annotations

import pandas as pd

from features.contract.schema import Tables


def _shares(values: pd.Series) -> dict[str, float]:
    counts = values.astype("string").fillna("(missing)").value_counts()
    total = max(int(counts.sum()), 1)
    return {str(k): round(float(v) / total, 6) for k, v in counts.sort_index().items()}


def _missing(frame: pd.DataFrame, skip: tuple[str, ...] = ("customer_id",)) -> dict[str, float]:
    if not len(frame):
        return {}
    return {c: round(float(frame[c].isna().mean()), 6) for c in frame.columns if c not in skip}


def data_profile(tables: Tables, as_of: pd.Timestamp, window_days: int) -> dict:
    """The profile of ``tables`` (already cut at ``as_of``) over its last ``window_days``."""
    tp = tables.touchpoints
    ts = pd.to_datetime(tp["ts"], utc=True)
    start = as_of - pd.Timedelta(days=window_days)
    recent = tp[(ts >= start) & (ts < as_of)]
    days = ts[(ts >= start) & (ts < as_of)].dt.floor("D")
    active = recent.assign(day=days)[["customer_id", "day"]].drop_duplicates()
    newest = ts.max() if len(ts) else None
    return {
        "as_of": as_of.isoformat(),
        "window_days": int(window_days),
        "newest_touchpoint": None if newest is None or pd.isna(newest) else newest.isoformat(),
        "customers": len(tables.customers),
        "touchpoints": len(tp),
        "touchpoints_per_day": round(len(recent) / window_days, 3),
        "customers_per_day": round(len(active) / window_days, 3),
        "channel_share": _shares(recent["channel"]) if len(recent) else {},
        "kind_share": _shares(recent["kind"]) if len(recent) else {},
        "missing_share": {
            **{f"touchpoints.{k}": v for k, v in _missing(recent).items()},
            **{f"customers.{k}": v for k, v in _missing(tables.customers).items()},
        },
    }
