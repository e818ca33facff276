"""Fitting the customer-value model: training rows at cutoffs, the blend chosen on validation, the final fit.

The LightGBM part learns from stacked rows (features at each training cutoff, the spend realised in the
horizon after it); the BG/NBD + Gamma-Gamma part is calibrated on the history before the fit's own cutoff.
The blend weight is the one whose predictions at the validation cutoff best rank the spend that followed
(mean of Spearman and top-decile capture): the same model family is then refitted at the final cutoff.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.contract.schema import Tables
from features.models.ltv import CustomerValueModel
from training.value.metrics import value_metrics
from training.value.schedule import FitPlan, ValueSchedule, existing_customers, realised_spend

BLEND_GRID: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))
FeaturesAt = Callable[[pd.Timestamp], pd.DataFrame]


def feature_cache(tables: Tables, pipeline) -> FeaturesAt:
    """Every customer's features at a cutoff (index: customer id as text), each cutoff built once."""
    from features.builders.pipeline import build_features

    memo: dict[pd.Timestamp, pd.DataFrame] = {}
    data = tables.without_truth()

    def at(cutoff: pd.Timestamp) -> pd.DataFrame:
        if cutoff not in memo:
            F = build_features(data, cutoff, pipeline)
            F.index = F.index.astype(str)
            memo[cutoff] = F
        return memo[cutoff]

    return at


@dataclass(frozen=True)
class Scored:
    """Predictions at one cutoff for the customers existing then: each part's spend and the realised spend."""

    ids: pd.Index
    parts: dict[str, np.ndarray]
    realised: np.ndarray | None

    def blend(self, w: float) -> np.ndarray:
        lg, bg = self.parts.get("lgbm_tweedie"), self.parts.get("bgnbd_gamma_gamma")
        if lg is None or bg is None:
            return lg if bg is None else bg
        return w * lg + (1.0 - w) * bg


def training_rows(tables: Tables, cutoffs: list[pd.Timestamp], horizon_days: int,
                  features_at: FeaturesAt) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Stacked rows: features of the customers existing at each cutoff, their spend in the horizon after,
    and each row's cutoff index."""
    Xs, ys, gs = [], [], []
    for k, c in enumerate(cutoffs):
        ids = existing_customers(tables, c)
        Xs.append(features_at(c).loc[ids].reset_index(drop=True))
        ys.append(realised_spend(tables, c, horizon_days, ids))
        gs.append(np.full(len(ids), k))
    if not Xs:
        raise ValueError("value model: no training cutoff")
    return pd.concat(Xs, ignore_index=True), np.concatenate(ys), np.concatenate(gs)


def fit_at(tables: Tables, plan: FitPlan, horizon_days: int, features_at: FeaturesAt,
           params: dict) -> CustomerValueModel:
    """A value model fitted on ``plan``'s training cutoffs and calibrated at ``plan.at``."""
    X, y, groups = training_rows(tables, plan.training, horizon_days, features_at)
    F_at = features_at(plan.at).loc[existing_customers(tables, plan.at)]
    model = CustomerValueModel(horizon_days=horizon_days, **params).fit(X, y, F_at, groups)
    return model.set_decile_edges(model.predict(F_at))


def score_at(model: CustomerValueModel, tables: Tables, cutoff: pd.Timestamp, features_at: FeaturesAt,
             *, realised: bool = True) -> Scored:
    """Each part's predicted spend at ``cutoff`` and (when the data hold it) the spend realised after it."""
    ids = existing_customers(tables, cutoff)
    parts = model.component_spend(features_at(cutoff).loc[ids])
    real = realised_spend(tables, cutoff, int(model.horizon_days), ids) if realised else None
    return Scored(ids, parts, real)


def ranking_score(metrics: dict) -> float:
    """What the blend is chosen by: the mean of Spearman and top-decile capture."""
    return 0.5 * (metrics["spearman"] + metrics["top_decile_capture"])


@dataclass
class BlendChoice:
    """The chosen weight on LightGBM and every weight's validation figures."""

    weight: float
    by_weight: dict[float, dict] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "criterion": "mean of Spearman and top-decile capture at the validation cutoff",
            "weight_lgbm": self.weight,
            "by_weight": {str(w): {k: m[k] for k in ("spearman", "top_decile_capture", "mae")}
                          for w, m in self.by_weight.items()},
        }


def choose_blend(scored: Scored, margin: float) -> BlendChoice:
    """The blend weight (0 = BG/NBD-GG alone, 1 = LightGBM alone) ranking validation spend best."""
    if "bgnbd_gamma_gamma" not in scored.parts:
        return BlendChoice(1.0, {1.0: value_metrics(margin * scored.blend(1.0), margin * scored.realised)})
    choice = BlendChoice(0.0)
    best = -np.inf
    for w in BLEND_GRID:
        m = value_metrics(margin * scored.blend(float(w)), margin * scored.realised)
        choice.by_weight[float(w)] = m
        if ranking_score(m) > best + 1e-12:
            best, choice.weight = ranking_score(m), float(w)
    return choice


def select_and_fit(tables: Tables, schedule: ValueSchedule, features_at: FeaturesAt,
                   params: dict) -> tuple[CustomerValueModel, BlendChoice]:
    """Choose the blend at the validation cutoff, then fit the chosen model for the final cutoff."""
    h = schedule.horizon_days
    val_model = fit_at(tables, schedule.validation, h, features_at, params)
    choice = choose_blend(score_at(val_model, tables, schedule.validation.at, features_at), val_model.margin)
    final = fit_at(tables, schedule.final, h, features_at, {**params, "blend_weight": choice.weight})
    return final, choice
