"""The value of keeping a customer, the other factor of an action's expected incremental value.

The decision rule weighs a churn reduction by what the customer is worth while they stay; this model
estimates it from spend. It is a plain picklable class, so it travels inside a registered decision system.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.models.lgbm import (
    PREDICT_ROWS,
    booster_of,
    booster_predict,
    feature_matrix,
    lgbm_params,
    prediction_threads,
)


def nonnegative_target(values, X: pd.DataFrame, owner: str, name: str) -> np.ndarray:
    """``values`` as a float array, checked: one per row of ``X``, finite and >= 0 (a spend target)."""
    y = np.asarray(values, dtype=float)
    if len(y) != len(X):
        raise ValueError(f"{owner}: X has {len(X)} rows, {name} {len(y)}")
    bad = ~np.isfinite(y) | (y < 0)
    if bad.any():
        raise ValueError(f"{owner}: {int(bad.sum())} negative or missing {name}")
    return y


class ValueModel:
    """Forward value of keeping a customer: ``margin x expected spend per day while active x horizon``.

    The spend rate is a LightGBM Poisson regression of the realised spend per day in the window after each
    training cutoff, fitted on customers who stayed (label 0), so it is the value *at stake* if they stay,
    not discounted by their churn risk (the decision rule multiplies by the churn reduction). ``margin``
    and ``horizon_days`` are business inputs (see the ``value`` section of the policy config).
    """

    def __init__(
        self,
        *,
        margin: float = 0.35,
        horizon_days: float = 730.0,
        n_estimators: int = 200,
        num_leaves: int = 15,
        learning_rate: float = 0.05,
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.margin = margin
        self.horizon_days = horizon_days
        self.n_estimators = n_estimators
        self.num_leaves = num_leaves
        self.learning_rate = learning_rate
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X: pd.DataFrame, spend_per_day: np.ndarray) -> ValueModel:
        """Fit the daily spend rate from features ``X`` (rows of customers who stayed)."""
        y = nonnegative_target(spend_per_day, X, "ValueModel", "spend rates")
        self.feature_names_ = [str(c) for c in X.columns]
        self.model_ = lgb.LGBMRegressor(
            **lgbm_params(
                "poisson",
                sklearn=True,
                n_estimators=self.n_estimators,
                num_leaves=self.num_leaves,
                learning_rate=self.learning_rate,
                random_state=self.random_state,
                n_jobs=self.n_jobs,
            )
        ).fit(X[self.feature_names_].astype(float), y)
        return self

    def predict(self, X: pd.DataFrame, *, matrix: np.ndarray | None = None) -> np.ndarray:
        """Forward value per customer in currency units.

        ``matrix``: ``X``'s ``feature_names_`` columns as a float matrix, when the caller has it already.
        """
        if not len(X):
            return np.empty(0)
        if matrix is None and len(X) > PREDICT_ROWS:  # row chunks: no float copy of every row at once
            return np.concatenate([self.predict(X.iloc[s : s + PREDICT_ROWS]) for s in range(0, len(X), PREDICT_ROWS)])
        Xf = feature_matrix(X, self.feature_names_) if matrix is None else matrix
        rate = booster_predict(booster_of(self.model_), Xf, num_threads=prediction_threads())
        return self.margin * np.maximum(rate, 0.0) * self.horizon_days
