"""Multi-treatment effect of outreach on churn: a doubly robust learner (DR-learner) on LightGBM.

Why this method: the outreach log is a randomised experiment with recorded propensities, so a doubly
robust learner (Kennedy 2020; causalml's ``BaseDRLearner``) is unbiased for each action's effect even
where the outcome model is wrong, and its final stage is a plain regression that can learn effects of
either sign (sleeping dogs). The DR pseudo-outcome of action ``a`` versus no contact needs the
propensity of an action only for rows that *received* it, which is exactly the logged propensity.

1. Outcome model ``mu(x, a) = P(churn | x, a)``: one LightGBM classifier over customer features plus the
   action's channel and offer (an S-learner), so actions and customers share strength and customers with
   no outreach history still get predictions. Cross-fitted (out-of-fold) for the pseudo-outcomes.
2. Pseudo-outcomes ``phi_a = mu(x,a) - mu(x,0) + 1[A=a](y - mu(x,a))/p - 1[A=0](y - mu(x,0))/p``.
3. Final stage: per action, a small, heavily regularised LightGBM regressor ``tau_a(x) ~ phi_a``.

``final="plugin"`` skips 2-3 and uses ``mu(x,a) - mu(x,0)`` (the S-learner effect: less variance, shrunk
towards zero). The model is a plain picklable class, so it travels inside a registered decision system.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

NO_CONTACT = "no_contact"


def _split(action: str) -> tuple[str, str]:
    if action == NO_CONTACT:
        return "none", "none"
    ch, _, off = action.partition(":")
    return ch, off or "none"


class UpliftModel:
    """Effects on churn probability of every action versus no contact, learned from a randomised log.

    Parameters: ``actions`` (action ids, ``actions[0]`` must be the control ``no_contact``), LightGBM sizes
    for the outcome and effect models, ``n_folds`` for cross-fitting, ``min_propensity`` (clip),
    ``final`` in {"dr", "plugin"}, ``random_state``. Fitted attributes end in ``_``.
    """

    def __init__(
        self,
        actions: list[str],
        *,
        outcome_estimators: int = 300,
        outcome_leaves: int = 31,
        effect_estimators: int = 150,
        effect_leaves: int = 7,
        effect_min_child_samples: int = 400,
        learning_rate: float = 0.05,
        n_folds: int = 2,
        min_propensity: float = 0.01,
        final: str = "dr",
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.actions = actions
        self.outcome_estimators = outcome_estimators
        self.outcome_leaves = outcome_leaves
        self.effect_estimators = effect_estimators
        self.effect_leaves = effect_leaves
        self.effect_min_child_samples = effect_min_child_samples
        self.learning_rate = learning_rate
        self.n_folds = n_folds
        self.min_propensity = min_propensity
        self.final = final
        self.random_state = random_state
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ helpers
    def _design(self, X: pd.DataFrame, action_idx: np.ndarray) -> pd.DataFrame:
        D = X[self.feature_names_].reset_index(drop=True).astype(float).copy()
        chans = np.asarray(self.channel_of_, dtype=object)[action_idx]
        offs = np.asarray(self.offer_of_, dtype=object)[action_idx]
        D["__channel"] = pd.Categorical(chans, categories=self.channels_)
        D["__offer"] = pd.Categorical(offs, categories=self.offers_)
        D["__action"] = pd.Categorical(np.asarray(self.actions, dtype=object)[action_idx], categories=self.actions)
        D["__contacted"] = (action_idx != 0).astype(float)
        return D

    def _outcome_model(self) -> lgb.LGBMClassifier:
        return lgb.LGBMClassifier(
            n_estimators=self.outcome_estimators,
            num_leaves=self.outcome_leaves,
            learning_rate=self.learning_rate,
            min_child_samples=50,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            random_state=self.random_state,
            verbose=-1,
            n_jobs=self.n_jobs,
        )

    def _predict_all(self, model: lgb.LGBMClassifier, X: pd.DataFrame) -> np.ndarray:
        n, K = len(X), len(self.actions)
        out = np.empty((n, K))
        for k in range(K):
            out[:, k] = model.predict_proba(self._design(X, np.full(n, k)))[:, 1]
        return out

    # ------------------------------------------------------------------ API
    def fit(
        self,
        X: pd.DataFrame,
        action: np.ndarray,
        propensity: np.ndarray,
        outcome: np.ndarray,
        *,
        groups: np.ndarray | None = None,
    ) -> UpliftModel:
        """Fit on logged rows: features ``X``, logged ``action`` ids, their ``propensity``, churn ``outcome``.

        ``groups`` (e.g. customer ids) keep one customer's rows in one cross-fitting fold.
        """
        if not self.actions or self.actions[0] != NO_CONTACT:
            raise ValueError(f"UpliftModel: actions[0] must be {NO_CONTACT!r}, got {self.actions[:1]}")
        if self.final not in ("dr", "plugin"):
            raise ValueError(f"UpliftModel: final must be 'dr' or 'plugin', got {self.final!r}")
        action = np.asarray(action, dtype=object)
        index = {a: k for k, a in enumerate(self.actions)}
        unknown = sorted({a for a in pd.unique(action) if a not in index})
        if unknown:
            raise ValueError(f"UpliftModel: {len(unknown)} logged action(s) not in the action list: {unknown[:5]}")
        y = np.asarray(outcome, dtype=float)
        p = np.asarray(propensity, dtype=float)
        n = len(X)
        if not (len(action) == len(p) == len(y) == n):
            raise ValueError(
                f"UpliftModel: lengths differ: X {n}, action {len(action)}, propensity {len(p)}, outcome {len(y)}"
            )
        bad = ~np.isfinite(p) | (p <= 0) | (p > 1)
        if bad.any():
            raise ValueError(f"UpliftModel: {int(bad.sum())} propensities outside (0, 1] or missing")
        a_idx = np.array([index[a] for a in action], dtype=int)
        self.feature_names_ = [str(c) for c in X.columns]
        self.channel_of_ = [_split(a)[0] for a in self.actions]
        self.offer_of_ = [_split(a)[1] for a in self.actions]
        self.channels_ = sorted(set(self.channel_of_))
        self.offers_ = sorted(set(self.offer_of_))
        p = np.clip(p, self.min_propensity, 1.0)
        X = X.reset_index(drop=True)

        self.outcome_model_ = self._outcome_model().fit(self._design(X, a_idx), y)
        K = len(self.actions)
        self.effect_models_: list[lgb.LGBMRegressor | None] = [None] * K
        if self.final == "plugin":
            return self

        # Cross-fitted outcome predictions for every action.
        rng = np.random.default_rng(self.random_state)
        if groups is None:
            fold = rng.integers(0, self.n_folds, n)
        else:
            g_codes, g_inv = np.unique(np.asarray(groups).astype(str), return_inverse=True)
            fold = rng.integers(0, self.n_folds, len(g_codes))[g_inv]
        mu = np.empty((n, K))
        for f in range(self.n_folds):
            tr, te = fold != f, fold == f
            if not te.any():
                continue
            m = self._outcome_model().fit(self._design(X[tr], a_idx[tr]), y[tr])
            mu[te] = self._predict_all(m, X[te])
        resid = y - mu[np.arange(n), a_idx]
        ctrl = (a_idx == 0) * resid / p
        for k in range(1, K):
            phi = mu[:, k] - mu[:, 0] + (a_idx == k) * resid / p - ctrl
            reg = lgb.LGBMRegressor(
                n_estimators=self.effect_estimators,
                num_leaves=self.effect_leaves,
                learning_rate=self.learning_rate,
                min_child_samples=self.effect_min_child_samples,
                subsample=0.8,
                subsample_freq=1,
                colsample_bytree=0.8,
                reg_lambda=10.0,
                random_state=self.random_state + k,
                verbose=-1,
                n_jobs=self.n_jobs,
            )
            self.effect_models_[k] = reg.fit(X[self.feature_names_].astype(float), phi)
        return self

    def predict_effect(self, X: pd.DataFrame) -> np.ndarray:
        """``(n, K)`` change in churn probability of each action versus no contact (column 0 = 0)."""
        X = X.reset_index(drop=True)
        n, K = len(X), len(self.actions)
        if self.final == "plugin":
            mu = self._predict_all(self.outcome_model_, X)
            return mu - mu[:, [0]]
        tau = np.zeros((n, K))
        Xf = X[self.feature_names_].astype(float)
        for k in range(1, K):
            tau[:, k] = self.effect_models_[k].predict(Xf)
        return tau

    def predict_churn(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(p_no_contact (n,), p_action (n, K))``: churn probability without and with each action."""
        X = X.reset_index(drop=True)
        p0 = self.outcome_model_.predict_proba(self._design(X, np.zeros(len(X), dtype=int)))[:, 1]
        p = np.clip(p0[:, None] + self.predict_effect(X), 0.0, 1.0)
        p[:, 0] = p0
        return p0, p


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
        y = np.asarray(spend_per_day, dtype=float)
        if len(y) != len(X):
            raise ValueError(f"ValueModel: X has {len(X)} rows, spend_per_day {len(y)}")
        if (~np.isfinite(y) | (y < 0)).any():
            raise ValueError(f"ValueModel: {int((~np.isfinite(y) | (y < 0)).sum())} negative or missing spend rates")
        self.feature_names_ = [str(c) for c in X.columns]
        self.model_ = lgb.LGBMRegressor(
            objective="poisson",
            n_estimators=self.n_estimators,
            num_leaves=self.num_leaves,
            learning_rate=self.learning_rate,
            min_child_samples=50,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            random_state=self.random_state,
            verbose=-1,
            n_jobs=self.n_jobs,
        ).fit(X[self.feature_names_].astype(float), y)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Forward value per customer in currency units."""
        rate = self.model_.predict(X[self.feature_names_].astype(float))
        return self.margin * np.maximum(rate, 0.0) * self.horizon_days
