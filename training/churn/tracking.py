"""A churn run in MLflow: parameters, data fingerprint, metrics, evaluation artifacts, the model and its promotion.

The challenger is compared with the current champion on the same footing: with a separate test folder, both
are scored on it; otherwise derived labels re-score the champion on this run's test rows, and given labels
compare the cross-validated figures recorded on each version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from features.builders.dictionary import feature_dictionary
from features.contract.cutoffs import utc_timestamp
from features.contract.schema import Tables
from training.churn.experiments import HeldOutTest
from training.churn.result import ChurnResult
from training.churn.split import ChurnSettings
from training.metrics import churn_metrics
from training.plots import draw_calibration, draw_gains, draw_pr, draw_roc, draw_shap_summary, write_chart
from training.report import write_json
from training.run_info import data_summary, describe_version, log_data_input

# The churn metrics a registered version records as ``test_<name>`` tags, and promotion compares.
PROMOTION_METRICS: tuple[str, ...] = ("auc", "brier", "ece")


def data_fingerprint(tables: Tables, name: str, cutoffs: dict[str, Any]) -> dict[str, Any]:
    """Dataset name, row counts, cutoff range and a content hash (ids, timestamps, kinds, labels).

    A customer sample drawn by ``--engine dask`` is named by its whole base (``meta["base_fingerprint"]``) plus
    what was sampled (``sample_*``), so that models trained on samples of one base recognise each other.
    """
    base = tables.meta.get("base_fingerprint")
    if base is not None:
        sample = {f"sample_{k}": v for k, v in tables.meta.get("sample", {}).items() if v is not None}
        return {"dataset": name, **base, **sample,
                "cutoff_first": (cutoffs.get("train") or [cutoffs.get("test")])[0],
                "cutoff_last": cutoffs.get("test")}
    h = hashlib.sha256()
    h.update(
        pd.util.hash_pandas_object(tables.customers["customer_id"].astype(str), index=False)
        .to_numpy()
        .tobytes()
    )
    tp = tables.touchpoints
    if len(tp):
        # Timestamps as UTC nanoseconds: the same data read from CSV or Parquet hashes the same.
        cols = tp[["customer_id", "ts", "kind"]].astype({"customer_id": str, "kind": str})
        cols["ts"] = pd.DatetimeIndex(pd.to_datetime(cols["ts"], utc=True)).as_unit("ns").asi8
        h.update(pd.util.hash_pandas_object(cols, index=False).to_numpy().tobytes())
    if tables.labels is not None:
        h.update(pd.util.hash_pandas_object(tables.labels.astype(str), index=False).to_numpy().tobytes())
    return {
        "dataset": name,
        "customers": len(tables.customers),
        "touchpoints": len(tp),
        "outreach": 0 if tables.outreach is None else len(tables.outreach),
        "labels": 0 if tables.labels is None else len(tables.labels),
        "cutoff_first": (cutoffs.get("train") or [cutoffs.get("test")])[0],
        "cutoff_last": cutoffs.get("test"),
        "sha256": h.hexdigest(),
    }


def score_registered(model_uri: str, tables: Tables, keys: pd.DataFrame, cutoff) -> dict[str, float]:
    """Metrics of a registered decision system on the labelled customers ``keys`` at ``cutoff``."""
    from training.registry import load_decision_system

    system = load_decision_system(model_uri)
    scored = system.score(tables, cutoff).set_index("customer_id")
    p = scored["churn_probability"].reindex(keys["customer_id"].astype(str)).to_numpy()
    return churn_metrics(keys["label"].to_numpy(), p)


def recorded_metrics(config, uri: str) -> dict[str, float]:
    """Churn test metrics recorded as tags on a registered version (``models:/name@alias|/version``)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=config.tracking_uri)
    ref = uri.removeprefix("models:/")
    if "@" in ref:
        name, alias = ref.split("@")
        mv = client.get_model_version_by_alias(name, alias)
    else:
        name, version = ref.split("/")
        mv = client.get_model_version(name, version)
    return {k: float(mv.tags[f"test_{k}"]) for k in PROMOTION_METRICS if f"test_{k}" in mv.tags}


