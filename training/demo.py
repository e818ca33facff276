"""The main job, end to end on the built-in simulated world: the README's first command runs this.

simulate → validate → features → train + register churn (challenger → champion after a measured
comparison) → evaluate against the truth and baselines → train + evaluate the next-best-action policy →
batch-score every customer with the champion. Each stage prints one short block; figures also go to
``<workdir>/demo_report.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from features.contract.schema import Tables
from training.report import write_json


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


class Progress(Protocol):
    """How the command line shows the demo's progress (``training.cli_progress.Bars``): bars and phases."""

    def step(self, description: str, total: int | None = None) -> Callable[[int, int], None]: ...

    def note(self, text: str) -> None: ...


class _Silent:
    def step(self, description: str, total: int | None = None) -> Callable[[int, int], None]:
        return lambda done, total: None

    def note(self, text: str) -> None:
        pass


@dataclass(frozen=True)
class Demo:
    """Where the demo works and how it talks: the work folder, its data folder, the MLflow config, the printer
    and the progress display."""

    workdir: Path
    config_path: Path | None
    echo: Callable[[str], None]
    progress: Progress = field(default_factory=_Silent)

    @property
    def data(self) -> Path:
        return self.workdir / "data"


def _simulate(demo: Demo, customers: int, days: int, seed: int) -> dict[str, Any]:
    from features.sources.io import write_tables
    from features.sources.simulation.config import SimConfig
    from features.sources.simulation.world import simulate_world

    demo.echo(f"[1/6] simulating {customers:,} customers over {days} days (seed {seed}) → {demo.data}")
    world = simulate_world(SimConfig(n_customers=customers, days=days, seed=seed), np.random.default_rng(seed),
                           progress=demo.progress.step("simulating, day by day"))
    demo.progress.note("writing the data folder")
    write_tables(world, demo.data, overwrite=True)
    manifest = world.meta["manifest"]
    out = {k: manifest["counts"][k] for k in ("customers", "touchpoints", "outreach")}
    out["cutoff"] = manifest["cutoff"]
    demo.echo(f"      {out}")
    return out


def _validate(demo: Demo) -> Tables:
    from features.sources.io import read_tables

    demo.echo("[2/6] validating the data folder against the contract")
    demo.progress.note("validating")
    tables = read_tables(demo.data)
    demo.echo("      " + tables.meta["validation"].summary().replace("\n", "\n      "))
    return tables


def _features(demo: Demo, tables: Tables) -> dict[str, Any]:
    from features.builders.pipeline import FeaturePipeline
    from features.contract.cutoffs import evaluation_cutoff

    demo.echo("[3/6] building point-in-time features at the evaluation cutoff")
    t = time.perf_counter()
    cutoff = evaluation_cutoff(tables)
    feats = FeaturePipeline().fit_transform(tables.without_truth(), cutoff=cutoff,
                                            progress=demo.progress.step("building features, block by block"))
    seconds = time.perf_counter() - t
    n_events = int((tables.touchpoints["ts"] < feats.attrs.get("cutoff", cutoff)).sum())
    out = {"customers": len(feats), "features": feats.shape[1], "seconds": round(seconds, 2),
           "events_per_s": round(n_events / max(seconds, 1e-9))}
    demo.echo(f"      {out}")
    return out


def _churn(demo: Demo) -> dict[str, Any]:
    from training.churn.commands import train_churn_command

    echo = demo.echo
    echo("[4/6] training the churn model (MLflow run, registered as challenger, promotion check)")
    churn = train_churn_command(demo.data, demo.config_path, demo.workdir / "churn_report.json", register=True)
    out = {k: churn.get(k) for k in ("auc", "pr_auc", "brier", "ece", "lift_at_10", "ceiling_auc", "ceiling_brier",
                                     "oracle_auc", "oracle_brier")}
    out["baselines_auc"] = {k: v.get("auc") for k, v in churn.get("baselines", {}).items()}
    out["mlflow"] = churn.get("mlflow", {})
    echo("      churn on the latest test cutoff:       AUC    Brier")
    echo(f"        model (calibrated LightGBM)        {_fmt(churn['auc'])}  {_fmt(churn['brier'])}   "
         f"ECE {_fmt(churn['ece'])}")
    if churn.get("ceiling_auc") is not None:
        echo(f"        ceiling (features → true prob.)    {_fmt(churn['ceiling_auc'])}  {_fmt(churn['ceiling_brier'])}")
    if churn.get("oracle_auc") is not None:
        echo(f"        oracle (true probabilities)        {_fmt(churn['oracle_auc'])}  {_fmt(churn['oracle_brier'])}")
    for name, auc in out["baselines_auc"].items():
        echo(f"        baseline {name:<26}{_fmt(auc)}")
    ml = churn.get("mlflow", {})
    echo(f"      registered {ml.get('registered_model')} v{ml.get('version')}: "
         f"{'promoted to champion' if ml.get('promoted') else 'kept as challenger'} ({ml.get('reason')})")
    return out


