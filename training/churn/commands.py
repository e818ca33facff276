"""``engage train churn`` and ``engage evaluate churn``: read a data folder, train or score, return the report.

Given labels (a ``labels`` table) are cross-validated (:mod:`training.churn.given_labels`); otherwise labels are
derived at many cutoffs (:mod:`training.churn.train`). Training can also be tested on a separate labelled folder
and leave attributes out (:mod:`training.churn.experiments`). Both commands return the JSON report and write it
when asked.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from features.contract.schema import Tables
from training.churn.baselines import oracle_metrics
from training.churn.ceiling import ceiling_metrics
from training.churn.experiments import evaluation_labels, measure_on_folder, without_attributes
from training.churn.given_labels import train_given_labels
from training.churn.result import REPORT_METRICS, ChurnResult
from training.churn.split import ChurnSettings
from training.churn.tracking import log_churn_run
from training.churn.train import train_churn
from training.metrics import churn_metrics
from training.report import write_json

log = logging.getLogger("engage.churn")


def settings_for(config, overrides: dict | None = None) -> ChurnSettings:
    """Churn settings from the config's ``churn`` section plus explicit overrides."""
    return ChurnSettings.from_dict({**(config.churn if config is not None else {}), **(overrides or {})})


def fit_for_tables(
    tables: Tables, settings: ChurnSettings, rng: np.random.Generator, *, dataset: str = "", pipeline=None
) -> ChurnResult:
    """Given labels → cross-validated training on them; otherwise derived labels at many cutoffs."""
    if tables.labels is not None and len(tables.labels):
        return train_given_labels(tables, settings, rng, pipeline=pipeline, dataset=dataset)
    return train_churn(tables, settings, rng, pipeline=pipeline, dataset=dataset)


def churn_pending(data: Path, tables: Tables, settings: ChurnSettings, report: dict, test_data: Path | None,
                  exclude_attributes: tuple[str, ...]) -> dict[str, Any]:
    """What ``engage register`` needs to register a churn model saved when registering failed."""
    from dataclasses import asdict

    from training.churn.tracking import data_fingerprint

    fingerprint = data_fingerprint(tables, Path(data).name, report["cutoffs"])
    return {
        "kind": "churn", "data": str(Path(data).resolve()), "settings": asdict(settings), "report": report,
        "data_sha256": fingerprint["sha256"], "fingerprint": fingerprint,
        "test_data": str(Path(test_data).resolve()) if test_data is not None else None,
        "exclude_attributes": list(exclude_attributes),
    }


def train_churn_command(
    data: Path,
    config_path: Path | None = None,
    report_path: Path | None = None,
    *,
    register: bool = True,
    overrides: dict | None = None,
    test_data: Path | None = None,
    exclude_attributes: tuple[str, ...] = (),
    decide=None,
    sample=None,
) -> dict[str, Any]:
    """``engage train churn``: read a data folder, train, log to MLflow, register, promote; the report.

    ``test_data``: a separate labelled folder the trained system is measured on (``test``, ``test_auc`` in
    the report; promotion compares on it). ``exclude_attributes``: customer attributes left out of training.
    ``decide``: the promotion rule (default: the configured churn rules; see
    :func:`training.registry.register_and_promote`). Runs of killed processes are marked FAILED first; a locked
    registry is retried; when registering fails anyway, the model is saved locally and the error names
    the ``engage register`` command that finishes. ``sample``: a
    :class:`training.engine.sampled_read.SampleRequest` (``--engine dask``): train on a customer sample of a
    partitioned folder, drawn on Dask and sized by the memory budget (``report["sample"]`` says what was drawn).
    """
    from features.contract.errors import retry_while_busy
    from features.sources.io import read_tables
    from training.engine.sampled_read import training_tables
    from training.registry import load_config
    from training.unregistered import keep_on_failure, prepare_registry

    config = load_config(config_path)
    settings = settings_for(config, overrides)
    prepare_registry(config)
    data = Path(data)
    log.info("reading %s", data)
    tables = without_attributes(training_tables(data, sample), exclude_attributes)
    test_tables = read_tables(Path(test_data)) if test_data is not None else None  # a bad folder fails first
    result = fit_for_tables(tables, settings, np.random.default_rng(settings.seed), dataset=data.name)
    held = None
    if test_tables is not None:
        held = measure_on_folder(result.system, test_tables, settings, dataset=Path(test_data).name,
                                 train_ids=tables.customers["customer_id"].astype(str))
        result.report.update(test=held.report(), test_auc=held.metrics["auc"])
    if "sample" in tables.meta:
        result.report["sample"] = tables.meta["sample"]
    if exclude_attributes:
        result.report["excluded_attributes"] = list(exclude_attributes)
        result.system.metadata["excluded_attributes"] = list(exclude_attributes)
    pending = churn_pending(data, tables, settings, result.report, test_data, exclude_attributes)
    with keep_on_failure(config, result.system, pending, config_path):
        registry = retry_while_busy(
            lambda: log_churn_run(result, tables, config, settings, dataset=data.name, register=register,
                                  holdout=held, decide=decide),
            seconds=config.busy_retry_seconds, what="registering the churn model", where=config.tracking_uri,
        )
    report = {**result.report, "mlflow": registry}
    if report_path is not None:
        write_json(report_path, report)
    return report


def evaluate_churn_command(
    data: Path,
    config_path: Path | None = None,
    report_path: Path | None = None,
    *,
    model_uri: str | None = None,
    cutoff: str | None = None,
) -> dict[str, Any]:
    """``engage evaluate churn``: score the champion (or ``model_uri``) on a data folder's test cutoff."""
    import mlflow

    from features.contract.errors import retry_while_busy
    from features.sources.io import read_tables
    from training.registry import load_config, load_decision_system

    config = load_config(config_path)
    settings = settings_for(config)
    tables = read_tables(Path(data))
    mlflow.set_tracking_uri(config.tracking_uri)
    uri = model_uri or f"models:/{config.registered_models.get('churn', 'engage-churn')}@{config.champion}"
    system = retry_while_busy(lambda: load_decision_system(uri), seconds=config.busy_retry_seconds,
                              what=f"loading {uri}", where=config.tracking_uri)
    labels, test = evaluation_labels(tables, settings, cutoff)
    scored = system.score(tables, test).set_index("customer_id")
    p = scored["churn_probability"].reindex(labels["customer_id"].astype(str)).to_numpy()
    metrics = churn_metrics(labels["label"].astype(int).to_numpy(), p)
    keys = labels[["customer_id", "label"]].reset_index(drop=True)
    report = {
        "model_uri": uri,
        "dataset": Path(data).name,
        "cutoff": str(test),
        **{k: metrics[k] for k in REPORT_METRICS},
        **oracle_metrics(tables, keys, test),
    }
    if "oracle_auc" in report:  # simulated data at the truth's cutoff: the ceiling beside the oracle
        F = system.features(tables, test)
        F.index = F.index.astype(str)
        F = F.loc[keys["customer_id"].astype(str)]
        report.update(ceiling_metrics(F, keys, tables, test, np.random.default_rng(settings.seed)))
    if report_path is not None:
        write_json(report_path, report)
    return report
