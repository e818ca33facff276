"""Benchmark of the decision system's scoring path: ``engage bench system [--model-uri PATH] [--report FILE]``.

Scores customers with 500 raw touchpoints each through :meth:`DecisionSystem.score` (features +
churn + policy, in process, no HTTP) and a feature table through :meth:`DecisionSystem.score_features`,
and returns the figures (``engage bench system`` prints them as JSON):

- ``single``: one customer per call — p50/p90/p99 ms;
- ``batch_16`` / ``batch_1000``: one call with 16 / 1,000 customers — ms and customers/s;
- ``feature_table``: ``score_features`` on ``table_rows`` precomputed rows — customers/s with reason
  codes for everyone, for customers with churn probability ≥ 0.5 only, and without reason codes;
  with a policy, ``policy_s`` splits its seconds (effect + value models, decision rule, decision rule
  with binding budget and call limits);
- ``builders_ms``: where the feature pipeline's time goes, per family (wall time inside each
  builder's block computation, the event indexing and the table assembly) for 1, 16 and 1,000
  customers. With threads (``n_jobs`` > 1, 1,000 customers) family times overlap.

The system is ``--model-uri PATH`` (a pickled :class:`~features.system.DecisionSystem` or its model data
folder, e.g. one registered by ``engage train policy``); without it a churn-only system is fitted on a
simulated world (no policy: its figures are then absent). Scoring customers are whole simulated
histories spliced into 500-touchpoint customers. CPU-bound: figures depend on the machine and its load.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from features.builders.kernel_mode import feature_path_name
from features.builders.pipeline import FeaturePipeline
from features.contract.cutoffs import evaluation_cutoff
from features.contract.schema import Tables
from features.contract.validate import validate_tables
from features.labels import make_labels
from features.models.churn import ChurnModel
from features.sources.simulation.config import SimConfig
from features.sources.simulation.world import simulate_world
from features.system import DecisionSystem, load_system_file


def fit_churn_system(world: Tables, cutoff: pd.Timestamp, seed: int = 1) -> DecisionSystem:
    """A churn-only decision system fitted on ``world`` (train 180 days, validate 90 days before ``cutoff``)."""
    train_at, val_at = cutoff - pd.Timedelta(days=180), cutoff - pd.Timedelta(days=90)
    tables = world.without_truth()
    pipe = FeaturePipeline().fit(tables, cutoff=train_at)
    labels = make_labels(world, [train_at, val_at])

    def frame(at: pd.Timestamp) -> tuple[pd.DataFrame, np.ndarray]:
        keys = labels[labels["cutoff"] == at]
        return pipe.transform(tables, cutoff=at).loc[keys["customer_id"]], keys["label"].to_numpy()

    F_tr, y_tr = frame(train_at)
    F_va, y_va = frame(val_at)
    model = ChurnModel(seed=seed).fit(F_tr, y_tr, F_va, y_va)
    return DecisionSystem(pipe, model, metadata={"model_version": "bench"})


def spliced_customers(world: Tables, cutoff, n: int, touchpoints: int, rng: np.random.Generator) -> Tables:
    """``n`` customers with ``touchpoints`` events each before ``cutoff``: consecutive whole histories of
    randomly ordered simulated customers, cut into runs of ``touchpoints`` events (validated tables)."""
    tp = world.touchpoints[world.touchpoints["ts"] < cutoff]
    codes = tp["customer_id"].cat.codes.to_numpy()
    src = world.customers.reset_index(drop=True)
    runs: list[np.ndarray] = []
    need = n * touchpoints
    while sum(len(r) for r in runs) < need:
        order = rng.permutation(len(src))
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        runs.append(np.lexsort((tp["ts"].to_numpy(), rank[codes])))
    rows = np.concatenate(runs)[:need]
    part = tp.iloc[rows].reset_index(drop=True)
    ids = np.array([f"bench-{i:06d}" for i in range(n)], dtype=object)
    first = codes[rows[::touchpoints]]
    customers = src.iloc[first].reset_index(drop=True).assign(customer_id=ids)
    part = part.assign(customer_id=np.repeat(ids, touchpoints))
    part = part.sort_values(["customer_id", "ts"], kind="stable").reset_index(drop=True)
    tables, _ = validate_tables(Tables(customers=customers, touchpoints=part), source="bench customers")
    return tables


def _ms(samples: list[float]) -> dict[str, float]:
    a = 1000 * np.asarray(samples)
    return {f"p{q}_ms": round(float(np.percentile(a, q)), 3) for q in (50, 90, 99)}


class _Timer:
    """Accumulates wall time of wrapped callables by key (instance attributes only; files untouched)."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.saved: tuple = ()

    def wrap(self, owner: object, name: str, key: str) -> None:
        fn = getattr(owner, name)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total[key] += time.perf_counter() - t0

        setattr(owner, name, timed)


