"""Benchmark of the decision system's scoring path: ``python -m training.bench.system [--json FILE]``.

Scores customers with 500 raw touchpoints each through :meth:`DecisionSystem.score` (features +
churn + policy, in process, no HTTP) and a feature table through :meth:`DecisionSystem.score_features`,
and prints the figures and a JSON document:

- ``single``: one customer per call — p50/p90/p99 ms, and the median split into features, churn
  (probability + reason codes) and policy;
- ``batch_16`` / ``batch_1000``: one call with 16 / 1,000 customers — ms and customers/s;
- ``feature_table``: ``score_features`` on ``table_rows`` precomputed rows — customers/s with reason
  codes for everyone, for customers with churn probability ≥ 0.5 only, and without reason codes;
  with a policy, ``policy_s`` splits its seconds (effect + value models, decision rule, decision rule
  with binding budget and call limits);
- ``builders_ms``: where the feature pipeline's time goes, per family (wall time inside each
  builder's block computation, the event indexing and the table assembly) for 1, 16 and 1,000
  customers. With threads (``n_jobs`` > 1, 1,000 customers) family times overlap.

The system is ``--system PATH`` (a pickled :class:`~features.system.DecisionSystem` or its model data
folder, e.g. one registered by ``engage train policy``); without it a churn-only system is fitted on a
simulated world (no policy: its figures are then absent). Scoring customers are whole simulated
histories spliced into 500-touchpoint customers. CPU-bound: figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from features.builders.pipeline import FeaturePipeline
from features.contract.cutoffs import evaluation_cutoff
from features.contract.schema import Tables
from features.contract.validate import validate_tables
from features.labels import make_labels
from features.models.churn import ChurnModel
from features.sources.simulation.world import SimConfig, simulate_world
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

    import features.builders.events as events
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
    import features.builders.events as events
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
    ids = customers.customers["customer_id"]
    if len(ids) < 1000:
        raise ValueError(f"bench customers: need at least 1000, got {len(ids)}")
    one = [customers.subset(ids.iloc[[i % len(ids)]]) for i in range(singles)]
    sixteen = [customers.subset(ids.iloc[16 * i : 16 * i + 16]) for i in range(20)]
    for t in one[:5]:
        system.score(t, cutoff)
    lat = []
    for t in one:
        t0 = time.perf_counter()
        system.score(t, cutoff)
        lat.append(time.perf_counter() - t0)
    out: dict = {"single": _ms(lat), "policy": system.policy is not None}
    s16 = float(np.median([_repeat(lambda t=t: system.score(t, cutoff), 0, 1) for t in sixteen]))
    out["batch_16"] = {"ms": round(1000 * s16, 2), "customers_per_s": round(16 / s16, 1)}
    s1000 = _repeat(lambda: system.score(customers, cutoff), 1.0, 5)
    out["batch_1000"] = {"ms": round(1000 * s1000, 1), "customers_per_s": round(len(ids) / s1000, 1)}

    F = system.features(customers, cutoff)
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
    out["feature_table"] = table

    if breakdown:
        copy, timer = _instrumented(system)
        try:
            builders: dict = {}
            for label, subsets in (("1", one[:50]), ("16", sixteen), ("1000", [customers] * 3)):
                copy.score(subsets[0], cutoff)
                timer.total.clear()
                for t in subsets:
                    copy.score(t, cutoff)
                builders[label] = {
                    k: round(1000 * v / len(subsets), 3) for k, v in sorted(timer.total.items(), key=lambda kv: -kv[1])
                }
        finally:
            _restore(timer)
        out["builders_ms"] = builders
    return out


def main(argv: list[str] | None = None) -> dict:
    """Command line: fit or load a system, build the scoring customers, run, print and write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--system", type=Path, help="pickled DecisionSystem (file or model data folder)")
    ap.add_argument("--customers", type=int, default=1000, help="bench customers (>= 1000)")
    ap.add_argument("--touchpoints", type=int, default=500)
    ap.add_argument("--table-rows", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-breakdown", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    world = simulate_world(SimConfig(n_customers=2000, days=400, seed=args.seed), rng)
    cutoff = evaluation_cutoff(world)
    system = load_system_file(args.system) if args.system else fit_churn_system(world, cutoff, args.seed)
    customers = spliced_customers(world, cutoff, args.customers, args.touchpoints, rng)
    result = bench_system(system, customers, cutoff, table_rows=args.table_rows, breakdown=not args.no_breakdown)
    result["setup"] = {
        "system": str(args.system) if args.system else "fitted churn-only (simulated world)",
        "touchpoints_per_customer": args.touchpoints,
        "customers": args.customers,
        "seed": args.seed,
    }
    s, b16, b1k, tab = result["single"], result["batch_16"], result["batch_1000"], result["feature_table"]
    print(f"policy included: {result['policy']}")
    print(f"1 customer x {args.touchpoints} tp: p50 {s['p50_ms']} ms, p90 {s['p90_ms']} ms, p99 {s['p99_ms']} ms")
    print(f"16 customers: {b16['ms']} ms ({b16['customers_per_s']}/s); 1,000: {b1k['ms']} ms")
    print(
        f"feature table ({tab['rows']} rows): {tab['with_reasons_customers_per_s']}/s with reasons, "
        f"{tab['reasons_if_p_ge_0.5_customers_per_s']}/s reasons if p>=0.5, "
        f"{tab['no_reasons_customers_per_s']}/s without"
    )
    if "policy_s" in tab:
        print("feature table, policy seconds: " + ", ".join(f"{k} {v}" for k, v in tab["policy_s"].items()))
    for size, parts in result.get("builders_ms", {}).items():
        print(f"breakdown, {size} customer(s) per call (ms): " + ", ".join(f"{k} {v}" for k, v in parts.items()))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
