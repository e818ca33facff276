"""Speed benchmark of the simulator: ``engage bench simulate --customers 100000 [--report FILE]``.

Times :func:`features.sources.simulation.world.simulate_world` and (unless ``--no-write``) writing the tables to a
temporary folder with :func:`features.sources.io.write_tables`; returns the figures for the CLI to print.
"""

from __future__ import annotations

import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from features.sources.simulation.config import SimConfig
from features.sources.simulation.world import simulate_world


def bench_simulate(n_customers: int = 100_000, days: int = 365, seed: int = 0, write: bool = True) -> dict:
    """Simulate one world (and write it to a temporary folder when ``write``); return timings and counts."""
    t0 = time.perf_counter()
    tables = simulate_world(
        SimConfig(n_customers=n_customers, days=days, seed=seed), np.random.default_rng(seed)
    )
    sim_s = time.perf_counter() - t0
    out = {
        "customers": n_customers,
        "days": days,
        "touchpoints": len(tables.touchpoints),
        "touchpoints_per_customer": round(len(tables.touchpoints) / n_customers, 1),
        "outreach": len(tables.outreach),
        "simulate_seconds": round(sim_s, 2),
    }
    if write:
        from features.sources.io import write_tables

        tmp = Path(tempfile.mkdtemp(prefix="engage_simbench_"))
        try:
            t1 = time.perf_counter()
            write_tables(tables, tmp / "world")
            out["write_seconds"] = round(time.perf_counter() - t1, 2)
            out["bytes_written"] = sum(p.stat().st_size for p in (tmp / "world").iterdir())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        out["total_seconds"] = round(out["simulate_seconds"] + out["write_seconds"], 2)
    out["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)
    return out
