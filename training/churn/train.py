"""Churn training on derived labels: many point-in-time cutoffs, a later validation period, the latest test cutoff.

:func:`train_churn` fits the feature pipeline at the last training cutoff, builds labelled rows for the
train / validation / test periods of :func:`training.churn.split.temporal_split`, fits and calibrates the
LightGBM churn model, and scores it and its baselines on the test cutoff (on simulated data also the oracle and
the ceiling the features allow, :mod:`training.churn.ceiling`). Pure: no MLflow, no files.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.builders.dictionary import attribute_origins, feature_dictionary
from features.contract.schema import Tables
from features.models.churn import ChurnModel, feature_labels_from
from features.system import DecisionSystem
from training.churn.baselines import BaselineScores, oracle_metrics, temporal_baselines
from training.churn.ceiling import ceiling_metrics
from training.churn.result import REPORT_METRICS, ChurnResult, draw_seed, feature_use, report_segments
from training.churn.split import (
    ChurnSettings,
    TemporalSplit,
    data_span,
    derived_labels,
    labelled_features,
    temporal_split,
)
from training.metrics import churn_metrics, segment_metrics

log = logging.getLogger("engage.churn")


@dataclass
class PeriodRows:
    """Labelled feature rows (``F``) and their ``customer_id, cutoff, label`` keys for each period."""

    F_train: pd.DataFrame
    k_train: pd.DataFrame
    F_val: pd.DataFrame
    k_val: pd.DataFrame
    F_test: pd.DataFrame
    k_test: pd.DataFrame
    latest_val: np.ndarray  # validation rows at the latest validation (or training) cutoff


@dataclass
class TestScores:
    """The model's calibrated probabilities on the test rows, their metrics and the uncalibrated ones."""

    prob: np.ndarray
    metrics: dict[str, float]
    uncalibrated: dict[str, float]


@dataclass
class CalibrationRows:
    """The rows the model's probabilities are calibrated on, and their cutoff."""

    F: pd.DataFrame
    y: pd.Series
    cutoff: pd.Timestamp


def _log_split(split: TemporalSplit) -> None:
    log.info(
        "cutoffs: train %s … %s (%d), val %s, test %s",
        split.train[0].date(),
        split.train[-1].date(),
        len(split.train),
        [str(c.date()) for c in split.val] or "held-out customers",
        split.test.date(),
    )


def period_rows(
    tables: Tables, split: TemporalSplit, pipe, settings: ChurnSettings, labels: pd.DataFrame, rng: np.random.Generator
) -> PeriodRows:
    """Rows of each period; without validation cutoffs, held-out training customers validate instead."""
    F_tr, k_tr = labelled_features(tables, split.train, pipe, settings, labels=labels)
    if split.val:
        F_va, k_va = labelled_features(tables, split.val, pipe, settings, labels=labels)
        latest = (k_va["cutoff"] == split.val[-1]).to_numpy()
    else:
        ids = k_tr["customer_id"].unique()
        held = set(rng.choice(ids, size=max(1, round(len(ids) * settings.holdout_share)), replace=False))
        is_held = k_tr["customer_id"].isin(held).to_numpy()
        F_va, k_va = F_tr[is_held], k_tr[is_held].reset_index(drop=True)
        F_tr, k_tr = F_tr[~is_held], k_tr[~is_held].reset_index(drop=True)
        latest = (k_va["cutoff"] == split.train[-1]).to_numpy()
    F_te, k_te = labelled_features(tables, [split.test], pipe, settings, labels=labels)
    return PeriodRows(F_tr, k_tr, F_va, k_va, F_te, k_te, latest)


def calibration_rows(
    tables: Tables, split: TemporalSplit, pipe, settings: ChurnSettings, rows: PeriodRows
) -> CalibrationRows:
    """The latest validation rows, or with ``seasonal_calibration`` the held-out customers a year earlier."""
    latest = rows.latest_val
    cal = CalibrationRows(rows.F_val[latest], rows.k_val["label"][latest], (split.val or split.train)[-1])
    if not settings.seasonal_calibration or split.val:
        return cal
    # churn rates move with the season: calibrate on the held-out customers one year before the
    # test cutoff (a past period whose labels are complete) instead of the latest training cutoff
    season = split.test - pd.Timedelta(days=364)
    if season + pd.Timedelta(days=settings.horizon_days) <= split.test and season > data_span(tables)[0]:
        F_s, k_s = labelled_features(tables, [season], pipe, settings)
        keep = k_s["customer_id"].isin(set(rows.k_val["customer_id"])).to_numpy()
        if keep.sum() >= 200 and k_s["label"][keep].nunique() == 2:
            return CalibrationRows(F_s[keep], k_s["label"][keep], season)
    return cal


