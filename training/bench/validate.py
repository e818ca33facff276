"""Validation speed: how long :func:`features.contract.validate.validate_tables` takes on a large touchpoint log.

Builds a synthetic log (``n_events`` touchpoints, about 100 per customer) and times validation in the
shapes data arrives in: typed and sorted (a folder written by engage), typed but in time order (an
export), plain text as a CSV reader leaves it (ids, categories and ISO timestamps as text), and a full
``read_tables`` of a parquet folder. Returns the figures (``engage bench validate`` prints them); no assertion
on speed lives in the tests.
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract.schema import CHANNELS, DIRECTIONS, KINDS, OUTREACH_CHANNELS, REFERRERS, Tables


def synthetic_log(n_events: int, rng: np.random.Generator, *, per_customer: int = 100) -> Tables:
    """A contract-shaped customer base with ``n_events`` touchpoints in (customer, ts) order."""
    n_cus = max(1, n_events // per_customer)
    ids = pd.Index([f"C{i:08d}" for i in range(n_cus)], dtype="str")
    start = pd.Timestamp("2024-01-01", tz="UTC").value
    customers = pd.DataFrame({
        "customer_id": pd.Series(ids, dtype="str"),
        "signup_ts": pd.to_datetime(start - rng.integers(0, 3 * 365 * 86_400, n_cus) * 10**9, utc=True),
        **{f"consent_{c}": rng.random(n_cus) < 0.6 for c in OUTREACH_CHANNELS},
    })
    codes = rng.integers(0, n_cus, n_events).astype(np.int32)
    ts = start + rng.integers(0, 365 * 86_400, n_events) * 10**9
    order = np.lexsort((ts, codes))
    codes, ts = codes[order], ts[order]
    kind = rng.integers(0, len(KINDS), n_events)
    kind[kind == KINDS.index("return")] = KINDS.index("purchase")  # keep amounts non-negative simply
    touchpoints = pd.DataFrame({
        "customer_id": pd.Categorical.from_codes(codes, categories=ids),
        "ts": pd.to_datetime(ts, utc=True),
        "channel": pd.Categorical.from_codes(rng.integers(0, len(CHANNELS), n_events),
                                             categories=list(CHANNELS)),
        "kind": pd.Categorical.from_codes(kind, categories=list(KINDS)),
        "direction": pd.Categorical.from_codes(rng.integers(0, 2, n_events), categories=list(DIRECTIONS)),
        "referrer": pd.Categorical.from_codes(rng.integers(-1, len(REFERRERS), n_events),
                                              categories=list(REFERRERS)),
        "duration_s": np.round(rng.exponential(90.0, n_events), 1),
        "pages": rng.integers(0, 12, n_events).astype(np.float64),
        "amount": np.where(rng.random(n_events) < 0.08, np.round(rng.exponential(40.0, n_events), 2), np.nan),
        "sentiment": np.where(rng.random(n_events) < 0.05, rng.uniform(-1, 1, n_events), np.nan),
    })
    return Tables(customers=customers, touchpoints=touchpoints)


def _as_text(tp: pd.DataFrame) -> pd.DataFrame:
    """The log as a CSV reader leaves it: text ids, categories and ISO 8601 timestamps."""
    ts = tp["ts"].to_numpy(dtype="datetime64[ns]").astype("datetime64[s]")
    out = tp.astype({c: "str" for c in ("customer_id", "channel", "kind", "direction", "referrer")})
    out["ts"] = pd.Series(np.datetime_as_string(ts, unit="s", timezone="UTC"), dtype="str")
    return out


def _timed(func) -> float:
    start = time.perf_counter()
    func()
    return round(time.perf_counter() - start, 3)


def bench_validation(n_events: int, rng: np.random.Generator, *, with_io: bool = True) -> dict:
    """Seconds to validate ``n_events`` touchpoints in several input shapes, plus events/s and peak memory."""
    from features.contract.validate import validate_tables
    from features.sources.io import read_tables, write_tables

    tables = synthetic_log(n_events, rng)
    cus, tp = tables.customers, tables.touchpoints
    by_time = tp.iloc[np.argsort(tp["ts"].to_numpy(), kind="stable")].reset_index(drop=True)
    shapes = {
        "typed_sorted": tables,
        "typed_time_ordered": Tables(cus, by_time),
        "text_time_ordered": Tables(cus, _as_text(by_time)),
    }
    validate_tables(tables.subset(cus["customer_id"].iloc[:10]))  # warm-up: imports and first calls
    seconds = {}
    for name in list(shapes):
        data = shapes.pop(name)  # free each input once timed
        seconds[name] = _timed(lambda data=data: validate_tables(data))
    if with_io:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "world"
            seconds["write_tables_parquet"] = _timed(lambda: write_tables(tables, folder))
            seconds["read_tables_parquet"] = _timed(lambda: read_tables(folder))
    return {
        "events": n_events,
        "customers": len(cus),
        "seconds": seconds,
        "events_per_second": {k: round(n_events / v) for k, v in seconds.items() if v > 0},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
