"""Multi-treatment effect of outreach on churn, learned from a randomised outreach log.

Why this method: the outreach log is a randomised experiment with recorded propensities, so doubly robust
(DR) pseudo-outcomes (Kennedy 2020; causalml's ``BaseDRLearner``) are unbiased for each action's effect
whatever the outcome model, and a regression on them can learn effects of either sign (sleeping dogs).
The DR pseudo-outcome of action ``a`` versus no contact needs the propensity of an action only for rows
that *received* it, which is exactly the logged propensity. The difficulty is variance, not bias: effects
are a few points of churn probability for a minority of the customers against much larger Bernoulli
noise, and each action gets only a small share of the log. Three final stages turn the pseudo-outcomes
into effects:

* ``final="reach"``: one pooled ridge regression of every action's pseudo-outcomes through the channel's
  reach (:mod:`features.models.reach`). It finds persuadables and sleeping dogs in the simulated worlds
  where per-action regressions and the S-learner find noise.
* ``final="dr"``: per action, a small, heavily regularised LightGBM regressor on the DR pseudo-outcomes
  (cross-fitted S-learner outcome model). Flexible but, at these effect sizes, mostly noise.
* ``final="plugin"``: the S-learner effect ``mu(x,a) - mu(x,0)`` (shrunk towards zero; trees rarely split
  on the action when its effect is this small).

The outcome model ``mu(x, a) = P(churn | x, a)`` is one LightGBM classifier over customer features plus
the action's channel and offer (an S-learner); for an amount (``outcome_type="continuous"``, e.g. spend in
a campaign's window) it is a LightGBM regressor of ``E[y | x, a]`` and everything else is unchanged (the DR
pseudo-outcomes need no particular outcome scale). It gives ``P(churn | no contact)`` in every mode, so
customers with no outreach history still get predictions. Scoring never builds a frame per action
(:mod:`features.models.uplift_plan`). The model is a plain picklable class, so it travels inside a
registered decision system.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.contract.catalogue import NO_CONTACT
from features.models import reach
from features.models.lgbm import booster_of, booster_predict, feature_matrix, lgbm_params, prediction_threads
from features.models.lgbm_trees import merged_predict, pruned_predict
from features.models.uplift_plan import PLAN_VERSION, design_predict, effect_plan, model_output, prediction_plan


def _split(action: str) -> tuple[str, str]:
    if action == NO_CONTACT:
        return "none", "none"
    ch, _, off = action.partition(":")
    return ch, off or "none"


@dataclass(frozen=True)
class LoggedRows:
    """The outreach log as ``fit`` uses it: features (index reset), action indices into the model's
    actions, propensities clipped below at ``min_propensity``, churn outcomes, and cross-fitting groups."""

    X: pd.DataFrame
    action: np.ndarray
    propensity: np.ndarray
    outcome: np.ndarray
    groups: np.ndarray | None


class UpliftModel:
    """Effects on churn probability of every action versus no contact, learned from a randomised log.

    Parameters: ``actions`` (action ids, ``actions[0]`` must be the control ``no_contact``), LightGBM sizes
    for the outcome and effect models, ``n_folds`` for cross-fitting, ``min_propensity`` (clip),
    ``final`` in {"reach", "dr", "plugin"}, ``effect_ridge`` (ridge penalty per logged row of the "reach"
    final stage's shared slopes), ``offer_ridge_ratio`` (``None``: no per-offer slopes; else their penalty
    is this multiple of ``effect_ridge``: in the simulated worlds they added more noise than signal),
    ``effect_features`` (how many features the ``reach`` stage's slopes use, kept by their pooled score on the
    pseudo-outcomes: ``"auto"`` = chosen among :data:`features.models.reach.SCREEN_SIZES` and all by held-out
    pseudo-outcome error over two halves of the customers; an integer; ``None`` = every feature),
    ``outcome_type`` (``"binary"``: an event such as churn, a visit, a purchase; ``"continuous"``: an amount),
    ``random_state``.
    Fitted attributes end in ``_`` (``effect_features_``, ``effect_feature_names_``, ``screen_loss_``).
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
        effect_ridge: float = 0.3,
        offer_ridge_ratio: float | None = None,
        effect_features: int | str | None = "auto",
        outcome_type: str = "binary",
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.actions = actions
        self.outcome_type = outcome_type
        self.effect_features = effect_features
        self.effect_ridge = effect_ridge
        self.offer_ridge_ratio = offer_ridge_ratio
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

    # ------------------------------------------------------------------ designs and LightGBM models
    def _design(self, X: pd.DataFrame, action_idx: np.ndarray) -> pd.DataFrame:
        # No .copy(): under copy-on-write the added columns never reach X, and a copy of every feature row
        # per fit was the policy trainer's largest temporary.
        D = X[self.feature_names_].reset_index(drop=True).astype(float)
        chans = np.asarray(self.channel_of_, dtype=object)[action_idx]
        offs = np.asarray(self.offer_of_, dtype=object)[action_idx]
        D["__channel"] = pd.Categorical(chans, categories=self.channels_)
        D["__offer"] = pd.Categorical(offs, categories=self.offers_)
        D["__action"] = pd.Categorical(np.asarray(self.actions, dtype=object)[action_idx], categories=self.actions)
        D["__contacted"] = (action_idx != 0).astype(float)
        return D

    @property
    def binary(self) -> bool:
        """Whether the outcome is an event (a probability is predicted) rather than an amount."""
        return getattr(self, "outcome_type", "binary") == "binary"  # models pickled before it are binary

    def _outcome_model(self) -> lgb.LGBMClassifier | lgb.LGBMRegressor:
        if not self.binary:
            return self._lgbm(
                lgb.LGBMRegressor, "regression", self.outcome_estimators, self.outcome_leaves, self.random_state
            )
        return self._lgbm(lgb.LGBMClassifier, "binary", self.outcome_estimators, self.outcome_leaves, self.random_state)

    def _effect_model(self, k: int) -> lgb.LGBMRegressor:
        return self._lgbm(
            lgb.LGBMRegressor, "regression", self.effect_estimators, self.effect_leaves, self.random_state + k,
            min_child_samples=self.effect_min_child_samples, reg_lambda=10.0,
        )  # fmt: skip

    def _lgbm(self, estimator: type, objective: str, n_estimators: int, num_leaves: int, random_state: int, **params):
        """An unfitted scikit-learn LightGBM ``estimator`` with the shared parameters and this model's rate."""
        sizes = {"n_estimators": n_estimators, "num_leaves": num_leaves, "learning_rate": self.learning_rate}
        return estimator(
            **lgbm_params(objective, sklearn=True, **sizes, random_state=random_state, n_jobs=self.n_jobs, **params)
        )

    def _predict_all(
        self,
        model: lgb.LGBMClassifier,
        X: pd.DataFrame,
        actions: np.ndarray | None = None,
        *,
        matrix: np.ndarray | None = None,
    ) -> np.ndarray:
        """``(n, len(actions))`` churn probabilities of ``model`` with each action (default: every action).

        One float design matrix in the booster's column order (the pandas path's numbers); for the fitted
        outcome model each customer's trees are walked once for all actions (see ``_outcome_plan``).
        ``matrix`` is ``X``'s ``feature_names_`` columns as floats, when the caller has it already.
        """
        acts = np.arange(len(self.actions)) if actions is None else np.asarray(actions, dtype=int)
        n = len(X)
        if n == 0:
            return np.empty((0, len(acts)))
        booster = booster_of(model)
        if booster is booster_of(self.outcome_model_):
            plan = self._outcome_plan()
        else:
            plan = prediction_plan(model, self._design, list(self.feature_names_), len(self.actions), prune=False)
        if plan["layout"] is None:  # a design the numpy path does not know: the pandas path
            X = X.reset_index(drop=True)
            out = np.empty((n, len(acts)))
            for j, k in enumerate(acts):
                out[:, j] = model_output(model, self._design(X, np.full(n, k)))
            return out
        Xf = feature_matrix(X, self.feature_names_) if matrix is None else matrix
        if plan["pruned"] is not None and actions is None:
            return pruned_predict(plan["pruned"], plan["layout"], Xf)
        return design_predict(booster, plan["layout"], Xf, acts)

    def _outcome_plan(self) -> dict:
        """The prediction plan of the fitted outcome model, built once (lazily: models pickled without it
        still load)."""
        plan = self.__dict__.get("outcome_plan_")
        booster = booster_of(self.outcome_model_)
        if plan is None or plan.get("version") != PLAN_VERSION or plan.get("source") is not booster:
            names = list(self.feature_names_)
            plan = self.outcome_plan_ = prediction_plan(
                self.outcome_model_, self._design, names, len(self.actions), prune=True
            )
        return plan

    def _effect_plan(self) -> dict:
        """The per-action effect regressors merged into one model, built once (lazily: older pickles
        still load)."""
        sources = [None if m is None else booster_of(m) for m in self.effect_models_]
        plan = self.__dict__.get("effect_plan_")
        fresh = plan is not None and plan.get("version") == PLAN_VERSION and len(plan["sources"]) == len(sources)
        if fresh and all(a is b for a, b in zip(plan["sources"], sources, strict=True)):
            return plan
        plan = self.effect_plan_ = effect_plan(sources, len(self.feature_names_))
        return plan

    # ------------------------------------------------------------------ fitting
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
        log = self._logged_rows(X, action, propensity, outcome, groups)
        self._set_vocabulary(X)
        self.outcome_model_ = self._outcome_model().fit(self._design(log.X, log.action), log.outcome)
        self.effect_models_: list[lgb.LGBMRegressor | None] = [None] * len(self.actions)
        if self.final == "reach":
            self._fit_reach(log)
        elif self.final == "dr":
            self._fit_dr(log)
        return self

    def _logged_rows(self, X: pd.DataFrame, action, propensity, outcome, groups) -> LoggedRows:
        """The checked log: every action known, lengths equal, propensities in (0, 1]."""
        if not self.actions or self.actions[0] != NO_CONTACT:
            raise ValueError(f"UpliftModel: actions[0] must be {NO_CONTACT!r}, got {self.actions[:1]}")
        if self.final not in ("reach", "dr", "plugin"):
            raise ValueError(f"UpliftModel: final must be 'reach', 'dr' or 'plugin', got {self.final!r}")
        if getattr(self, "outcome_type", "binary") not in ("binary", "continuous"):
            raise ValueError(f"UpliftModel: outcome_type must be 'binary' or 'continuous', got {self.outcome_type!r}")
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
        p = np.clip(p, self.min_propensity, 1.0)
        return LoggedRows(X=X.reset_index(drop=True), action=a_idx, propensity=p, outcome=y, groups=groups)

    def _set_vocabulary(self, X: pd.DataFrame) -> None:
        """The feature names, and each action's channel and offer (the design's categories)."""
        self.feature_names_ = [str(c) for c in X.columns]
        self.channel_of_ = [_split(a)[0] for a in self.actions]
        self.offer_of_ = [_split(a)[1] for a in self.actions]
        self.channels_ = sorted(set(self.channel_of_))
        self.offers_ = sorted(set(self.offer_of_))

    def _fit_reach(self, log: LoggedRows) -> None:
        """The pooled DR regression through reach (:mod:`features.models.reach`), as fitted attributes."""
        Z, self.z_mean_, self.z_scale_ = reach.standardised_columns(log.X, self.feature_names_)
        self.reach_features_, self.reach_fill_ = reach.reach_columns(log.X, self.channels_)
        open_rates = list(self.reach_features_.values())
        r = reach.channel_reach(log.X[open_rates].to_numpy(dtype=float), open_rates, self.channels_,
                                self.reach_features_, self.reach_fill_)
        K = len(self.actions)
        offers = [o for o in self.offers_ if any(self.offer_of_[k] == o for k in range(1, K))]
        blocks = reach.Blocks(len(offers), Z.shape[1], 0 if self.offer_ridge_ratio is None else len(offers))
        terms = self._reach_terms(log, r, Z, offers)
        sizes = reach.screen_sizes(self.effect_features, blocks.n_features)
        ridge = reach.Ridge(self.effect_ridge, self.offer_ridge_ratio)
        fit = reach.fit_reach(Z, terms, blocks, ridge, self._folds(len(Z), log.groups, 2), sizes)
        no, d = blocks.n_offers, blocks.n_features
        self.screen_loss_ = fit.loss
        self.effect_features_ = fit.size
        kept = fit.kept[(fit.kept >= no) & (fit.kept < no + d)] - no
        self.effect_feature_names_ = [self.feature_names_[i] for i in kept]
        self.offer_effect_ = dict(zip(offers, fit.beta[:no].tolist(), strict=True))
        self.effect_coef_ = fit.beta[no:].reshape(1 + blocks.n_dev, d)
        slopes = self.effect_coef_[0][:, None] + (self.effect_coef_[1:].T if blocks.n_dev else 0.0)
        self.offer_slopes_ = np.ascontiguousarray(np.broadcast_to(slopes, (d, no)))  # (features, offers)

    def _reach_terms(
        self, log: LoggedRows, r: dict[str, np.ndarray], Z: np.ndarray, offers: list[str]
    ) -> list[reach.Term]:
        """Per contact action: its offer, its channel's reach ``r`` and its DR pseudo-outcome against a ridge
        baseline (``E[phi | x]`` = the action's effect on churn)."""
        a_idx, y, p = log.action, log.outcome, log.propensity
        m = reach.ridge_baseline(Z, y)
        ctrl = (a_idx == 0) * (y - m) / p
        return [
            reach.Term(offers.index(self.offer_of_[k]), r[self.channel_of_[k]], (a_idx == k) * (y - m) / p - ctrl)
            for k in range(1, len(self.actions))
        ]

    def _fit_dr(self, log: LoggedRows) -> None:
        """Per contact action, a LightGBM regressor on its DR pseudo-outcomes (cross-fitted outcome model)."""
        n, a_idx, y, p = len(log.X), log.action, log.outcome, log.propensity
        mu = self._cross_fitted_outcomes(log)
        resid = y - mu[np.arange(n), a_idx]
        ctrl = (a_idx == 0) * resid / p
        for k in range(1, len(self.actions)):
            phi = mu[:, k] - mu[:, 0] + (a_idx == k) * resid / p - ctrl
            self.effect_models_[k] = self._effect_model(k).fit(log.X[self.feature_names_].astype(float), phi)

    def _cross_fitted_outcomes(self, log: LoggedRows) -> np.ndarray:
        """``(n, K)`` churn probability of every row with every action, from an outcome model fitted on the
        other folds."""
        n = len(log.X)
        fold = self._folds(n, log.groups, self.n_folds)
        mu = np.empty((n, len(self.actions)))
        for f in range(self.n_folds):
            tr, te = fold != f, fold == f
            if not te.any():
                continue
            m = self._outcome_model().fit(self._design(log.X[tr], log.action[tr]), log.outcome[tr])
            mu[te] = self._predict_all(m, log.X[te])
        return mu

    def _folds(self, n: int, groups: np.ndarray | None, n_folds: int) -> np.ndarray:
        """Fold of every row; one customer's rows (``groups``) share a fold."""
        rng = np.random.default_rng(self.random_state)
        if groups is None:
            return rng.integers(0, n_folds, n)
        _, g_inv = np.unique(np.asarray(groups).astype(str), return_inverse=True)
        return rng.integers(0, n_folds, int(g_inv.max()) + 1 if n else 0)[g_inv]

    # ------------------------------------------------------------------ prediction
    def predict_effect(self, X: pd.DataFrame) -> np.ndarray:
        """``(n, K)`` change in churn probability of each action versus no contact (column 0 = 0)."""
        return self._effect(X)[0]

    def _effect(self, X: pd.DataFrame, matrix: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """``predict_effect`` and, when it came out of the same pass (plugin), ``P(churn | no contact)``."""
        n, K = len(X), len(self.actions)
        if self.final == "plugin":
            mu = self._predict_all(self.outcome_model_, X, matrix=matrix)
            return mu - mu[:, [0]], mu[:, 0].copy()
        tau = np.zeros((n, K))
        if n == 0:
            return tau, None
        Xf = feature_matrix(X, self.feature_names_) if matrix is None else matrix
        if self.final == "reach":
            return self._reach_effect(Xf), None
        merged = self._effect_plan()["merged"]
        if merged is not None:
            return merged_predict(merged, Xf), None
        for k in range(1, K):
            tau[:, k] = booster_predict(booster_of(self.effect_models_[k]), Xf, num_threads=prediction_threads())
        return tau, None

    def _reach(self, Xf: np.ndarray) -> dict[str, np.ndarray]:
        """Per channel: each customer's open rate (missing → the training mean; no feature → 1), in [0, 1]."""
        return reach.channel_reach(Xf, self.feature_names_, self.channels_, self.reach_features_, self.reach_fill_)

    def _reach_effect(self, Xf: np.ndarray) -> np.ndarray:
        """``(n, K)`` effects of the "reach" final stage: ``reach_c(x) * (b_o + slopes_o'z(x))``, exact."""
        offers = list(self.offer_effect_)
        base = np.array([self.offer_effect_[o] for o in offers])
        G = reach.opened_effects(Xf, self.z_mean_, self.z_scale_, self.offer_slopes_, base)  # (rows, offers)
        r = self._reach(Xf)
        tau = np.zeros((len(Xf), len(self.actions)))
        for k in range(1, len(self.actions)):
            tau[:, k] = r[self.channel_of_[k]] * G[:, offers.index(self.offer_of_[k])]
        return tau

    def predict_churn(self, X: pd.DataFrame, *, matrix: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(p_no_contact (n,), p_action (n, K))``: churn probability without and with each action.

        ``matrix``: ``X``'s ``feature_names_`` columns as a float matrix, when the caller has it already.
        """
        return self.predict_outcome(X, matrix=matrix)

    def predict_outcome(self, X: pd.DataFrame, *, matrix: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(mu_no_contact (n,), mu_action (n, K))``: the expected outcome without and with each action (a
        probability, clipped to [0, 1], for a binary outcome; an amount otherwise)."""
        if matrix is None and len(X):
            matrix = feature_matrix(X, self.feature_names_)
        effect, p0 = self._effect(X, matrix)
        if p0 is None:
            p0 = self._predict_all(self.outcome_model_, X, np.zeros(1, dtype=int), matrix=matrix)[:, 0]
        p = p0[:, None] + effect
        if self.binary:
            np.clip(p, 0.0, 1.0, out=p)
        p[:, 0] = p0
        return p0, p