def _instrumented(system: DecisionSystem) -> tuple[DecisionSystem, _Timer]:
    import pickle

    import features.builders.event_source as events
    import features.builders.pipeline as pipeline_module

    copy = pickle.loads(pickle.dumps(system))
    timer = _Timer()
    for family, builder in copy.pipeline.builders_:
        timer.wrap(builder, "_block", family)
    timer.wrap(copy.pipeline, "transform", "features (total)")
    timer.wrap(copy.churn_model, "predict_with_reasons", "churn")
    if copy.policy is not None:
        timer.wrap(copy.policy, "decide", "policy")
    # Module-level helpers are wrapped for the measurement only and restored after it.
    timer.saved = (events.EventSource.__init__, pipeline_module.to_frame)
    timer.wrap(events.EventSource, "__init__", "event indexing")
    timer.wrap(pipeline_module, "to_frame", "table assembly")
    return copy, timer


def _restore(timer: _Timer) -> None:
    import features.builders.event_source as events
    import features.builders.pipeline as pipeline_module

    events.EventSource.__init__, pipeline_module.to_frame = timer.saved


def _repeat(fn: Callable[[], object], min_s: float = 0.3, max_n: int = 50) -> float:
    """Median seconds of ``fn`` over repeated calls (at least 3, up to ``max_n`` or ``min_s``)."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (len(times) < max_n and time.perf_counter() - start < min_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _policy_split(policy, F: pd.DataFrame, churn: np.ndarray) -> dict[str, float]:
    """Seconds of the policy on a feature table: effect and value models, the decision rule, and the
    decision rule again with binding global limits (the constrained assignment)."""
    from features.decision.config import LimitConfig

    t0 = time.perf_counter()
    policy.expected_values(F)
    t1 = time.perf_counter()
    policy.decide(F, churn)
    t2 = time.perf_counter()
    # A budget of a few contacts per hundred customers and a call quota bind on any realistic policy.
    tight = replace(policy.config, limits=LimitConfig(budget=0.05 * len(F), per_channel={"call": len(F) // 200}))
    policy.decide(F, churn, config=tight)
    t3 = time.perf_counter()
    return {
        "expected_values": round(t1 - t0, 3),
        "decide_total": round(t2 - t1, 3),
        "decide_total_with_binding_limits": round(t3 - t2, 3),
    }


@dataclass(frozen=True)
class ScoringSets:
    """The scoring customers and the calls made with them: one customer, 16 customers, all of them."""

    everyone: Tables
    singles: list[Tables]
    sixteens: list[Tables]


def scoring_sets(customers: Tables, singles: int) -> ScoringSets:
    """``singles`` one-customer subsets and 20 sixteen-customer subsets of ``customers`` (at least 1,000)."""
    ids = customers.customers["customer_id"]
    if len(ids) < 1000:
        raise ValueError(f"bench customers: need at least 1000, got {len(ids)}")
    one = [customers.subset(ids.iloc[[i % len(ids)]]) for i in range(singles)]
    sixteen = [customers.subset(ids.iloc[16 * i : 16 * i + 16]) for i in range(20)]
    return ScoringSets(customers, one, sixteen)


def single_latency(system: DecisionSystem, sets: ScoringSets, cutoff) -> dict[str, float]:
    """p50/p90/p99 of scoring one customer per call (after a few warm-up calls)."""
    for t in sets.singles[:5]:
        system.score(t, cutoff)
    lat = []
    for t in sets.singles:
        t0 = time.perf_counter()
        system.score(t, cutoff)
        lat.append(time.perf_counter() - t0)
    return _ms(lat)


def batch_figures(system: DecisionSystem, sets: ScoringSets, cutoff) -> dict[str, dict]:
    """Milliseconds and customers/s of one call with 16 customers and one with all of them."""
    s16 = float(np.median([_repeat(lambda t=t: system.score(t, cutoff), 0, 1) for t in sets.sixteens]))
    s_all = _repeat(lambda: system.score(sets.everyone, cutoff), 1.0, 5)
    n = sets.everyone.n_customers
    return {
        "batch_16": {"ms": round(1000 * s16, 2), "customers_per_s": round(16 / s16, 1)},
        "batch_1000": {"ms": round(1000 * s_all, 1), "customers_per_s": round(n / s_all, 1)},
    }


def feature_table_figures(system: DecisionSystem, sets: ScoringSets, cutoff, table_rows: int) -> dict:
    """Customers/s of ``score_features`` on ``table_rows`` precomputed rows, with and without reason codes."""
    F = system.features(sets.everyone, cutoff)
    reps = -(-table_rows // len(F))
    big = pd.concat([F] * reps).iloc[:table_rows]
    big.index = pd.Index([f"row-{i:07d}" for i in range(len(big))], name=F.index.name)
    table: dict = {"rows": len(big)}
    for name, kwargs in (
        ("with_reasons", {}),
        ("reasons_if_p_ge_0.5", {"reasons_min_probability": 0.5}),
        ("no_reasons", {"reasons": 0}),
    ):
        t0 = time.perf_counter()
        system.score_features(big, **kwargs)
        table[f"{name}_customers_per_s"] = round(len(big) / (time.perf_counter() - t0), 1)
    t0 = time.perf_counter()
    p = system.churn_model.predict_proba(big)
    table["churn_probability_only_customers_per_s"] = round(len(big) / (time.perf_counter() - t0), 1)
    if system.policy is not None:
        table["policy_s"] = _policy_split(system.policy, big, p)
    return table


def builders_breakdown(system: DecisionSystem, sets: ScoringSets, cutoff) -> dict[str, dict[str, float]]:
    """Milliseconds per call spent in each feature family and scoring step, for 1, 16 and all customers."""
    copy, timer = _instrumented(system)
    try:
        builders: dict = {}
        for label, subsets in (("1", sets.singles[:50]), ("16", sets.sixteens), ("1000", [sets.everyone] * 3)):
            copy.score(subsets[0], cutoff)
            timer.total.clear()
            for t in subsets:
                copy.score(t, cutoff)
            builders[label] = {
                k: round(1000 * v / len(subsets), 3) for k, v in sorted(timer.total.items(), key=lambda kv: -kv[1])
            }
    finally:
        _restore(timer)
    return builders


def bench_system(
    system: DecisionSystem,
    customers: Tables,
    cutoff,
    *,
    singles: int = 200,
    table_rows: int = 50_000,
    breakdown: bool = True,
) -> dict:
    """The scoring benchmark of ``system`` on ``customers`` (at least 1,000 of them) at ``cutoff``."""
    sets = scoring_sets(customers, singles)
    out: dict = {"single": single_latency(system, sets, cutoff), "policy": system.policy is not None}
    out.update(batch_figures(system, sets, cutoff))
    out["feature_table"] = feature_table_figures(system, sets, cutoff, table_rows)
    if breakdown:
        out["builders_ms"] = builders_breakdown(system, sets, cutoff)
    return out


def run_bench_system(
    system_path: Path | None,
    *,
    customers: int = 1000,
    touchpoints: int = 500,
    table_rows: int = 50_000,
    seed: int = 1,
    breakdown: bool = True,
) -> dict:
    """Load ``system_path`` (or fit a churn-only system on a simulated world), splice the scoring customers
    from a simulated world and run :func:`bench_system`; the figures with the setup they were measured in."""
    rng = np.random.default_rng(seed)
    world = simulate_world(SimConfig(n_customers=2000, days=400, seed=seed), rng)
    cutoff = evaluation_cutoff(world)
    system = load_system_file(system_path) if system_path else fit_churn_system(world, cutoff, seed)
    scoring = spliced_customers(world, cutoff, customers, touchpoints, rng)
    result = bench_system(system, scoring, cutoff, table_rows=table_rows, breakdown=breakdown)
    result["setup"] = {
        "system": str(system_path) if system_path else "fitted churn-only (simulated world)",
        "touchpoints_per_customer": touchpoints,
        "customers": customers,
        "seed": seed,
        "feature_path": feature_path_name(),  # compiled kernel or numpy (ENGAGE_FEATURE_KERNEL)
    }
    result["load_average"] = list(os.getloadavg())
    return result