def fit_model(
    rows: PeriodRows, cal: CalibrationRows, pipe, settings: ChurnSettings, rng: np.random.Generator
) -> ChurnModel:
    """LightGBM early-stopped on the validation rows, calibrated on ``cal``."""
    names = feature_labels_from(feature_dictionary(pipe), list(rows.F_train.columns))
    model = ChurnModel(settings.params, calibration=settings.calibration, seed=draw_seed(rng))
    model.fit(
        rows.F_train,
        rows.k_train["label"],
        rows.F_val,
        rows.k_val["label"],
        F_cal=cal.F,
        y_cal=cal.y,
        feature_labels=names,
        attributes=attribute_origins(pipe),
    )
    log.info("calibrated (%s) on %d rows at %s", model.calibration_method_, len(cal.y), cal.cutoff.date())
    log.info("the model reads %(used)d of %(in_table)d features (%(dropped_constant_or_missing)d constant or "
             "all missing on the training rows)", feature_use(model))
    return model


def score_test(model: ChurnModel, rows: PeriodRows) -> TestScores:
    """Calibrated and uncalibrated metrics of the model on the test rows."""
    y_te = rows.k_test["label"].to_numpy()
    prob = model.predict_proba(rows.F_test)
    test = TestScores(
        prob=prob,
        metrics=churn_metrics(y_te, prob),
        uncalibrated=churn_metrics(y_te, 1 / (1 + np.exp(-model.raw_score(rows.F_test)))),
    )
    log.info(
        "test AUC %.4f, Brier %.4f, ECE %.4f (calibration: %s)",
        test.metrics["auc"],
        test.metrics["brier"],
        test.metrics["ece"],
        model.calibration_method_,
    )
    return test


def _log_rows(rows: PeriodRows) -> None:
    log.info(
        "training LightGBM on %d rows × %d features (validation %d rows)",
        len(rows.F_train),
        rows.F_train.shape[1],
        len(rows.F_val),
    )


def _report(
    tables: Tables,
    split: TemporalSplit,
    settings: ChurnSettings,
    rows: PeriodRows,
    cal: CalibrationRows,
    model: ChurnModel,
    test: TestScores,
    baselines: BaselineScores,
    dataset: str,
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "mode": "temporal",
        **{k: test.metrics[k] for k in REPORT_METRICS},
        "ece_uncalibrated": test.uncalibrated["ece"],
        "brier_uncalibrated": test.uncalibrated["brier"],
        "calibration": model.calibration_method_,
        "best_iteration": model.best_iteration_,
        "features": feature_use(model),
        "baselines": baselines.metrics,
        "baselines_failed": baselines.failed,
        **oracle_metrics(tables, rows.k_test, split.test),
        "cutoffs": split.as_dict(),
        "rows": {"train": len(rows.F_train), "val": len(rows.F_val), "test": len(rows.F_test)},
        "validation": settings.validation,
        "calibration_cutoff": str(cal.cutoff),
        "train_label_window_end": str(max(split.train) + pd.Timedelta(days=settings.horizon_days)),
    }


def train_churn(
    tables: Tables, settings: ChurnSettings, rng: np.random.Generator, *, pipeline=None, dataset: str = ""
) -> ChurnResult:
    """Train the calibrated churn model on derived labels at many cutoffs and test it on the latest one.

    ``pipeline``: an unfitted ``FeaturePipeline`` (default one when ``None``); it is fitted on the
    training data at the last training cutoff.
    """
    from features.builders.pipeline import FeaturePipeline

    t0 = time.perf_counter()
    split = temporal_split(tables, settings)
    _log_split(split)
    labels = derived_labels(tables, [*split.train, *split.val, split.test], settings)
    pipe = pipeline if pipeline is not None else FeaturePipeline()
    pipe.fit(tables.without_truth(), cutoff=split.train[-1])
    rows = period_rows(tables, split, pipe, settings, labels, rng)
    _log_rows(rows)
    cal = calibration_rows(tables, split, pipe, settings, rows)
    model = fit_model(rows, cal, pipe, settings, rng)
    test = score_test(model, rows)
    baselines = temporal_baselines(
        tables, rows.F_train, rows.k_train["label"], rows.F_test, rows.k_test, split.test, settings.horizon_days
    )
    system = DecisionSystem(
        pipe,
        model,
        metadata={
            "trained_at_cutoffs": split.as_dict(),
            "horizon_days": settings.horizon_days,
            "inactivity_days": settings.inactivity_days,
            "outcome_excludes": list(settings.outcome_excludes),
            "dataset": dataset,
        },
    )
    report = _report(tables, split, settings, rows, cal, model, test, baselines, dataset)
    # on simulated data, beside the oracle: the ceiling these features allow (model / ceiling / oracle)
    report.update(ceiling_metrics(rows.F_test, rows.k_test, tables, split.test, rng))
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return ChurnResult(
        system=system,
        report=report,
        test_keys=rows.k_test,
        test_prob=test.prob,
        test_features=rows.F_test,
        baseline_scores=baselines.scores,
        importance=model.importance(),
        segments=segment_metrics(rows.k_test["label"].to_numpy(), test.prob, report_segments(rows.F_test)),
    )
