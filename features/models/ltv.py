"""Customer value: the expected margin a customer brings over a horizon, from their history at a cutoff.

Two candidates and their blend: the probabilistic BG/NBD + Gamma-Gamma model
(:mod:`features.models.bgnbd`) on the RFM summary read from the value features, and a LightGBM regressor
with a Tweedie loss (most customers spend nothing in a horizon, a few a lot) on all of engage's features.
Training (``training/value``) chooses the blend weight on validation cutoffs; this class only carries the
fitted parts and predicts, so it pickles into a registered decision system. Value deciles use edges fixed
at training time, so a customer's decile does not depend on who else is in the request.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.models.bgnbd import BGNBDGammaGamma, summary_from_features
from features.models.lgbm import booster_of, booster_predict, feature_matrix, lgbm_params, prediction_threads
from features.models.value import nonnegative_target

CANDIDATES: tuple[str, ...] = ("bgnbd_gamma_gamma", "lgbm_tweedie", "blend")
# What LightGBM reads from BG/NBD-GG beside the features (when stacked): expected purchases in the horizon,
# P(alive), expected order value and their product (expected spend).
STACKED: tuple[str, ...] = ("bgnbd_purchases", "bgnbd_p_alive", "gg_order_value", "bgnbd_spend")


def tweedie_regressor(*, n_estimators: int, learning_rate: float, num_leaves: int, power: float,
                      random_state: int, n_jobs: int) -> lgb.LGBMRegressor:
    """The LightGBM spend regressor: Tweedie loss (a point mass at zero plus a skewed positive part)."""
    params = lgbm_params(
        "tweedie",
        sklearn=True,
        n_estimators=n_estimators,
        num_leaves=num_leaves,
        learning_rate=learning_rate,
        random_state=random_state,
        n_jobs=n_jobs,
    )
    params["tweedie_variance_power"] = power
    return lgb.LGBMRegressor(**params)


class CustomerValueModel:
    """Expected margin over ``horizon_days``: ``margin x (w x LightGBM spend + (1 - w) x BG/NBD-GG spend)``.

    ``blend_weight`` ``w`` is 0 for the probabilistic model alone, 1 for LightGBM alone (training chooses it).
    Fit with :meth:`fit` on stacked training rows (features at several cutoffs, realised spend in the
    horizon after each) and the feature table at the latest cutoff the BG/NBD model is calibrated on.
    """

    def __init__(self, *, horizon_days: float = 365.0, margin: float = 0.35, blend_weight: float = 0.5,
                 n_estimators: int = 300, learning_rate: float = 0.03, num_leaves: int = 15,
                 tweedie_power: float = 1.3, penalizer: float = 0.001, stack_bgnbd: bool = True,
                 random_state: int = 0, n_jobs: int = 1) -> None:
        self.horizon_days = horizon_days
        self.margin = margin
        self.blend_weight = blend_weight
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.tweedie_power = tweedie_power
        self.penalizer = penalizer
        self.stack_bgnbd = stack_bgnbd
        self.random_state = random_state
        self.n_jobs = n_jobs

    @property
    def candidate(self) -> str:
        """Which candidate the blend weight makes this model."""
        w = float(self.blend_weight)
        return "bgnbd_gamma_gamma" if w <= 0 else "lgbm_tweedie" if w >= 1 else "blend"

    def fit(self, X: pd.DataFrame, spend: np.ndarray, F_latest: pd.DataFrame,
            groups: np.ndarray | None = None) -> CustomerValueModel:
        """Fit LightGBM on ``X`` -> realised ``spend`` (>= 0) and BG/NBD-GG on the summary of ``F_latest``.

        Both parts are fitted whatever the weight (their predictions are reported side by side); a history
        too thin for BG/NBD is an error only when the blend needs it. With ``stack_bgnbd``, LightGBM also
        reads the BG/NBD quantities of each row (:data:`STACKED`), from a BG/NBD fitted on the rows of the
        row's own ``groups`` value (its training cutoff: the population at that time, nothing later).
        """
        y = nonnegative_target(spend, X, "CustomerValueModel", "spends")
        self.feature_names_ = [str(c) for c in X.columns]
        try:
            self.bgnbd_ = BGNBDGammaGamma(penalizer=self.penalizer).fit(summary_from_features(F_latest))
        except ValueError:
            if self.blend_weight < 1:
                raise
            self.bgnbd_ = None
        matrix = X[self.feature_names_].to_numpy(dtype=float, na_value=np.nan)
        self.stacked_ = bool(self.stack_bgnbd and self.bgnbd_ is not None)
        if self.stacked_:
            g = np.zeros(len(X), dtype=np.int64) if groups is None else pd.factorize(np.asarray(groups))[0]
            extra = np.empty((len(X), len(STACKED)))
            for k in np.unique(g):
                rows = g == k
                part = BGNBDGammaGamma(penalizer=self.penalizer).fit(summary_from_features(X[rows]))
                extra[rows] = self._bgnbd_columns(part, X[rows])
            matrix = np.column_stack([matrix, extra])
        self.lgbm_ = tweedie_regressor(
            n_estimators=self.n_estimators, learning_rate=self.learning_rate, num_leaves=self.num_leaves,
            power=self.tweedie_power, random_state=self.random_state, n_jobs=self.n_jobs,
        ).fit(matrix, y)
        return self

    def _bgnbd_columns(self, model: BGNBDGammaGamma, F: pd.DataFrame) -> np.ndarray:
        """The :data:`STACKED` columns of ``F`` under a fitted BG/NBD-GG model."""
        s = summary_from_features(F)
        purchases = model.expected_purchases(s, self.horizon_days)
        order = model.expected_order_value(s)
        return np.column_stack([purchases, model.p_alive(s), order, np.where(s.bought, purchases * order, 0.0)])

    def component_spend(self, F: pd.DataFrame, *, matrix: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Each fitted part's expected spend over the horizon (no margin), keyed by candidate name."""
        out: dict[str, np.ndarray] = {}
        if getattr(self, "lgbm_", None) is not None:
            Xf = feature_matrix(F, self.feature_names_, missing_as_nan=True) if matrix is None else matrix
            if getattr(self, "stacked_", False):
                Xf = np.column_stack([Xf, self._bgnbd_columns(self.bgnbd_, F)])
            raw = booster_predict(booster_of(self.lgbm_), Xf, num_threads=prediction_threads())
            out["lgbm_tweedie"] = np.maximum(np.asarray(raw, dtype=float), 0.0)
        if getattr(self, "bgnbd_", None) is not None:
            out["bgnbd_gamma_gamma"] = self.bgnbd_.expected_spend(summary_from_features(F), self.horizon_days)
        return out

    def predict_spend(self, F: pd.DataFrame, *, matrix: np.ndarray | None = None) -> np.ndarray:
        """Expected purchase amount over the horizon per customer (rows of ``F``)."""
        if not len(F):
            return np.empty(0)
        parts = self.component_spend(F, matrix=matrix)
        w = float(self.blend_weight)
        lg = parts.get("lgbm_tweedie", 0.0)
        bg = parts.get("bgnbd_gamma_gamma", 0.0)
        return np.asarray(w * lg + (1.0 - w) * bg, dtype=float) * np.ones(len(F))

    def predict(self, F: pd.DataFrame, *, matrix: np.ndarray | None = None) -> np.ndarray:
        """Expected margin over the horizon per customer, in currency units."""
        return self.margin * self.predict_spend(F, matrix=matrix)

    def set_decile_edges(self, values: np.ndarray) -> CustomerValueModel:
        """Fix the value decile edges from a reference population's predicted values (training's latest cutoff)."""
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v)]
        self.decile_edges_ = np.quantile(v, np.linspace(0.1, 0.9, 9)) if v.size else np.zeros(9)
        return self

    def decile(self, values: np.ndarray) -> np.ndarray:
        """Value decile 1 (lowest) ... 10 (highest) of each value against the fixed edges."""
        edges = getattr(self, "decile_edges_", None)
        if edges is None:
            raise ValueError("CustomerValueModel: decile edges are not set (call set_decile_edges after fit)")
        # side="left": a value equal to an edge stays below it, so customers worth nothing are all in decile 1
        # however many of them there are
        return np.searchsorted(edges, np.asarray(values, dtype=float), side="left").astype(np.int64) + 1


class PolicyValue:
    """The customer-value model as the decision rule reads a value: its expected margin scaled from its own
    horizon to the policy's ``horizon_days`` (a plain picklable wrapper, carried inside the policy)."""

    def __init__(self, model: CustomerValueModel, horizon_days: float) -> None:
        self.model = model
        self.horizon_days = horizon_days

    @property
    def feature_names_(self) -> list[str]:
        return list(self.model.feature_names_)

    def predict(self, F: pd.DataFrame, *, matrix: np.ndarray | None = None) -> np.ndarray:
        """Value per customer in currency units over ``horizon_days``."""
        return self.from_margin(self.model.predict(F, matrix=matrix))

    def from_margin(self, margin: np.ndarray) -> np.ndarray:
        """:meth:`predict` from the wrapped model's own prediction (``model.predict(F)``), when it is known."""
        return margin * (float(self.horizon_days) / float(self.model.horizon_days))
