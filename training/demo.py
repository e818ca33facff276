"""The main job, end to end on the built-in simulated world: the README's first command runs this.

simulate → validate → features → train + register churn (challenger → champion after a measured
comparison) → evaluate against the truth and baselines → train + evaluate the next-best-action policy →
batch-score every customer with the champion. Each stage prints one short block; figures also go to
``<workdir>/demo_report.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def run_demo(
    workdir: Path,
    *,
    customers: int,
    days: int,
    seed: int,
    config_path: Path | None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every stage on a fresh simulated world in ``workdir``; returns the figures of each stage."""
    from features.builders.pipeline import build_features
    from features.sources.io import read_tables, write_tables
    from features.sources.simulation.config import SimConfig
    from features.sources.simulation.world import simulate_world
    from serving.batch import score_data
    from training.churn.train import train_churn_command
    from training.policy.train import train_policy_command

    workdir = Path(workdir)
    data = workdir / "data"
    report: dict[str, Any] = {}
    t0 = time.perf_counter()

    echo(f"[1/6] simulating {customers:,} customers over {days} days (seed {seed}) → {data}")
    world = simulate_world(SimConfig(n_customers=customers, days=days, seed=seed), np.random.default_rng(seed))
    write_tables(world, data, overwrite=True)
    manifest = world.meta["manifest"]
    report["simulate"] = {k: manifest["counts"][k] for k in ("customers", "touchpoints", "outreach")}
    report["simulate"]["cutoff"] = manifest["cutoff"]
    echo(f"      {report['simulate']}")

    echo("[2/6] validating the data folder against the contract")
    tables = read_tables(data)
    echo("      " + tables.meta["validation"].summary().replace("\n", "\n      "))

    echo("[3/6] building point-in-time features at the evaluation cutoff")
    t = time.perf_counter()
    cutoff = manifest["cutoff"]
    feats = build_features(tables.without_truth(), cutoff)
    seconds = time.perf_counter() - t
    n_events = int((tables.touchpoints["ts"] < feats.attrs.get("cutoff", cutoff)).sum())
    report["features"] = {"customers": len(feats), "features": feats.shape[1], "seconds": round(seconds, 2),
                          "events_per_s": round(n_events / max(seconds, 1e-9))}
    echo(f"      {report['features']}")

    echo("[4/6] training the churn model (MLflow run, registered as challenger, promotion check)")
    churn = train_churn_command(data, config_path, workdir / "churn_report.json", register=True)
    report["churn"] = {k: churn.get(k) for k in ("auc", "pr_auc", "brier", "ece", "lift_at_10", "oracle_auc",
                                                 "oracle_brier")}
    report["churn"]["baselines_auc"] = {k: v.get("auc") for k, v in churn.get("baselines", {}).items()}
    report["churn"]["mlflow"] = churn.get("mlflow", {})
    echo("      churn on the latest test cutoff:       AUC    Brier")
    echo(f"        model (calibrated LightGBM)        {_fmt(churn['auc'])}  {_fmt(churn['brier'])}   "
         f"ECE {_fmt(churn['ece'])}")
    if churn.get("oracle_auc") is not None:
        echo(f"        oracle (true probabilities)        {_fmt(churn['oracle_auc'])}  {_fmt(churn['oracle_brier'])}")
    for name, auc in report["churn"]["baselines_auc"].items():
        echo(f"        baseline {name:<26}{_fmt(auc)}")
    ml = churn.get("mlflow", {})
    echo(f"      registered {ml.get('registered_model')} v{ml.get('version')}: "
         f"{'promoted to champion' if ml.get('promoted') else 'kept as challenger'} ({ml.get('reason')})")

    echo("[5/6] learning the next-best-action policy from the outreach log (registered with churn as one unit)")
    policy = train_policy_command(data, config_path, workdir / "policy_report.json", register=True,
                                  progress=lambda msg: echo(f"      {msg}"))
    scenario = policy["scenarios"]["configured"]
    truth = scenario.get("truth") or {}
    report["policy"] = {
        "contacts": scenario["contacts"],
        "constraint_violations": scenario["constraint_violations"],
        "no_contact_reasons": scenario["no_contact_reasons"],
        "defense_targets": scenario["defense_targets"],
        "high_engagement_potential": scenario["high_engagement_potential"],
        "truth": {k: truth.get(k) for k in ("policy_value", "oracle_value", "no_contact_value",
                                            "captured_uplift_ratio", "baselines")},
        "mlflow": policy.get("mlflow", {}),
    }
    echo("      true value of each policy at the cutoff (net of contact costs; no contact = 0):")
    echo(f"        learned policy                 {_fmt(truth.get('policy_value'))}")
    echo(f"        oracle (truth, same limits)    {_fmt(truth.get('oracle_value'))}")
    for name, value in (truth.get("baselines") or {}).items():
        echo(f"        baseline {name:<22}{_fmt(value)}")
    echo(f"        captured uplift ratio          {_fmt(truth.get('captured_uplift_ratio'))}")
    echo(f"      {scenario['contacts']:,} contacts; constraint violations {scenario['constraint_violations']}")
    echo(f"      why not contacted: {scenario['no_contact_reasons']}")
    echo(f"      back-door defense targets: {scenario['defense_targets']:,}; for example:")
    for example in scenario.get("defense_examples", [])[:3]:
        echo(f"        {example['customer_id']}: " + "; ".join(example["defense_reasons"]))

    echo("[6/6] batch-scoring every customer with the champion decision system")
    scored = score_data(data, workdir / "scores.parquet", defense_out=workdir / "defense_targets.csv",
                        mlflow_config=config_path or Path("mlflow.yaml"), overwrite=True)
    report["score"] = {k: v for k, v in scored.items() if not isinstance(v, (list, dict))}
    echo(f"      {report['score']}")

    report["seconds"] = round(time.perf_counter() - t0, 1)
    (workdir / "demo_report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    echo(f"done in {report['seconds']} s; figures in {workdir / 'demo_report.json'}")
    return report
