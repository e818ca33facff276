"""Inner cross-validation for small labelled sets: LightGBM parameters, a linear partner and their blend weight.

Every choice is made on the rows it is given only, so an outer cross-validation around it (see
:mod:`training.churn.given_labels`) measures the whole tuned procedure honestly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.models.churn import BlendedChurnModel, ChurnModel, LinearScore
from features.models.lgbm import feature_matrix
from training.metrics import ranking_auc

# Small trees win on small tabular sets (31 leaves over-fit telco); column subsampling and L2 help too.
TUNING_GRID: tuple[dict, ...] = tuple(
    {
        "num_leaves": nl,
        "min_child_samples": mcs,
        "feature_fraction": ff,
        "learning_rate": 0.03,
        "lambda_l2": 5.0,
    }
    for nl in (4, 8)
    for mcs in (30, 100)
    for ff in (0.5, 0.9)
)


# Inverse regularisation of the linear blend partner, and the blend weights on LightGBM, both chosen by inner CV.
LINEAR_C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0)
BLEND_WEIGHTS: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


def _inner_folds(y: np.ndarray, seed: int, folds: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def _mean_fold_auc(y: np.ndarray, score: np.ndarray, folds) -> float:
    return float(np.mean([ranking_auc(y[va], score[va]) for _, va in folds]))


def _cv_rounds(
    F: pd.DataFrame, y: np.ndarray, params: dict, seed: int, folds: int = 3
) -> tuple[float, int, np.ndarray]:
    """Inner cross-validated AUC, mean best iteration and out-of-fold raw scores of one parameter set."""
    oof = np.zeros(len(y))
    iters = []
    splits = _inner_folds(y, seed, folds)
    for tr, va in splits:
        m = ChurnModel(params, calibration="none", class_weight=None, seed=seed)
        m.fit(F.iloc[tr], y[tr], F.iloc[va], y[va])
        oof[va] = m.raw_score(F.iloc[va])
        iters.append(m.best_iteration_)
    return _mean_fold_auc(y, oof, splits), int(np.mean(iters)), oof


def tune_params(F: pd.DataFrame, y: np.ndarray, seed: int, grid=TUNING_GRID) -> tuple[dict, int, float]:
    """Best LightGBM parameters from ``grid`` by inner 3-fold CV AUC; returns (params, rounds, auc)."""
    choice = tune_blend(F, y, seed, grid, weights=(1.0,))
    return choice.params, choice.rounds, choice.gbm_auc


@dataclass(frozen=True)
class BlendChoice:
    """What the inner CV chose: LightGBM parameters and rounds, the linear model's C, the blend weight."""

    params: dict
    rounds: int
    linear_c: float
    weight: float
    gbm_auc: float
    linear_auc: float
    auc: float

    def summary(self) -> dict[str, Any]:
        return {**self.params, "rounds": self.rounds, "linear_c": self.linear_c, "weight": self.weight,
                "inner_auc": self.auc, "inner_auc_gbm": self.gbm_auc, "inner_auc_linear": self.linear_auc}


@dataclass(frozen=True)
class _Candidate:
    """One model family's best inner-CV setting: its parameter, AUC and out-of-fold raw scores."""

    setting: Any
    auc: float
    oof: np.ndarray
    rounds: int = 0


def _best_gbm(F: pd.DataFrame, y: np.ndarray, seed: int, grid) -> _Candidate:
    best: _Candidate | None = None
    for params in grid:
        auc, rounds, oof = _cv_rounds(F, y, params, seed)
        if best is None or auc > best.auc:
            best = _Candidate(params, auc, oof, rounds)
    assert best is not None, "empty tuning grid"
    return best


def _best_linear(F: pd.DataFrame, y: np.ndarray, splits, linear_grid: tuple[float, ...]) -> _Candidate:
    best = _Candidate(linear_grid[0], -1.0, np.zeros(len(y)))
    X = feature_matrix(F, F.columns)
    for C in linear_grid:
        oof = np.zeros(len(y))
        for tr, va in splits:
            oof[va] = LinearScore(C).fit(X[tr], y[tr]).raw_score(X[va])
        auc = _mean_fold_auc(y, oof, splits)
        if auc > best.auc:
            best = _Candidate(C, auc, oof)
    return best


def tune_blend(
    F: pd.DataFrame,
    y: np.ndarray,
    seed: int,
    grid=TUNING_GRID,
    *,
    linear_grid: tuple[float, ...] = LINEAR_C_GRID,
    weights: tuple[float, ...] = BLEND_WEIGHTS,
) -> BlendChoice:
    """LightGBM parameters, linear C and blend weight on LightGBM, all by inner 3-fold CV AUC on ``F, y``.

    Both models are scored on the same inner folds and the weight is picked on their out-of-fold log-odds,
    so every choice uses ``F, y`` only. LightGBM's inner scores come from early stopping on the scored fold
    (slightly optimistic), which can only tilt the weight towards LightGBM, the status quo.
    """
    splits = _inner_folds(y, seed)
    gbm = _best_gbm(F, y, seed, grid)
    if any(w < 1 for w in weights):
        lin = _best_linear(F, y, splits, linear_grid)
    else:
        lin = _Candidate(linear_grid[0], -1.0, np.zeros(len(y)))
    blends = [(_mean_fold_auc(y, w * gbm.oof + (1 - w) * lin.oof, splits), w) for w in weights]
    auc, weight = max(blends)  # ties go to the larger LightGBM weight
    return BlendChoice(
        params=gbm.setting,
        rounds=max(gbm.rounds, 10),
        linear_c=lin.setting,
        weight=float(weight),
        gbm_auc=gbm.auc,
        linear_auc=lin.auc,
        auc=auc,
    )


def blend_model(choice: BlendChoice, seed: int, *, calibration: str = "none") -> BlendedChurnModel:
    """The unfitted blended model of an inner-CV choice (fixed rounds, no class weights)."""
    return BlendedChurnModel(
        choice.params,
        weight=choice.weight,
        linear_c=choice.linear_c,
        num_boost_round=choice.rounds,
        calibration=calibration,
        class_weight=None,
        seed=seed,
    )