def run_params(settings: ChurnSettings, report: dict[str, Any]) -> dict[str, Any]:
    """The settings (containers as JSON text) and what training chose, as MLflow parameters."""
    settings_params = {
        k: (json.dumps(v) if isinstance(v, dict | list | tuple) else v) for k, v in asdict(settings).items()
    }
    return {
        **settings_params,
        "calibration_chosen": report["calibration"],
        "best_iteration": report.get("best_iteration", ""),
        "mode": report["mode"],
    }


def run_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The report's numbers and every baseline's metrics (``baseline_<name>_<metric>``), NaNs left out."""
    flat = {k: v for k, v in report.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    for k, v in report.get("test", {}).items():  # figures on a separate test folder
        if isinstance(v, int | float) and not isinstance(v, bool):
            flat[f"test_{k}"] = v
    for name, met in report.get("baselines", {}).items():
        for k, v in met.items():
            flat[f"baseline_{name}_{k}"] = v
    return {k: float(v) for k, v in flat.items() if v == v}


# At most this many test rows go into the SHAP summary plot (one point per row and feature).
SHAP_ROWS = 2000


def write_charts(result: ChurnResult, folder: Path) -> None:
    """ROC, precision-recall, calibration and gains charts (model and baselines) and the SHAP summary."""
    y = result.test_keys["label"].to_numpy()
    curves = {"churn model": (y, result.test_prob), **{k: (y, v) for k, v in result.baseline_scores.items()}}
    logistic = {k: v for k, v in curves.items() if k in ("churn model", "logistic_rfm", "logistic_all_features")}
    write_chart(folder / "roc_curve.png", draw_roc, curves)
    write_chart(folder / "pr_curve.png", draw_pr, curves)
    write_chart(folder / "calibration_curve.png", draw_calibration, logistic)
    write_chart(folder / "gains_chart.png", draw_gains, curves)
    F = result.test_features
    if len(F):
        sample = F.sample(min(len(F), SHAP_ROWS), random_state=0) if len(F) > SHAP_ROWS else F
        contrib = result.system.churn_model.contributions(sample)
        write_chart(folder / "shap_summary.png", draw_shap_summary, contrib, sample, size=(8, 6))


def write_evaluation(result: ChurnResult, folder: Path) -> None:
    """Charts, feature dictionary, importance, segment metrics and the report."""
    write_charts(result, folder)
    feature_dictionary(result.system.pipeline).to_csv(folder / "feature_dictionary.csv", index=False)
    if result.importance is not None:
        result.importance.to_csv(folder / "feature_importance.csv", index=False)
    if result.segments is not None:
        result.segments.to_csv(folder / "metrics_by_segment.csv", index=False)
    write_json(folder / "report.json", result.report)


def champion_metrics_fn(config, mode: str, tables: Tables | None, keys: pd.DataFrame | None, test_cutoff,
                        holdout: HeldOutTest | None = None) -> Callable[[str], dict[str, float]]:
    """How the champion is measured against a challenger: on the separate test folder when there is one;
    else re-scored on the challenger's test rows (derived labels), or its recorded cross-validated figures
    (given labels: no common rows to score)."""

    def champion_metrics(uri: str) -> dict[str, float]:
        if holdout is not None:  # both measured on the separate test folder
            return score_registered(uri, holdout.tables, holdout.keys, holdout.cutoff)
        if mode != "temporal":
            return recorded_metrics(config, uri)
        return score_registered(uri, tables, keys, test_cutoff)

    return champion_metrics


def promote_churn(config, logged, report: dict[str, Any], tables: Tables | None, keys: pd.DataFrame | None,
                  holdout: HeldOutTest | None = None, decide=None) -> dict[str, Any]:
    """Compare the registered challenger with the champion on comparable figures; promote it if it wins."""
    from training.registry import register_and_promote

    challenger = holdout.metrics if holdout is not None else report
    return register_and_promote(
        config,
        logged,
        challenger_metrics={k: challenger[k] for k in PROMOTION_METRICS},
        champion_metrics_fn=champion_metrics_fn(
            config, report["mode"], tables, keys, utc_timestamp(report["cutoffs"]["test"]), holdout
        ),
        decide=decide,
    )


def _log_contents(
    result: ChurnResult, tables: Tables, settings: ChurnSettings, dataset: str, holdout: HeldOutTest | None
) -> dict[str, Any]:
    """Parameters, data inputs, metrics, failed baselines and evaluation artifacts, into the active run; returns
    the training data's fingerprint."""
    import tempfile

    import mlflow

    report = result.report
    mlflow.log_params(run_params(settings, report))
    fp = data_fingerprint(tables, dataset, report["cutoffs"])
    log_data_input(fp, tables.meta.get("source"))
    if holdout is not None:
        test_fp = data_fingerprint(holdout.tables, holdout.dataset, {"test": str(holdout.cutoff)})
        log_data_input(test_fp, holdout.tables.meta.get("source"), context="testing", tag_prefix="test_data")
    mlflow.set_tags({f"baseline_failed.{k}": v[:5000] for k, v in report.get("baselines_failed", {}).items()})
    mlflow.log_metrics(run_metrics(report))
    with tempfile.TemporaryDirectory() as tmp:
        write_evaluation(result, Path(tmp))
        mlflow.log_artifacts(tmp, artifact_path="evaluation")
    return fp


