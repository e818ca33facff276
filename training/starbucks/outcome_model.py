"""The outcome model ``q(x, offer)`` of the Starbucks evaluation, and its cross-fitted predictions.

``q`` gives the doubly robust pseudo-outcomes their regression part; fitted out of fold, a row's ``q``
never saw that row's own outcome.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.starbucks.rows import CHANNEL_SET

OFFER_ATTRIBUTES: tuple[str, ...] = ("reward", "difficulty", "duration_days", *(f"via_{c}" for c in CHANNEL_SET))


class OutcomeModel:
    """``q(x, offer)``: expected reward of each offer, one LightGBM regressor over covariates + offer attributes.

    Sharing one model across offers (an S-learner) lets the offers' common structure (reward, minimum spend,
    validity, channels) carry over; offer identity is a categorical input too. ``catalogue`` is
    :func:`~training.starbucks.rows.offer_catalogue`'s frame. Fitted attributes end in ``_``.
    """

    def __init__(
        self,
        catalogue: pd.DataFrame,
        *,
        n_estimators: int = 300,
        learning_rate: float = 0.03,
        num_leaves: int = 15,
        min_child_samples: int = 200,
        reg_lambda: float = 5.0,
        random_state: int = 0,
    ) -> None:
        self.catalogue = catalogue
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.reg_lambda = reg_lambda
        self.random_state = random_state

    def _design(self, X: pd.DataFrame, actions: np.ndarray) -> np.ndarray:
        attrs = self.catalogue[list(OFFER_ATTRIBUTES)].to_numpy(float)[actions]
        return np.column_stack([X.to_numpy(float), attrs, actions.astype(float)])

    def fit(self, X: pd.DataFrame, actions: np.ndarray, reward: np.ndarray) -> OutcomeModel:
        import lightgbm as lgb

        self.columns_ = list(X.columns)
        self.model_ = lgb.LGBMRegressor(
            n_estimators=self.n_estimators, learning_rate=self.learning_rate, num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples, subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
            reg_lambda=self.reg_lambda, random_state=self.random_state, n_jobs=1, deterministic=True,
            force_row_wise=True, verbose=-1,
        )
        D = self._design(X[self.columns_], np.asarray(actions, dtype=int))
        self.model_.fit(D, np.asarray(reward, dtype=float), categorical_feature=[D.shape[1] - 1])
        return self

    def predict_all(self, X: pd.DataFrame) -> np.ndarray:
        """``(n, K)`` predicted rewards of every offer for every row."""
        K = len(self.catalogue)
        n = len(X)
        D = self._design(pd.concat([X[self.columns_]] * K, ignore_index=True), np.repeat(np.arange(K), n))
        return self.model_.predict(D, num_threads=1).reshape(K, n).T


def cross_fit_q(
    X: pd.DataFrame, actions: np.ndarray, reward: np.ndarray, folds: np.ndarray, catalogue: pd.DataFrame, seed: int
) -> np.ndarray:
    """Out-of-fold ``q`` for every row: each fold predicted by a model fitted on the other folds."""
    q = np.zeros((len(X), len(catalogue)))
    for f in np.unique(folds):
        test = folds == f
        model = OutcomeModel(catalogue, random_state=seed).fit(X[~test], actions[~test], reward[~test])
        q[test] = model.predict_all(X[test])
    return q
