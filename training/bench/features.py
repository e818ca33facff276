"""Benchmark of the full feature set: events per second, peak memory, single-customer latency.

``bench_features(n_events, rng)`` simulates a world with :func:`features.sources.simulation.world.simulate_world`
sized to about ``n_events`` touchpoints (``EVENTS_PER_CUSTOMER`` per customer over a year plus the churn
horizon), takes the cutoff after the last event so every event is featurised, and measures:

- ``events_per_s``: touchpoints / wall time of ``FeaturePipeline.transform`` (best of ``repeats``;
  ``events_per_s_median`` over the same runs), also for ``fit`` and ``fit_transform``;
- ``peak_memory_ratio``: the peak of memory allocated during one ``transform`` (tracemalloc, which
  sees numpy's and pandas' buffers) over the in-memory size of the input tables (deep);
- ``single_customer_ms``: median latency of ``transform`` for one customer with 500 touchpoints on
  the fitted pipeline (what the live service does per request);
- ``ratio_to_pandas_reference``: engage's median events/s over the hand-vectorised pandas reference's
  (``../shared/reference``, :mod:`training.bench.reference`) run in the same process on the same events;
  ``ratio_to_pandas_reference_own_log`` against the reference on its own synthetic log of the same size;
  ``ratio_to_pandas_reference_per_feature`` scales the first by the feature columns each builds.
  Without the reference they are ``null`` and ``pandas_reference_skipped`` says why;
- ``transform_cpu_s_per_m_events`` (and the reference's ``cpu_s_per_m_events``): CPU seconds of all threads
  per million events, which other load on the machine sways less than wall time.

The run is CPU-bound; figures depend on the machine and on whatever else is running on it.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.builders.kernel_mode import feature_path_name
from features.builders.pipeline import FeaturePipeline
from features.contract.schema import Tables
from features.contract.validate import validate_tables
from features.sources.simulation.config import SimConfig
from features.sources.simulation.world import simulate_world
from training.bench import reference as yardstick

EVENTS_PER_CUSTOMER = 107.0  # the default simulator's touchpoints per customer over 365 + 90 days


@dataclass(frozen=True)
class BenchWorld:
    """The simulated input: tables without truth, the cutoff after the last event, and how long it took."""

    tables: Tables
    cutoff: pd.Timestamp
    simulate_s: float


@dataclass(frozen=True)
class PipelineTimes:
    """Wall times of the whole-log pipeline runs and the shape of its output."""

    fit_s: float
    transform_s: list[float]
    transform_cpu_s: list[float]
    fit_transform_s: float
    features: int
    output_bytes: int


@dataclass(frozen=True)
class SingleCustomer:
    """Latencies of ``transform`` on one customer with a long history."""

    touchpoints: int
    seconds: list[float]


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


def simulated_world(n_events: int, rng: np.random.Generator) -> BenchWorld:
    """A simulated world of about ``n_events`` touchpoints, cut after its last event."""
    if n_events < 1_000:
        raise ValueError(f"n_events must be at least 1,000, got {n_events}")
    n_customers = max(10, round(n_events / EVENTS_PER_CUSTOMER))
    t0 = time.perf_counter()
    tables = simulate_world(SimConfig(n_customers=n_customers, days=365), rng).without_truth()
    simulate_s = time.perf_counter() - t0
    return BenchWorld(tables, tables.touchpoints["ts"].max() + pd.Timedelta(seconds=1), simulate_s)


def time_pipeline(world: BenchWorld, n_jobs: int, repeats: int) -> tuple[FeaturePipeline, PipelineTimes]:
    """Fit a pipeline, time ``repeats`` transforms and one fresh ``fit_transform``; the fitted pipeline too."""
    pipe = FeaturePipeline(n_jobs=n_jobs)
    t0 = time.perf_counter()
    pipe.fit(world.tables, cutoff=world.cutoff)
    fit_s = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        F = pipe.transform(world.tables, cutoff=world.cutoff)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    t0 = time.perf_counter()
    FeaturePipeline(n_jobs=n_jobs).fit_transform(world.tables, cutoff=world.cutoff)
    fit_transform_s = time.perf_counter() - t0
    output_bytes = int(F.memory_usage(deep=True).sum())
    return pipe, PipelineTimes(fit_s, times, cpu, fit_transform_s, int(F.shape[1]), output_bytes)


def peak_transform_bytes(pipe: FeaturePipeline, world: BenchWorld) -> int:
    """Peak bytes allocated during one ``transform`` of the whole log (tracemalloc)."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    pipe.transform(world.tables, cutoff=world.cutoff)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return int(peak)


