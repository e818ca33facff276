"""``engage train churn`` and ``engage evaluate churn``: read a data folder, train or score, return the report.

Given labels (a ``labels`` table) are cross-validated (:mod:`training.churn.given_labels`); otherwise labels are
derived at many cutoffs (:mod:`training.churn.train`). Both commands return the JSON report and write it when
asked.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.contract.schema import Tables
from training.churn.baselines import oracle_metrics
from training.churn.ceiling import ceiling_metrics
from training.churn.given_labels import given_labels_cutoff, train_given_labels
from training.churn.result import REPORT_METRICS, ChurnResult
from training.churn.split import ChurnSettings, derived_labels, temporal_split
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


def train_churn_command(
    data: Path,
    config_path: Path | None = None,
    report_path: Path | None = None,
    *,
    register: bool = True,
    overrides: dict | None = None,
) -> dict[str, Any]:
    """``engage train churn``: read a data folder, train, log to MLflow, register, promote; the report."""
    from features.sources.io import read_tables
    from training.registry import load_config

    config = load_config(config_path)
    settings = settings_for(config, overrides)
    data = Path(data)
    log.info("reading %s", data)
    tables = read_tables(data)
    result = fit_for_tables(tables, settings, np.random.default_rng(settings.seed), dataset=data.name)
    registry = log_churn_run(result, tables, config, settings, dataset=data.name, register=register)
    report = {**result.report, "mlflow": registry}
    if report_path is not None:
        write_json(report_path, report)
    return report


def evaluation_labels(tables: Tables, settings: ChurnSettings, cutoff) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The labels to evaluate on and their cutoff: the given ``labels`` table, else derived at the test cutoff."""
    if tables.labels is not None and len(tables.labels):
        labels = tables.labels.assign(customer_id=tables.labels["customer_id"].astype(str))
        return labels, given_labels_cutoff(tables)
    test = temporal_split(tables, settings, test_cutoff=cutoff).test
    return derived_labels(tables, [test], settings), test


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

    from features.sources.io import read_tables
    from training.registry import load_config, load_decision_system

    config = load_config(config_path)
    settings = settings_for(config)
    tables = read_tables(Path(data))
    mlflow.set_tracking_uri(config.tracking_uri)
    uri = model_uri or f"models:/{config.registered_models.get('churn', 'engage-churn')}@{config.champion}"
    system = load_decision_system(uri)
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
