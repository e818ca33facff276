"""Benchmark of the full feature set: events per second, peak memory, single-customer latency.

``bench_features(n_events, rng)`` simulates a world with :func:`features.sources.simulation.world.simulate_world`
sized to about ``n_events`` touchpoints (about 107 per customer over 365 days plus the 90-day
horizon, so 10 M events is about 100,000 customers), takes the cutoff after the last event so every
event is featurised, and measures:

- ``events_per_s``: touchpoints / wall time of ``FeaturePipeline.transform`` (best of ``repeats``;
  ``events_per_s_median`` over the same runs), also for ``fit`` and ``fit_transform``;
- ``peak_memory_ratio``: the peak of memory allocated during one ``transform`` (tracemalloc, which
  sees numpy's and pandas' buffers) over the in-memory size of the input tables (deep);
- ``single_customer_ms``: median latency of ``transform`` for one customer with 500 touchpoints on
  the fitted pipeline (what the live service does per request).

The run is CPU-bound; figures depend on the machine and on whatever else is running on it.
"""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from features.builders.pipeline import FeaturePipeline
from features.contract.schema import Tables
from features.contract.validate import validate_tables
from features.sources.simulation.config import SimConfig
from features.sources.simulation.world import simulate_world

EVENTS_PER_CUSTOMER = 107.0  # measured on the default simulator over 365 + 90 days


def _frame_bytes(tables: Tables) -> int:
    return int(
        sum(
            df.memory_usage(deep=True).sum()
            for df in (tables.customers, tables.touchpoints, tables.outreach)
            if df is not None
        )
    )


def one_customer(tables: Tables, n_touchpoints: int = 500) -> Tables:
    """A single customer with ``n_touchpoints`` touchpoints: whole histories of consecutive customers
    of ``tables`` merged under the first one's id (each history stays internally consistent)."""
    tp = tables.touchpoints
    counts = np.bincount(tp["customer_id"].cat.codes.to_numpy(), minlength=tables.n_customers)
    upto = int(np.searchsorted(np.cumsum(counts), n_touchpoints)) + 1
    ids = tables.customers["customer_id"].iloc[:upto]
    first = str(ids.iloc[0])
    part = tp[tp["customer_id"].isin(ids)].copy()
    part["customer_id"] = first
    part = part.sort_values("ts", kind="stable").head(n_touchpoints)
    out = tables.outreach
    if out is not None:
        out = out[out["customer_id"].isin(ids)].copy()
        out["customer_id"] = first
    one = Tables(
        customers=tables.customers.iloc[:1].copy(),
        touchpoints=part.reset_index(drop=True),
        outreach=None if out is None else out.reset_index(drop=True),
    )
    return validate_tables(one, source="bench single customer")[0]


def bench_features(
    n_events: int,
    rng: np.random.Generator,
    *,
    n_jobs: int = 2,
    repeats: int = 3,
    json_path: str | Path | None = None,
    verbose: bool = True,
) -> dict:
    """Simulate about ``n_events`` touchpoints and measure feature throughput, memory and latency."""
    if n_events < 1_000:
        raise ValueError(f"n_events must be at least 1,000, got {n_events}")
    n_customers = max(10, round(n_events / EVENTS_PER_CUSTOMER))
    t0 = time.perf_counter()
    world = simulate_world(SimConfig(n_customers=n_customers, days=365), rng).without_truth()
    sim_s = time.perf_counter() - t0
    tp = world.touchpoints
    cutoff = tp["ts"].max() + pd.Timedelta(seconds=1)
    m = len(tp)
    input_bytes = _frame_bytes(world)

    pipe = FeaturePipeline(n_jobs=n_jobs)
    t0 = time.perf_counter()
    pipe.fit(world, cutoff=cutoff)
    fit_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        F = pipe.transform(world, cutoff=cutoff)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    FeaturePipeline(n_jobs=n_jobs).fit_transform(world, cutoff=cutoff)
    fit_transform_s = time.perf_counter() - t0

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    pipe.transform(world, cutoff=cutoff)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()

    single = one_customer(world)
    lat = []
    for _ in range(200):
        t0 = time.perf_counter()
        pipe.transform(single, cutoff=cutoff)
        lat.append(time.perf_counter() - t0)

    result = {
        "events": m,
        "customers": int(world.n_customers),
        "features": int(F.shape[1]),
        "n_jobs": n_jobs,
        "cpu_count": os.cpu_count(),
        "simulate_s": round(sim_s, 2),
        "fit_s": round(fit_s, 3),
        "transform_s": round(min(times), 3),
        "transform_s_all": [round(t, 3) for t in times],
        "fit_transform_s": round(fit_transform_s, 3),
        "events_per_s": round(m / min(times)),
        "events_per_s_median": round(m / float(np.median(times))),
        "fit_transform_events_per_s": round(m / fit_transform_s),
        "input_bytes": input_bytes,
        "peak_bytes": int(peak),
        "peak_memory_ratio": round(peak / input_bytes, 3),
        "output_bytes": int(F.memory_usage(deep=True).sum()),
        "single_customer_touchpoints": len(single.touchpoints),
        "single_customer_ms": round(float(np.median(lat)) * 1000, 3),
        "single_customer_p95_ms": round(float(np.quantile(lat, 0.95)) * 1000, 3),
        "load_average": list(os.getloadavg()),
    }
    if verbose:
        print(f"features: {m:,} events, {result['customers']:,} customers, {result['features']} columns")
        print(
            f"  transform  {result['transform_s']:.3f} s -> {result['events_per_s'] / 1e6:.2f} M events/s "
            f"(median {result['events_per_s_median'] / 1e6:.2f} M; {n_jobs} threads)"
        )
        print(
            f"  fit            {result['fit_s']:.3f} s;  fit_transform {result['fit_transform_s']:.3f} s "
            f"-> {result['fit_transform_events_per_s'] / 1e6:.2f} M events/s"
        )
        print(
            f"  peak memory    {peak / 2**20:,.0f} MiB = {result['peak_memory_ratio']:.2f} x input "
            f"({input_bytes / 2**20:,.0f} MiB)"
        )
        print(
            f"  one customer   {result['single_customer_touchpoints']} touchpoints: "
            f"{result['single_customer_ms']:.2f} ms median, {result['single_customer_p95_ms']:.2f} ms p95"
        )
        print(
            f"  load average   {', '.join(f'{x:.1f}' for x in result['load_average'])} on {result['cpu_count']} cores"
        )
    if json_path is not None:
        Path(json_path).write_text(json.dumps(result, indent=2))
    return result
