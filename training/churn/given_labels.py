"""Churn training on a given ``labels`` table (e.g. telco): nested cross-validation, then one final model.

Each outer fold tunes on its training part only (inner 3-fold CV, :mod:`training.churn.tuning`): LightGBM
over a grid, the C of a logistic model with log terms, and the weight blending the two in log-odds
(``weight=1``: LightGBM alone). The outer AUC is thus an honest estimate of the whole tuned procedure.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.builders.dictionary import attribute_origins, feature_dictionary
from features.contract.cutoffs import labels_cutoff
from features.contract.schema import Tables
from features.models.churn import BlendedChurnModel, feature_labels_from
from features.models.lgbm import booster_predict, feature_matrix
from features.system import DecisionSystem
from training.churn.baselines import AllFeaturesLogistic
from training.churn.result import REPORT_METRICS, ChurnResult, draw_seed, feature_use, report_segments
from training.churn.split import ChurnSettings
from training.churn.tuning import TUNING_GRID, BlendChoice, blend_model, tune_blend
from training.metrics import churn_metrics, ranking_auc, segment_metrics

log = logging.getLogger("engage.churn")


def given_labels_cutoff(tables: Tables) -> pd.Timestamp:
    """The cutoff of a ``labels`` table: the manifest's, else its ``cutoff`` column, else the log's end.

    Snapshot data without dates (telco) gets a fixed nominal cutoff: only attributes matter there
    (:func:`features.contract.cutoffs.labels_cutoff`, which ``engage score`` uses too).
    """
    labels = tables.labels
    if labels is None or labels.empty:
        raise ValueError("labels: table missing or empty")
    return labels_cutoff(tables).at


def given_labels_frame(tables: Tables, pipeline) -> tuple[pd.DataFrame, np.ndarray, pd.Timestamp]:
    """Features (pipeline fitted here) at the labels' cutoff for the customers of the ``labels`` table."""
    cutoff = given_labels_cutoff(tables)
    F = pipeline.fit_transform(tables.without_truth(), cutoff=cutoff)
    ids = tables.labels["customer_id"].astype(str).to_numpy()
    return F.loc[ids], tables.labels["label"].astype(int).to_numpy(), cutoff


@dataclass
class OuterFolds:
    """Out-of-fold scores of the tuned blend, of its LightGBM part and of the all-features logistic baseline."""

    blend: np.ndarray
    gbm: np.ndarray
    logistic: np.ndarray
    auc: list[float] = field(default_factory=list)
    chosen: list[dict[str, Any]] = field(default_factory=list)


def _outer_fold(
    F: pd.DataFrame, y: np.ndarray, tr: np.ndarray, te: np.ndarray, seed: int, grid, folds: OuterFolds
) -> BlendChoice:
    """Tune and fit on ``tr``, score ``te`` into ``folds``; returns what the inner CV chose."""
    choice = tune_blend(F.iloc[tr], y[tr], seed, grid)
    m = blend_model(choice, seed).fit(F.iloc[tr], y[tr])
    folds.blend[te] = m.predict_proba(F.iloc[te])
    # the tuned LightGBM part alone, for the report: what the blend adds on top of it
    folds.gbm[te] = booster_predict(
        m.booster_, feature_matrix(F.iloc[te], m.feature_names_), num_iteration=m.best_iteration_
    )
    folds.logistic[te] = AllFeaturesLogistic().fit(F.iloc[tr], y[tr]).predict_proba(F.iloc[te])
    folds.auc.append(ranking_auc(y[te], folds.blend[te]))
    folds.chosen.append(choice.summary())
    return choice


