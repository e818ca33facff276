"""The run summary of ``engage retrain``: the report JSON (fields fixed by the interface) and its MLflow run.

``decision`` (promoted, kept, unchanged, refused), ``reason``, ``gates`` ({name, passed, figures}), ``drift``
({feature: psi} of the top drifting features), ``champion_before`` and ``champion_after`` (registered
versions), ``seconds`` and ``peak_memory_mb``; then the details: each step's duration, the backtest, the drift
report (KS tests, score drift, label rate over time), the challengers' versions, the scores and warnings.
"""

from __future__ import annotations

import logging
import resource
import tempfile
from pathlib import Path

log = logging.getLogger("engage.retrain")


def peak_memory_mb() -> float:
    """The peak resident memory of this process so far, in MB (Linux reports ``ru_maxrss`` in KB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def top_drift(drift: dict | None, n: int) -> dict[str, float]:
    """``{feature: psi}`` of the ``n`` most drifted features."""
    return {r["feature"]: r["psi"] for r in (drift or {}).get("features", [])[:n]}


def summary_report(ctx, outcome, seen, before, after, seconds: float) -> dict:
    """The report of one run (see the module docstring)."""
    trained = outcome.trained
    return {
        "decision": outcome.decision,
        "reason": outcome.reason,
        "exit_status": outcome.exit_status,
        "gates": [{"name": g.name, "passed": g.passed, "figures": g.figures, "message": g.message}
                  for g in outcome.gates],
        "drift": top_drift(outcome.drift, ctx.settings.thresholds.top_features),
        "champion_before": before.version if before else None,
        "champion_after": after.version if after else None,
        "seconds": round(seconds, 2),
        "peak_memory_mb": peak_memory_mb(),
        "as_of": seen.as_of.isoformat() if seen else None,
        "data": str(ctx.data),
        "data_sha256": seen.sha256 if seen else None,
        "code_version": seen.code if seen else None,
        "steps": ctx.steps,
        "challenger": {"system": trained.system_version, "churn": trained.churn_version} if trained else None,
        "backtest": outcome.backtest,
        "drift_report": outcome.drift,
        "scores": outcome.scores,
        "warnings": outcome.warnings,
    }


def _drift_plot(drift: dict, path: Path, n: int) -> None:
    from training.plots import write_chart

    def draw(ax, rows):
        names = [r["feature"] for r in rows][::-1]
        ax.barh(names, [r["psi"] for r in rows][::-1], color="tab:orange")
        ax.axvline(0.1, ls="--", color="grey", lw=1)
        ax.axvline(0.25, ls="--", color="red", lw=1)
        ax.set_xlabel("PSI (champion's reference -> this run's data)")
        ax.set_title("Top drifting features")

    write_chart(path, draw, drift["features"][:n], size=(8, 5))


def log_summary(config, report: dict) -> str | None:
    """The summary as an MLflow run of the ``retrain`` experiment (report JSON, drift JSON and plot)."""
    import mlflow

    from training.report import write_json
    from training.runs import tracked_run

    with tracked_run(config, "retrain", f"retrain-{report['decision']}") as run:
        mlflow.set_tags({"retrain.decision": report["decision"], "retrain.reason": report["reason"][:5000],
                         "retrain.champion_before": str(report["champion_before"]),
                         "retrain.champion_after": str(report["champion_after"])})
        mlflow.log_metrics({"seconds": report["seconds"], "peak_memory_mb": report["peak_memory_mb"],
                            **{f"step_seconds.{k}": v for k, v in report["steps"].items()},
                            **{f"psi.{k}"[:250]: v for k, v in report["drift"].items()}})
        with tempfile.TemporaryDirectory() as tmp:
            write_json(Path(tmp) / "retrain_report.json", report)
            if report.get("drift_report") and report["drift_report"].get("features"):
                write_json(Path(tmp) / "drift.json", report["drift_report"])
                _drift_plot(report["drift_report"], Path(tmp) / "drift.png", 20)
            mlflow.log_artifacts(tmp)
        return run.info.run_id