def _echo_policy(echo: Callable[[str], None], scenario: dict[str, Any], truth: dict[str, Any]) -> None:
    echo("      true value of each policy at the cutoff (net of contact costs; no contact = 0):")
    echo(f"        the system's policy            {_fmt(truth.get('policy_value'))}")
    refused = (scenario.get("refused_learned_policy") or {}).get("truth")
    if refused:  # the gate fell back to a baseline: what the learned policy would have been worth
        echo(f"        learned policy (not used)      {_fmt(refused.get('policy_value'))}")
    echo(f"        oracle (truth, same limits)    {_fmt(truth.get('oracle_value'))}")
    for name, value in (truth.get("baselines") or {}).items():
        echo(f"        baseline {name:<22}{_fmt(value)}")
    echo(f"        captured uplift ratio          {_fmt(truth.get('captured_uplift_ratio'))}")
    echo(f"      {scenario['contacts']:,} contacts; constraint violations {scenario['constraint_violations']}")
    echo(f"      why not contacted: {scenario['no_contact_reasons']}")
    echo(f"      back-door defense targets: {scenario['defense_targets']:,}; for example:")
    for example in scenario.get("defense_examples", [])[:3]:
        echo("        " + "; ".join(example["defense_reasons"]))


def _policy(demo: Demo) -> dict[str, Any]:
    from training.policy.commands import train_policy_command

    demo.echo("[5/6] learning the next-best-action policy from the outreach log (registered with churn as one unit)")
    policy = train_policy_command(demo.data, demo.config_path, demo.workdir / "policy_report.json", register=True,
                                  progress=demo.progress.note)
    scenario = policy["scenarios"]["configured"]
    truth = scenario.get("truth") or {}
    _echo_policy(demo.echo, scenario, truth)
    ml = policy.get("mlflow") or {}
    if ml and not ml.get("promoted"):  # say plainly what is served, since the figures above describe the system
        demo.echo(f"      {ml.get('registered_model')} v{ml.get('version')} not promoted ({ml.get('reason')}); the "
                  "champion serves as before, without this system's outreach and defense list")
    return {
        "contacts": scenario["contacts"],
        "constraint_violations": scenario["constraint_violations"],
        "no_contact_reasons": scenario["no_contact_reasons"],
        "defense_targets": scenario["defense_targets"],
        "high_engagement_potential": scenario["high_engagement_potential"],
        "truth": {k: truth.get(k) for k in ("policy_value", "oracle_value", "no_contact_value",
                                            "captured_uplift_ratio", "baselines")},
        "mlflow": policy.get("mlflow", {}),
    }


def _score(demo: Demo) -> dict[str, Any]:
    from serving.batch import score_data

    demo.echo("[6/6] batch-scoring every customer with the champion (the decision system once one is promoted, "
              "else the churn model alone)")
    demo.progress.note("batch-scoring every customer")
    scored = score_data(demo.data, demo.workdir / "scores.parquet", defense_out=demo.workdir / "defense_targets.csv",
                        mlflow_config=demo.config_path or Path("mlflow.yaml"), overwrite=True)
    out = {k: v for k, v in scored.items() if not isinstance(v, (list, dict))}
    demo.echo(f"      {out}")
    return out


def run_demo(
    workdir: Path,
    *,
    customers: int,
    days: int,
    seed: int,
    config_path: Path | None,
    echo: Callable[[str], None] = print,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run every stage on a fresh simulated world in ``workdir``; returns the figures of each stage.

    ``progress`` shows each stage's progress (bars on a terminal); the stages' results go to ``echo``.
    """
    demo = Demo(Path(workdir), config_path, echo, progress or _Silent())
    report: dict[str, Any] = {}
    t0 = time.perf_counter()
    stages = demo.progress.step("demo: 6 stages", total=6)
    report["simulate"] = _simulate(demo, customers, days, seed)
    stages(1, 6)
    tables = _validate(demo)
    stages(2, 6)
    report["features"] = _features(demo, tables)
    del tables  # each later stage reads the folder itself, as its command does: not held through them
    stages(3, 6)
    report["churn"] = _churn(demo)
    stages(4, 6)
    report["policy"] = _policy(demo)
    stages(5, 6)
    report["score"] = _score(demo)
    stages(6, 6)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    path = write_json(demo.workdir / "demo_report.json", report)
    echo(f"done in {report['seconds']} s; figures in {path}")
    return report