def nested_cv(F: pd.DataFrame, y: np.ndarray, seed: int, n_folds: int, grid) -> OuterFolds:
    """Outer stratified ``n_folds``-fold CV, each fold tuned by its own inner CV."""
    from sklearn.model_selection import StratifiedKFold

    folds = OuterFolds(blend=np.zeros(len(y)), gbm=np.zeros(len(y)), logistic=np.zeros(len(y)))
    for k, (tr, te) in enumerate(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(F, y)):
        choice = _outer_fold(F, y, tr, te, seed, grid, folds)
        log.info(
            "fold %d: AUC %.4f (num_leaves %d, %d rounds, linear C %g, weight on LightGBM %.1f)",
            k + 1,
            folds.auc[-1],
            choice.params["num_leaves"],
            choice.rounds,
            choice.linear_c,
            choice.weight,
        )
    return folds


def final_model(
    F: pd.DataFrame, y: np.ndarray, seed: int, grid, pipeline, calibration: str
) -> tuple[BlendedChurnModel, BlendChoice]:
    """Tuned on all rows, calibrated on a stratified 20 % holdout."""
    from sklearn.model_selection import train_test_split

    choice = tune_blend(F, y, seed, grid)
    tr, cal = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=seed)
    names = feature_labels_from(feature_dictionary(pipeline), list(F.columns))
    model = blend_model(choice, seed, calibration=calibration)
    model.fit(
        F.iloc[tr], y[tr], F_cal=F.iloc[cal], y_cal=y[cal], feature_labels=names, attributes=attribute_origins(pipeline)
    )
    return model, choice


def _report(
    y: np.ndarray, folds: OuterFolds, model: BlendedChurnModel, choice: BlendChoice, cutoff, dataset: str
) -> dict[str, Any]:
    metrics = churn_metrics(y, folds.blend)
    return {
        "dataset": dataset,
        "mode": "given_labels_cv",
        **{k: metrics[k] for k in REPORT_METRICS},
        "auc_folds": folds.auc,
        "auc_fold_std": float(np.std(folds.auc)),
        "tuned": folds.chosen,
        "calibration": model.calibration_method_,
        "blend_weight": choice.weight,
        "features": feature_use(model),
        "baselines": {
            "logistic_all_features": churn_metrics(y, folds.logistic),
            "lightgbm_tuned": churn_metrics(y, folds.gbm),
        },
        "cutoffs": {"test": str(cutoff)},
        "rows": {"labelled": len(y)},
    }


def train_given_labels(
    tables: Tables,
    settings: ChurnSettings,
    rng: np.random.Generator,
    *,
    pipeline=None,
    dataset: str = "",
    grid=TUNING_GRID,
) -> ChurnResult:
    """Nested cross-validation on a given ``labels`` table, then a final calibrated model on all rows."""
    from features.builders.pipeline import FeaturePipeline

    t0 = time.perf_counter()
    pipe = pipeline if pipeline is not None else FeaturePipeline()
    F, y, cutoff = given_labels_frame(tables, pipe)
    seed = draw_seed(rng)
    log.info(
        "given labels: %d customers, churn rate %.3f, %d features; %d-fold nested CV",
        len(y),
        y.mean(),
        F.shape[1],
        settings.cv_folds,
    )
    folds = nested_cv(F, y, seed, settings.cv_folds, grid)
    model, choice = final_model(F, y, seed, grid, pipe, settings.calibration)
    log.info("the model reads %(used)d of %(in_table)d features (%(dropped_constant_or_missing)d constant or "
             "all missing)", feature_use(model))
    system = DecisionSystem(
        pipe, model, metadata={"cutoff": str(cutoff), "dataset": dataset, "mode": "given_labels"}
    )
    report = _report(y, folds, model, choice, cutoff, dataset)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return ChurnResult(
        system=system,
        report=report,
        test_keys=pd.DataFrame({"customer_id": F.index.astype(str), "cutoff": cutoff, "label": y}),
        test_prob=folds.blend,
        test_features=F,
        baseline_scores={"logistic_all_features": folds.logistic, "lightgbm_tuned": folds.gbm},
        importance=model.importance(),
        segments=segment_metrics(y, folds.blend, report_segments(F)),
    )