def single_customer_latency(pipe: FeaturePipeline, world: BenchWorld, calls: int = 200) -> SingleCustomer:
    """Seconds of ``calls`` transforms of one 500-touchpoint customer on the fitted pipeline."""
    single = one_customer(world.tables)
    lat = []
    for _ in range(calls):
        t0 = time.perf_counter()
        pipe.transform(single, cutoff=world.cutoff)
        lat.append(time.perf_counter() - t0)
    return SingleCustomer(len(single.touchpoints), lat)


def pandas_reference(world: BenchWorld, *, own_log: bool, repeats: int) -> dict:
    """The pandas reference's figures on the same events (and on its own log): the ``pandas_reference*`` keys."""
    ref, reason = yardstick.load_reference()
    if ref is None:
        return {"pandas_reference": None, "pandas_reference_own_log": None, "pandas_reference_skipped": reason}
    same = yardstick.reference_on_same_events(ref, world.tables, world.cutoff, repeats)
    own = yardstick.reference_on_own_log(ref, len(world.tables.touchpoints), repeats) if own_log else None
    return {"pandas_reference": same, "pandas_reference_own_log": own, "pandas_reference_path": str(ref.path)}


def bench_features(
    n_events: int,
    rng: np.random.Generator,
    *,
    n_jobs: int = 2,
    repeats: int = 3,
    reference: bool = True,
    reference_own_log: bool = True,
) -> dict:
    """Simulate about ``n_events`` touchpoints and measure feature throughput, memory and latency, beside the
    pandas reference on the same events (``reference``) and on its own log (``reference_own_log``)."""
    world = simulated_world(n_events, rng)
    m = len(world.tables.touchpoints)
    input_bytes = _frame_bytes(world.tables)
    pipe, times = time_pipeline(world, n_jobs, repeats)
    load_engage = list(os.getloadavg())
    refs = (
        pandas_reference(world, own_log=reference_own_log, repeats=repeats)
        if reference
        else {"pandas_reference": None, "pandas_reference_own_log": None, "pandas_reference_skipped": "--no-reference"}
    )
    peak = peak_transform_bytes(pipe, world)
    single = single_customer_latency(pipe, world)
    best = min(times.transform_s)
    median_eps = m / float(np.median(times.transform_s))
    return {
        "events": m,
        "customers": int(world.tables.n_customers),
        "features": times.features,
        "n_jobs": n_jobs,
        "cpu_count": os.cpu_count(),
        "feature_path": feature_path_name(),
        "simulate_s": round(world.simulate_s, 2),
        "fit_s": round(times.fit_s, 3),
        "transform_s": round(best, 3),
        "transform_s_all": [round(t, 3) for t in times.transform_s],
        "fit_transform_s": round(times.fit_transform_s, 3),
        "events_per_s": round(m / best),
        "events_per_s_median": round(median_eps),
        "fit_transform_events_per_s": round(m / times.fit_transform_s),
        "ratio_to_pandas_reference": yardstick.ratio(median_eps, refs["pandas_reference"]),
        "ratio_to_pandas_reference_own_log": yardstick.ratio(median_eps, refs["pandas_reference_own_log"]),
        # The same ratio per feature column built (engage builds more columns, with decays and fitted trends).
        "ratio_to_pandas_reference_per_feature": yardstick.per_feature(
            yardstick.ratio(median_eps, refs["pandas_reference"]), times.features, refs["pandas_reference"]),
        # CPU seconds (all threads) per million events: less swayed by other load than wall time.
        "transform_cpu_s_per_m_events": round(float(np.median(times.transform_cpu_s)) * 1e6 / m, 4),
        **refs,
        "input_bytes": input_bytes,
        "peak_bytes": peak,
        "peak_memory_ratio": round(peak / input_bytes, 3),
        "output_bytes": times.output_bytes,
        "single_customer_touchpoints": single.touchpoints,
        "single_customer_ms": round(float(np.median(single.seconds)) * 1000, 3),
        "single_customer_p95_ms": round(float(np.quantile(single.seconds, 0.95)) * 1000, 3),
        "load_average_engage": load_engage,
        "load_average": list(os.getloadavg()),
    }