def log_churn_run(
    result: ChurnResult,
    tables: Tables,
    config,
    settings: ChurnSettings,
    *,
    dataset: str,
    register: bool = True,
    holdout: HeldOutTest | None = None,
    decide=None,
) -> dict[str, Any]:
    """Log params, fingerprint, metrics, plots, dictionary and model; register and maybe promote.

    ``holdout``: the run measured on a separate test folder (its fingerprint is logged as ``test_data.*``
    tags, and promotion compares on it). Everything happens inside one tracked run
    (:func:`training.runs.tracked_run`): a process killed on the way leaves a run the next training command
    marks FAILED. ``decide``: the promotion rule (default: the configured churn rules).
    """
    from training.registry import log_decision_system
    from training.runs import tracked_run

    report = result.report
    model_name = config.registered_models.get("churn", "engage-churn")
    with tracked_run(config, "churn", f"churn-{dataset or 'data'}") as run:
        fp = _log_contents(result, tables, settings, dataset, holdout)
        system = result.system
        system.metadata["run_id"] = run.info.run_id
        logged = log_decision_system(
            system,
            cutoff=utc_timestamp(report["cutoffs"]["test"]),
            registered_model_name=model_name if register else None,
        )
        out: dict[str, Any] = {"run_id": run.info.run_id, "model_uri": logged.model_uri,
                               "model_sha256": logged.model_sha256}
        if register:
            out.update(promote_churn(config, logged, report, tables, result.test_keys, holdout, decide))
            describe_version(config, "churn", out["version"], version_description(report, fp, out))
    return out


def version_description(report: dict[str, Any], fingerprint: dict[str, Any], promotion: dict[str, Any]) -> str:
    """What a registered churn version is: its data, cutoffs, test figures and the promotion decision."""
    cut = report["cutoffs"]
    rfm = report.get("baselines", {}).get("logistic_rfm", {}).get("auc")
    return (
        f"Churn model ({report['mode']} labels, calibration {report['calibration']}) trained on "
        f"{data_summary(fingerprint)}; cutoffs {fingerprint['cutoff_first']} to {fingerprint['cutoff_last']}, "
        f"test cutoff {cut.get('test')}. Test AUC {report['auc']:.4f}, "
        f"PR-AUC {report.get('pr_auc', float('nan')):.4f}, Brier {report['brier']:.4f}, ECE {report['ece']:.4f}"
        + (f" (logistic RFM baseline AUC {rfm:.4f})" if rfm is not None else "")
        + (f"; on the separate test data AUC {report['test_auc']:.4f}" if report.get("test_auc") is not None else "")
        + f". Promotion: {'promoted to champion' if promotion['promoted'] else 'not promoted'} ({promotion['reason']})."
    )
