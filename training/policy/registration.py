"""Registering a decision system: its report logged without customer ids, its version registered and promoted.

Shared by ``engage train policy`` and ``engage register`` (a system saved when registering failed), so both
log, register and promote the same way.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from training.policy.plots import policy_plot, uplift_plot
from training.policy.summary import flat_metrics
from training.report import write_json


def without_customer_ids(report: dict) -> dict:
    """The report with the customer ids of its defense examples left out (the copy the registry keeps)."""
    scenarios = {
        name: {**sc, "defense_examples": [{k: v for k, v in ex.items() if k != "customer_id"}
                                          for ex in sc.get("defense_examples", [])]}
        for name, sc in report.get("scenarios", {}).items()
    }
    return {**report, "scenarios": scenarios}


def log_report(report: dict) -> None:
    """The headline metrics, the report (without customer ids), its charts and the uplift curve, into the run."""
    import mlflow

    mlflow.log_metrics(flat_metrics(report))
    with tempfile.TemporaryDirectory() as tmp:
        write_json(Path(tmp) / "policy_report.json", without_customer_ids(report))
        policy_plot(report, Path(tmp) / "policy_value.png")
        uplift_plot(report, Path(tmp) / "uplift_curve.png")
        write_json(Path(tmp) / "uplift_curve.json", report["uplift_curve"])
        mlflow.log_artifacts(tmp)


def register_system(config, system, report: dict, churn_uri: str) -> dict:
    """Register the decision system as a new version; promoted under the churn model's rules."""
    from training.churn.tracking import recorded_metrics
    from training.registry import log_decision_system, register_and_promote

    name = config.registered_models.get("system", "engage-decision-system")
    logged = log_decision_system(
        system, cutoff=report["scenarios"]["configured"]["cutoff"], registered_model_name=name
    )
    return register_and_promote(
        config,
        logged,
        challenger_metrics=recorded_metrics(config, churn_uri),
        champion_metrics_fn=lambda uri: recorded_metrics(config, uri),
        model_key="system",
    )
