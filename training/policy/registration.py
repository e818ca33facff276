"""Registering a decision system: its report logged without customer ids, its version registered and promoted.

Shared by ``engage train policy`` and ``engage register`` (a system saved when registering failed), so both
log, register and promote the same way.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from training.policy.plots import policy_plot, qini_plot, uplift_plot
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
        qini_plot(report, Path(tmp) / "qini_curve.png")
        write_json(Path(tmp) / "uplift_curve.json", report["uplift_curve"])
        mlflow.log_artifacts(tmp)


def register_system(config, system, report: dict, churn_uri: str | None, fingerprint: dict | None = None,
                    decide=None) -> dict:
    """Register the decision system as a new version, promoted as the policy gate says (``decide``: another
    rule, e.g. ``engage retrain`` deferring the decision to its backtest); with the data's ``fingerprint``, the
    version's description says what it was trained on and how it was decided."""
    from training.churn.tracking import recorded_metrics
    from training.registry import log_decision_system, register_and_promote
    from training.run_info import describe_version

    name = config.registered_models.get("system", "engage-decision-system")
    logged = log_decision_system(
        system, cutoff=report["scenarios"]["configured"]["cutoff"], registered_model_name=name
    )
    gate = report.get("gate")
    # The policy gate (training.policy.gate) decides a decision system: its held-out value against the
    # baselines and the champion's policy on the same decisions; churn metrics alone never promote it.
    if decide is None and gate:
        decide = lambda _challenger, _champion: (bool(gate["promote"]), str(gate["reason"]))  # noqa: E731
    out = register_and_promote(
        config,
        logged,
        challenger_metrics=recorded_metrics(config, churn_uri) if churn_uri else {},
        champion_metrics_fn=(lambda uri: recorded_metrics(config, uri)) if not (gate or decide) else (lambda uri: {}),
        model_key="system",
        decide=decide,
    )
    if gate:
        _tag_gate(config, out, report)
    if fingerprint is not None:
        describe_version(config, "system", out["version"], version_description(report, fingerprint, churn_uri, out))
    return out


def _tag_gate(config, out: dict, report: dict) -> None:
    """The gate's figures on the registered version, beside its promotion decision."""
    from mlflow import MlflowClient

    learned = report["off_policy"]["policies"]["learned"]["dr"]
    tags = {
        "policy_objective": str(report.get("objective", "retention")),
        "policy_beats_baselines": str(report["gate"]["beats_baselines"]).lower(),
        "policy_chosen": str(report["gate"]["chosen"]),
        "policy_learned_dr": f"{learned['value']:.6g}",
    }
    client = MlflowClient(tracking_uri=config.tracking_uri)
    for key, value in tags.items():
        client.set_model_version_tag(out["registered_model"], out["version"], key, value)


def version_description(report: dict, fingerprint: dict, churn_uri: str, promotion: dict) -> str:
    """What a registered decision-system version is: data, cutoff, churn model, held-out value and promotion."""
    from training.run_info import data_summary

    learned = report["off_policy"]["policies"].get("learned", {}).get("dr_incremental", {})
    q = report.get("qini", {})
    return (
        f"Decision system: next-best-action policy ({report['method']}) on the churn model "
        f"{churn_uri or '(none)'}, trained on {data_summary(fingerprint)}, decisions at cutoff "
        f"{report['scenarios']['configured']['cutoff']}. "
        f"Held-out DR incremental value per decision {learned.get('value', float('nan')):.4f} (95 % CI "
        f"{learned.get('low', float('nan')):.4f} to {learned.get('high', float('nan')):.4f}); AUUC "
        f"{q.get('auuc', float('nan')):.4f}, Qini coefficient {q.get('qini_coefficient', float('nan')):.4f}. "
        f"Promotion: {'promoted to champion' if promotion['promoted'] else 'not promoted'} ({promotion['reason']})."
    )
