"""Multi-treatment effect of outreach on churn, learned from a randomised outreach log.

Why this method: the outreach log is a randomised experiment with recorded propensities, so doubly robust
(DR) pseudo-outcomes (Kennedy 2020; causalml's ``BaseDRLearner``) are unbiased for each action's effect
whatever the outcome model, and a regression on them can learn effects of either sign (sleeping dogs).
The DR pseudo-outcome of action ``a`` versus no contact needs the propensity of an action only for rows
that *received* it, which is exactly the logged propensity. The difficulty is variance, not bias: effects
are a few points of churn probability for a fifth of the customers against Bernoulli noise of ~0.3, and
each of ~18 actions gets ~5 % of the log. So the default final stage pools every action into one model
with the structure retention outreach has:

* ``final="reach"`` (default): the effect of action ``k = (channel c, offer o)`` is
  ``reach_c(x) * g_o(x)``. ``reach_c`` is the customer's smoothed open rate on the channel
  (feature ``chan_{c}_open_rate``; 1 when absent): a message that is not opened changes nothing.
  ``g_o(x) = b_o + (gamma + delta_o)'z(x)`` is the effect of an opened contact, linear in standardised
  features ``z`` with slopes ``gamma`` shared by all offers (who is persuadable at all), optional
  harder-shrunk deviations ``delta_o`` per offer (who responds to a discount rather than to content; off
  by default: on 20k simulated customers they cost more in variance than they gained, 0.28 vs 0.38 of the
  oracle's uplift), and unpenalised offer intercepts ``b_o``.
  It is one ridge least-squares fit on the DR pseudo-outcomes of *all* actions (K x n of them; the
  baseline in the pseudo-outcomes is a ridge fit of the outcome), so every logged decision informs the
  slopes. Only the features that matter most for the effect enter ``z``: each standardised feature is scored
  by its inner product with the reach-weighted pseudo-outcomes (sure independence screening, Fan & Lv 2008),
  and how many to keep (8 to all) is chosen by held-out pseudo-outcome error (unbiased for the effect's
  error up to a constant) over two halves of the customers. With ~200 features and effects this small,
  a dozen slopes estimated well beat two hundred estimated poorly (demo world: captured uplift 0.35 → 0.46 at
  the same threshold). In the simulated worlds this finds persuadables and sleeping dogs where per-action
  regressions and the S-learner find noise. It is served in closed form (a matrix product per batch, exact).
* ``final="dr"``: per action, a small, heavily regularised LightGBM regressor on the DR pseudo-outcomes
  (cross-fitted S-learner outcome model). Flexible but, at these effect sizes, mostly noise.
* ``final="plugin"``: the S-learner effect ``mu(x,a) - mu(x,0)`` (shrunk towards zero; trees rarely split
  on the action when its effect is this small).

The outcome model ``mu(x, a) = P(churn | x, a)`` is one LightGBM classifier over customer features plus
the action's channel and offer (an S-learner); it gives ``P(churn | no contact)`` in every mode, so
customers with no outreach history still get predictions. The model is a plain picklable class, so it
travels inside a registered decision system.
"""

from __future__ import annotations

import os

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.contract.catalogue import NO_CONTACT
from features.models.churn import booster_predict, feature_matrix

# Candidate numbers of features in the reach stage's slopes (``effect_features="auto"``; all features too).
SCREEN_SIZES: tuple[int, ...] = (8, 16, 32, 64)


def _split(action: str) -> tuple[str, str]:
    if action == NO_CONTACT:
        return "none", "none"
    ch, _, off = action.partition(":")
    return ch, off or "none"


class UpliftModel:
    """Effects on churn probability of every action versus no contact, learned from a randomised log.

    Parameters: ``actions`` (action ids, ``actions[0]`` must be the control ``no_contact``), LightGBM sizes
    for the outcome and effect models, ``n_folds`` for cross-fitting, ``min_propensity`` (clip),
    ``final`` in {"reach", "dr", "plugin"}, ``effect_ridge`` (ridge penalty per logged row of the "reach"
    final stage's shared slopes), ``offer_ridge_ratio`` (``None``: no per-offer slopes; else their penalty
    is this multiple of ``effect_ridge``: at 20k customers they added more noise than signal),
    ``effect_features`` (how many features the ``reach`` stage's slopes use, kept by their pooled score on the
    pseudo-outcomes: ``"auto"`` = chosen among 8, 16, 32, 64 and all by held-out pseudo-outcome error over two
    halves of the customers; an integer; ``None`` = every feature), ``random_state``.
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
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.actions = actions
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
        booster = _booster(model)
        plan = self._outcome_plan() if booster is _booster(self.outcome_model_) else self._plan(model, prune=False)
        if plan["layout"] is None:  # a design the numpy path does not know: the pandas path
            X = X.reset_index(drop=True)
            out = np.empty((n, len(acts)))
            for j, k in enumerate(acts):
                out[:, j] = model.predict_proba(self._design(X, np.full(n, k)))[:, 1]
            return out
        Xf = feature_matrix(X, self.feature_names_) if matrix is None else matrix
        if plan["pruned"] is not None and actions is None:
            return _pruned_predict(plan["pruned"], plan["layout"], Xf)
        return _design_predict(booster, plan["layout"], Xf, acts)

    def _layout(self, booster) -> dict | None:
        """Where a design row's columns come from for ``booster``: customer features, and per action the
        action columns encoded as LightGBM encodes a frame (codes in the booster's categories, -1 -> NaN).
        Derived from ``_design`` itself; ``None`` when its columns do not fit the booster."""
        names = list(self.feature_names_)
        K = len(self.actions)
        probes = [
            self._design(pd.DataFrame(np.full((K, len(names)), v), columns=names), np.arange(K)) for v in (np.nan, 1.0)
        ]
        if probes[0].shape[1] != booster.num_feature():
            return None
        cats = list(booster.pandas_categorical or [])
        index = {c: j for j, c in enumerate(names)}
        feat_pos, feat_src, act_pos, act_values = [], [], [], []
        n_cat = 0
        for pos, col in enumerate(probes[0].columns):
            columns = [P.iloc[:, pos] for P in probes]
            if isinstance(columns[0].dtype, pd.CategoricalDtype):
                if n_cat >= len(cats):
                    return None
                enc = []
                for s in columns:
                    codes = s.cat.set_categories(cats[n_cat]).cat.codes.to_numpy(dtype=np.float64)
                    enc.append(np.where(codes < 0, np.nan, codes))
                n_cat += 1
            elif col in index:
                feat_pos.append(pos)
                feat_src.append(index[col])
                continue
            else:
                enc = [s.to_numpy(dtype=np.float64, na_value=np.nan) for s in columns]
            if not np.array_equal(enc[0], enc[1], equal_nan=True):
                return None  # an action column that depends on the customer
            act_pos.append(pos)
            act_values.append(enc[0])
        if n_cat != len(cats):
            return None
        return {
            "width": probes[0].shape[1],
            "feat_pos": np.array(feat_pos, dtype=np.intp),
            "feat_src": np.array(feat_src, dtype=np.intp),
            "act_pos": np.array(act_pos, dtype=np.intp),
            "act_values": np.array(act_values, dtype=np.float64).reshape(len(act_pos), K).T.copy(),
        }

    def _plan(self, model, *, prune: bool) -> dict:
        """The numpy prediction plan of ``model``, checked against the pandas path on probe rows."""
        booster = _booster(model)
        plan = {"version": _PLAN_VERSION, "source": booster, "layout": self._layout(booster), "pruned": None}
        if plan["layout"] is None:
            return plan
        names = list(self.feature_names_)
        probe = pd.DataFrame(
            np.array([np.full(len(names), v) for v in (np.nan, 0.0, 1.0, -1.0, 1e9)]), columns=names
        )
        K = len(self.actions)
        want = np.column_stack(
            [model.predict_proba(self._design(probe, np.full(len(probe), k)))[:, 1] for k in range(K)]
        )
        Xf = feature_matrix(probe, names)
        if not np.allclose(_design_predict(booster, plan["layout"], Xf, np.arange(K)), want, rtol=0, atol=_PROBE_TOL):
            plan["layout"] = None
            return plan
        if prune:
            pruned = _prune(booster, plan["layout"])
            if pruned is not None and np.allclose(
                _pruned_predict(pruned, plan["layout"], Xf), want, rtol=0, atol=_PROBE_TOL
            ):
                plan["pruned"] = pruned
        return plan

    def _outcome_plan(self) -> dict:
        """``_plan`` of the fitted outcome model, built once (lazily: models pickled without it still load)."""
        plan = self.__dict__.get("outcome_plan_")
        booster = _booster(self.outcome_model_)
        if plan is None or plan.get("version") != _PLAN_VERSION or plan.get("source") is not booster:
            plan = self.outcome_plan_ = self._plan(self.outcome_model_, prune=True)
        return plan

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
        if self.final not in ("reach", "dr", "plugin"):
            raise ValueError(f"UpliftModel: final must be 'reach', 'dr' or 'plugin', got {self.final!r}")
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
        if self.final == "reach":
            # Pooled DR regression through reach: the effect of action k = (channel c, offer o) on churn is
            # reach_c(x) * g_o(x), with reach_c the customer's smoothed open rate on c (an unopened message
            # does nothing) and g_o(x) = b_o + gamma'z(x) linear in standardised features, shared by all
            # actions. Fitted by ridge least squares on the DR pseudo-outcomes of every action (unbiased
            # with the logged propensities whatever the baseline model), so all ~K x n pseudo-outcomes
            # inform gamma; served in closed form by _reach_effect.
            Xn = X[self.feature_names_].to_numpy(dtype=float)
            self.z_mean_ = np.nan_to_num(np.nanmean(Xn, axis=0)) if n else np.zeros(Xn.shape[1])
            self.z_scale_ = np.nan_to_num(np.nanstd(Xn, axis=0)) + 1e-9 if n else np.ones(Xn.shape[1])
            Z = np.clip(np.nan_to_num((Xn - self.z_mean_) / self.z_scale_), -4.0, 4.0)
            self.reach_features_ = {}
            self.reach_fill_ = {}  # open rate assumed where the feature is missing: the training mean
            for c in self.channels_:
                col = f"chan_{c}_open_rate"
                if c != "none" and col in X.columns:
                    v = X[col].to_numpy(dtype=float)
                    self.reach_features_[c] = col
                    self.reach_fill_[c] = float(np.nanmean(v)) if np.isfinite(v).any() else 1.0
            reach = self._reach(Xn)
            # Baseline for the residuals: a ridge fit of the outcome (any baseline keeps DR unbiased; a
            # better one only lowers variance).
            Z1 = np.column_stack([np.ones(n), Z])
            m = Z1 @ np.linalg.solve(Z1.T @ Z1 + np.eye(Z1.shape[1]), Z1.T @ y)
            ctrl = (a_idx == 0) * (y - m) / p
            offers = [o for o in self.offers_ if any(self.offer_of_[k] == o for k in range(1, K))]
            no, d = len(offers), Z.shape[1]
            # Parameters: offer intercepts b_o, shared slopes gamma, per-offer slope deviations delta_o
            # (g_o = b_o + (gamma + delta_o)'z); the deviations are shrunk harder than the shared slopes.
            n_dev = 0 if self.offer_ridge_ratio is None else no  # per-offer slope deviations fitted
            terms = [
                # (offer index, reach, DR pseudo-outcome with E[phi | x] = effect of action k on churn)
                (offers.index(self.offer_of_[k]), reach[self.channel_of_[k]], (a_idx == k) * (y - m) / p - ctrl)
                for k in range(1, K)
            ]
            fold = self._folds(n, groups, 2)
            # Normal equations per half of the customers: their sums are the full problem's, and a half's
            # (A, b) also scores the other half's fit (held-out squared error = beta'A beta - 2 beta'b + const).
            halves = [self._reach_equations(Z, terms, no, n_dev, (fold == f).astype(float)) for f in (0, 1)]
            A, b = halves[0][0] + halves[1][0], halves[0][1] + halves[1][1]
            n_half = [int((fold == f).sum()) for f in (0, 1)]
            sizes = self._screen_sizes(d)
            loss = {}
            for size in sizes:
                total = 0.0
                for f in (0, 1):
                    (At, bt), (Av, bv) = halves[1 - f], halves[f]
                    idx = self._kept(bt, no, d, n_dev, size)
                    pen = self._penalty(no, d, n_dev, n_half[1 - f])[idx]
                    beta = np.linalg.solve(At[np.ix_(idx, idx)] + np.diag(pen), bt[idx])
                    total += float(beta @ Av[np.ix_(idx, idx)] @ beta - 2.0 * beta @ bv[idx])
                loss[size] = total
            size = min(sizes, key=lambda k: (loss[k], k)) if len(sizes) > 1 else sizes[0]
            self.screen_loss_ = loss
            self.effect_features_ = int(size)
            idx = self._kept(b, no, d, n_dev, size)
            beta = np.zeros(len(b))
            beta[idx] = np.linalg.solve(A[np.ix_(idx, idx)] + np.diag(self._penalty(no, d, n_dev, n)[idx]), b[idx])
            kept = idx[(idx >= no) & (idx < no + d)] - no
            self.effect_feature_names_ = [self.feature_names_[i] for i in kept]
            self.offer_effect_ = dict(zip(offers, beta[:no].tolist(), strict=True))
            self.effect_coef_ = beta[no:].reshape(1 + n_dev, d)
            slopes = self.effect_coef_[0][:, None] + (self.effect_coef_[1:].T if n_dev else 0.0)
            self.offer_slopes_ = np.ascontiguousarray(np.broadcast_to(slopes, (d, no)))  # (features, offers)
            return self

        # Cross-fitted outcome predictions for every action.
        fold = self._folds(n, groups, self.n_folds)
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

    def _folds(self, n: int, groups: np.ndarray | None, n_folds: int) -> np.ndarray:
        """Fold of every row; one customer's rows (``groups``) share a fold."""
        rng = np.random.default_rng(self.random_state)
        if groups is None:
            return rng.integers(0, n_folds, n)
        _, g_inv = np.unique(np.asarray(groups).astype(str), return_inverse=True)
        return rng.integers(0, n_folds, int(g_inv.max()) + 1 if n else 0)[g_inv]

    @staticmethod
    def _reach_equations(
        Z: np.ndarray, terms: list, no: int, n_dev: int, weight: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Normal equations ``(A, b)`` of the pooled reach regression on the rows with ``weight`` 1."""
        n, d = Z.shape
        size = no + d * (1 + n_dev)
        A = np.zeros((size, size))
        b = np.zeros(size)
        w = np.zeros((no, n))
        for j, r, phi in terms:
            rp = r * phi * weight
            w[j] += r * r * weight
            b[j] += rp.sum()
            rz = rp @ Z
            b[no : no + d] += rz
            if n_dev:
                b[no + d * (1 + j) : no + d * (2 + j)] += rz
        for j in range(no):
            dj = slice(no + d * (1 + j), no + d * (2 + j))
            wz = w[j] @ Z
            zz = (Z * w[j][:, None]).T @ Z
            A[j, j] = w[j].sum()
            A[j, no : no + d] = A[no : no + d, j] = wz
            A[no : no + d, no : no + d] += zz
            if n_dev:
                A[j, dj] = A[dj, j] = wz
                A[no : no + d, dj] = A[dj, no : no + d] = zz
                A[dj, dj] = zz
        return A, b

    def _penalty(self, no: int, d: int, n_dev: int, rows: int) -> np.ndarray:
        pen = np.full(no + d * (1 + n_dev), (self.offer_ridge_ratio or 1.0) * self.effect_ridge * rows)
        pen[no : no + d] = self.effect_ridge * rows  # shared slopes
        pen[:no] = 1e-9 * rows  # offer intercepts: unpenalised
        return pen

    def _screen_sizes(self, d: int) -> list[int]:
        if self.effect_features is None:
            return [d]
        if self.effect_features == "auto":
            return sorted({min(k, d) for k in (*SCREEN_SIZES, d)})
        k = self.effect_features
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"UpliftModel: effect_features must be None, 'auto' or >= 1, got {k!r}")
        return [min(int(k), d)]

    @staticmethod
    def _kept(b: np.ndarray, no: int, d: int, n_dev: int, size: int) -> np.ndarray:
        """Parameter indices kept when the ``size`` features with the largest pooled score are used.

        The score is each standardised feature's inner product with the reach-weighted pseudo-outcomes
        (the slopes' part of ``b``): sure independence screening on the effect, not on churn.
        """
        order = np.sort(np.argsort(-np.abs(b[no : no + d]), kind="stable")[:size])
        blocks = [np.arange(no), no + order] + [no + d * (1 + j) + order for j in range(no if n_dev else 0)]
        return np.concatenate(blocks)

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
            return _merged_predict(merged, Xf), None
        for k in range(1, K):
            tau[:, k] = booster_predict(_booster(self.effect_models_[k]), Xf, num_threads=_threads())
        return tau, None

    def _reach(self, Xf: np.ndarray) -> dict[str, np.ndarray]:
        """Per channel: each customer's open rate (missing → the training mean; no feature → 1), in [0, 1]."""
        n = len(Xf)
        col = {c: i for i, c in enumerate(self.feature_names_)}
        out = {}
        for c in self.channels_:
            if c in self.reach_features_:
                v = Xf[:, col[self.reach_features_[c]]]
                out[c] = np.clip(np.where(np.isnan(v), self.reach_fill_[c], v), 0.0, 1.0)
            else:
                out[c] = np.ones(n)
        return out

    def _reach_effect(self, Xf: np.ndarray) -> np.ndarray:
        """``(n, K)`` effects of the "reach" final stage: ``reach_c(x) * (b_o + slopes_o'z(x))``, exact."""
        offers = list(self.offer_effect_)
        G = np.empty((len(Xf), len(offers)))
        base = np.array([self.offer_effect_[o] for o in offers])
        # Row chunks that stay in the CPU cache: the standardised matrix is as wide as the features.
        for start in range(0, len(Xf), _REACH_ROWS):
            part = Xf[start : start + _REACH_ROWS]
            Z = (part - self.z_mean_) / self.z_scale_
            np.nan_to_num(Z, copy=False)
            np.clip(Z, -4.0, 4.0, out=Z)
            G[start : start + len(part)] = Z @ self.offer_slopes_ + base  # (rows, offers)
        reach = self._reach(Xf)
        tau = np.zeros((len(Xf), len(self.actions)))
        for k in range(1, len(self.actions)):
            tau[:, k] = reach[self.channel_of_[k]] * G[:, offers.index(self.offer_of_[k])]
        return tau

    def _effect_plan(self) -> dict:
        """The per-action effect regressors merged into one model (``_merge_regressors``), built once and
        checked against the regressors themselves on probe rows (lazily: older pickles still load)."""
        sources = [None if m is None else _booster(m) for m in self.effect_models_]
        plan = self.__dict__.get("effect_plan_")
        fresh = plan is not None and plan.get("version") == _PLAN_VERSION and len(plan["sources"]) == len(sources)
        if fresh and all(a is b for a, b in zip(plan["sources"], sources, strict=True)):
            return plan
        K = len(self.actions)
        boosters = {k: b for k, b in enumerate(sources) if b is not None}
        merged = _merge_regressors(boosters, K) if boosters and set(boosters) == set(range(1, K)) else None
        if merged is not None:
            probe = np.array([np.full(len(self.feature_names_), v) for v in (np.nan, 0.0, 1.0, -1.0, 1e9)])
            want = np.zeros((len(probe), K))
            for k, b in boosters.items():
                want[:, k] = booster_predict(b, probe)
            if not np.allclose(_merged_predict(merged, probe), want, rtol=0, atol=_PROBE_TOL):
                merged = None
        plan = self.effect_plan_ = {"version": _PLAN_VERSION, "sources": sources, "merged": merged}
        return plan

    def predict_churn(self, X: pd.DataFrame, *, matrix: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(p_no_contact (n,), p_action (n, K))``: churn probability without and with each action.

        ``matrix``: ``X``'s ``feature_names_`` columns as a float matrix, when the caller has it already.
        """
        if matrix is None and len(X):
            matrix = feature_matrix(X, self.feature_names_)
        effect, p0 = self._effect(X, matrix)
        if p0 is None:
            p0 = self._predict_all(self.outcome_model_, X, np.zeros(1, dtype=int), matrix=matrix)[:, 0]
        p = np.clip(p0[:, None] + effect, 0.0, 1.0)
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

    def predict(self, X: pd.DataFrame, *, matrix: np.ndarray | None = None) -> np.ndarray:
        """Forward value per customer in currency units.

        ``matrix``: ``X``'s ``feature_names_`` columns as a float matrix, when the caller has it already.
        """
        if not len(X):
            return np.empty(0)
        Xf = feature_matrix(X, self.feature_names_) if matrix is None else matrix
        rate = booster_predict(_booster(self.model_), Xf, num_threads=_threads())
        return self.margin * np.maximum(rate, 0.0) * self.horizon_days


# ----------------------------------------------------------------------------- numpy prediction path
# Scoring never builds a frame per action: the pandas path costs 1-5 ms per LightGBM call in dtype checks
# (``features.models.churn.booster_predict``). A design row is the customer's features plus the action's
# columns encoded exactly as LightGBM encodes a frame, so the numbers are the pandas path's.

_PLAN_VERSION = 1
_REACH_ROWS = 2_048  # rows per chunk of the reach stage
_DESIGN_ROWS = 8_192  # design rows per chunk: ~13 MB, reused from the heap (a larger block is a fresh mmap)
_PRUNED_CUSTOMERS = 20_000  # customers per chunk of leaf indices
_PROBE_TOL = 1e-9
_ZERO = 1.0000000180025095e-35  # LightGBM's kZeroThreshold (a float constant)
_TREE_KEYS = frozenset(
    {
        "num_leaves", "num_cat", "split_feature", "split_gain", "threshold", "decision_type", "left_child",
        "right_child", "leaf_value", "leaf_weight", "leaf_count", "internal_value", "internal_weight",
        "internal_count", "cat_boundaries", "cat_threshold", "is_linear", "shrinkage",
    }
)  # fmt: skip
_PER_NODE = ("split_feature", "split_gain", "threshold", "decision_type", "internal_value", "internal_weight",
             "internal_count")  # fmt: skip
_PER_LEAF = ("leaf_value", "leaf_weight", "leaf_count")


def _booster(model) -> lgb.Booster:
    return getattr(model, "booster_", model)


def _threads() -> int:
    # As the churn model: large batches use the machine's cores (up to 4); see booster_predict.
    return min(4, os.cpu_count() or 1)


def _design_predict(booster, layout: dict, Xf: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """``(n, len(actions))`` predictions of ``booster`` on the design rows (customer i, action k)."""
    n, m = len(Xf), len(actions)
    out = np.empty((n, m))
    step = max(1, _DESIGN_ROWS // max(m, 1))
    for start in range(0, n, step):
        part = Xf[start : start + step]
        rows = len(part)
        D = np.empty((m * rows, layout["width"]))
        for j in range(m):  # the customers' features once per action (no tiled temporary)
            _put_features(D[j * rows : (j + 1) * rows], part, layout)
        D[:, layout["act_pos"]] = np.repeat(layout["act_values"][actions], rows, axis=0)
        pred = booster_predict(booster, D, num_threads=_threads())
        out[start : start + rows] = pred.reshape(m, rows).T
    return out


def _put_features(D: np.ndarray, part: np.ndarray, layout: dict) -> None:
    """Write the customers' feature columns into design rows ``D``: one block copy when the design keeps
    the features in order side by side (the usual layout), else a column gather."""
    pos, src = layout["feat_pos"], layout["feat_src"]
    n = len(pos)
    if n and n == part.shape[1] and np.array_equal(src, np.arange(n)) and np.array_equal(pos, pos[0] + np.arange(n)):
        D[:, pos[0] : pos[0] + n] = part
    else:
        D[:, pos] = part[:, src]


def _pruned_predict(pruned: dict, layout: dict, Xf: np.ndarray) -> np.ndarray:
    """``(n, K)`` probabilities from the action-resolved trees: each customer's rows are evaluated once."""
    n = len(Xf)
    K = len(pruned["bias"])
    raw = np.empty((n, K))
    step = _leaf_rows(0 if pruned["booster"] is None else pruned["leaf_values"].shape[0])
    for start in range(0, n, step):
        part = Xf[start : start + step]
        if pruned["booster"] is None:
            raw[start : start + len(part)] = pruned["bias"]
            continue
        D = np.full((len(part), layout["width"]), np.nan)  # action columns are never read by these trees
        _put_features(D, part, layout)
        leaf = booster_predict(pruned["booster"], D, num_threads=_threads(), pred_leaf=True)
        leaf = np.asarray(leaf, dtype=np.intp).reshape(len(part), -1)
        values = pruned["leaf_values"][pruned["tree_index"], leaf]
        raw[start : start + len(part)] = values @ pruned["tree_actions"] + pruned["bias"]
    return 1.0 / (1.0 + np.exp(-pruned["sigmoid"] * raw))


def _parse_model(text: str) -> tuple[list[str], list[dict[str, str]], str] | None:
    """LightGBM model text as (header lines, trees as key -> value text, the text from ``end of trees``)."""
    start = text.find("\nTree=0\n")
    end = text.find("\nend of trees")
    if start < 0 or end < 0:
        return None
    header = [line for line in text[: start + 1].splitlines() if not line.startswith("tree_sizes=")]
    trees: list[dict[str, str]] = []
    for line in text[start + 1 : end].splitlines():
        if line.startswith("Tree="):
            trees.append({})
        elif line:
            key, _, value = line.partition("=")
            trees[-1][key] = value
    return header, trees, text[end + 1 :]


def _goes_left(tree: dict, node: int, fval: float) -> bool:
    """LightGBM's decision at ``node`` for a non-missing value (``Tree::NumericalDecision``/``CategoricalDecision``)."""
    dtype = int(tree["decision_type"][node])
    if dtype & 1:
        iv = int(fval)
        if iv < 0:
            return False
        cat = int(float(tree["threshold"][node]))
        lo, hi = tree["cat_boundaries"][cat], tree["cat_boundaries"][cat + 1]
        word = iv // 32
        return word < hi - lo and bool((tree["cat_threshold"][lo + word] >> (iv % 32)) & 1)
    missing = (dtype >> 2) & 3
    if missing == 1 and -_ZERO <= fval <= _ZERO:
        return bool(dtype & 2)
    return fval <= float(tree["threshold"][node])


def _resolve(tree: dict, values: dict[int, float], action_features: set[int]) -> dict | float:
    """The tree with every split on an action column decided by ``values``: a tree dict, or its constant."""
    feats = tree["split_feature"]
    left, right = tree["left_child"], tree["right_child"]

    def walk(node: int) -> int:
        while node >= 0 and feats[node] in action_features:
            node = left[node] if _goes_left(tree, node, values[feats[node]]) else right[node]
        return node

    root = walk(0)
    if root < 0:
        return float(tree["leaf_value"][~root])
    nodes: list[int] = []
    leaves: list[int] = []
    kids: list[list[int]] = []

    def visit(node: int) -> int:
        node = walk(node)
        if node < 0:
            leaves.append(~node)
            return ~(len(leaves) - 1)
        nodes.append(node)
        kids.append([0, 0])
        at = len(nodes) - 1
        kids[at][0] = visit(left[node])
        kids[at][1] = visit(right[node])
        return at

    visit(0)
    return {"nodes": tuple(nodes), "leaves": tuple(leaves), "kids": tuple(map(tuple, kids))}


def _tree_text(tree: dict[str, str], shape: dict, number: int) -> str:
    """One resolved tree in LightGBM's model text format (values copied as text: parsed bit for bit)."""
    tok = {k: tree[k].split(" ") for k in (*_PER_NODE, *_PER_LEAF)}
    lines = [f"Tree={number}", f"num_leaves={len(shape['leaves'])}", f"num_cat={tree['num_cat']}"]
    for k in _PER_NODE[:4]:
        lines.append(f"{k}=" + " ".join(tok[k][i] for i in shape["nodes"]))
    lines.append("left_child=" + " ".join(str(a) for a, _ in shape["kids"]))
    lines.append("right_child=" + " ".join(str(b) for _, b in shape["kids"]))
    for k in _PER_LEAF:
        lines.append(f"{k}=" + " ".join(tok[k][i] for i in shape["leaves"]))
    for k in _PER_NODE[4:]:
        lines.append(f"{k}=" + " ".join(tok[k][i] for i in shape["nodes"]))
    if int(tree["num_cat"]) > 0:
        lines += [f"cat_boundaries={tree['cat_boundaries']}", f"cat_threshold={tree['cat_threshold']}"]
    lines += [f"is_linear={tree['is_linear']}", f"shrinkage={tree['shrinkage']}"]
    return "\n".join(lines) + "\n\n\n"


def _prune(booster, layout: dict) -> dict | None:
    """The model with its action splits decided per action: each distinct resolved tree once, plus which
    actions use it. A customer then needs one pass over these trees instead of one per action.
    ``None`` when the model is not a plain binary one (then the design rows are predicted)."""
    parsed = _parse_model(booster.model_to_string())
    if parsed is None:
        return None
    header, trees, tail = parsed
    head = dict(line.partition("=")[::2] for line in header if "=" in line)
    objective = head.get("objective", "").split(" ")
    if objective[0] != "binary" or head.get("num_tree_per_iteration", "1") != "1" or "average_output" in header:
        return None
    sigmoid = next((float(t.split(":", 1)[1]) for t in objective[1:] if t.startswith("sigmoid:")), 1.0)
    act_values = layout["act_values"]
    if not np.isfinite(act_values).all():
        return None  # missing-category handling differs between LightGBM versions: keep the design path
    K = len(act_values)
    action_features = {int(p) for p in layout["act_pos"]}
    per_action = [{int(p): float(act_values[k, j]) for j, p in enumerate(layout["act_pos"])} for k in range(K)]
    out_trees: list[str] = []
    leaf_values: list[np.ndarray] = []
    use: list[np.ndarray] = []
    bias = np.zeros(K)
    for tree in trees:
        if set(tree) - _TREE_KEYS or tree.get("is_linear", "0") != "0":
            return None
        if int(tree["num_leaves"]) <= 1:
            bias += float(tree["leaf_value"].split(" ")[0])
            continue
        parsed_tree = {
            "split_feature": [int(t) for t in tree["split_feature"].split(" ")],
            "decision_type": tree["decision_type"].split(" "),
            "threshold": tree["threshold"].split(" "),
            "left_child": [int(t) for t in tree["left_child"].split(" ")],
            "right_child": [int(t) for t in tree["right_child"].split(" ")],
            "leaf_value": tree["leaf_value"].split(" "),
            "cat_boundaries": [int(t) for t in tree.get("cat_boundaries", "").split(" ") if t],
            "cat_threshold": [int(t) for t in tree.get("cat_threshold", "").split(" ") if t],
        }
        variants: dict[tuple, np.ndarray] = {}
        if action_features.isdisjoint(parsed_tree["split_feature"]):
            shapes = [_resolve(parsed_tree, per_action[0], action_features)] * K
        else:
            shapes = [_resolve(parsed_tree, per_action[k], action_features) for k in range(K)]
        for k, shape in enumerate(shapes):
            if isinstance(shape, float):
                bias[k] += shape
                continue
            key = (shape["nodes"], shape["leaves"], shape["kids"])
            if key not in variants:
                variants[key] = np.zeros(K)
                out_trees.append(_tree_text(tree, shape, len(out_trees)))
                leaf_values.append(np.array([float(parsed_tree["leaf_value"][i]) for i in shape["leaves"]]))
                use.append(variants[key])
            variants[key][k] = 1.0
    if not out_trees:
        return {"booster": None, "bias": bias, "sigmoid": sigmoid}
    text = "\n".join(header) + "\n" + "".join(out_trees) + tail
    width = max(len(v) for v in leaf_values)
    table = np.zeros((len(leaf_values), width))
    for t, v in enumerate(leaf_values):
        table[t, : len(v)] = v
    return {
        "booster": lgb.Booster(model_str=text),
        "leaf_values": table,
        "tree_index": np.arange(len(leaf_values))[None, :],
        "tree_actions": np.array(use),
        "bias": bias,
        "sigmoid": sigmoid,
    }


def _merge_regressors(boosters: dict[int, lgb.Booster], K: int) -> dict | None:
    """Plain L2 regressors (one per action index) as one model: every customer walks all their trees in one
    LightGBM call instead of one call per action, and each action sums its own trees' leaves.
    ``None`` when a regressor is not a plain one (then each is predicted on its own)."""
    header: list[str] | None = None
    tail = ""
    width = None
    out_trees: list[str] = []
    leaf_values: list[np.ndarray] = []
    starts: list[int] = []  # each action's trees are consecutive: first tree of each action with trees
    groups: list[int] = []
    bias = np.zeros(K)
    for k, booster in boosters.items():
        parsed = _parse_model(booster.model_to_string())
        if parsed is None:
            return None
        head_lines, trees, rest = parsed
        head = dict(line.partition("=")[::2] for line in head_lines if "=" in line)
        plain = head.get("objective", "").split(" ") == ["regression"]  # identity output (no sqrt, no exp)
        if not plain or head.get("num_tree_per_iteration", "1") != "1" or "average_output" in head_lines:
            return None
        if header is None:
            header, tail, width = head_lines, rest, head.get("max_feature_idx")
        elif head.get("max_feature_idx") != width:
            return None
        for tree in trees:
            if set(tree) - _TREE_KEYS or tree.get("is_linear", "0") != "0":
                return None
            n_leaves = int(tree["num_leaves"])
            values = tree["leaf_value"].split(" ")
            if n_leaves <= 1:
                bias[k] += float(values[0])
                continue
            left = [int(t) for t in tree["left_child"].split(" ")]
            right = [int(t) for t in tree["right_child"].split(" ")]
            kids = tuple(zip(left, right, strict=True))
            shape = {"nodes": tuple(range(n_leaves - 1)), "leaves": tuple(range(n_leaves)), "kids": kids}
            if not groups or groups[-1] != k:
                starts.append(len(out_trees))
                groups.append(k)
            out_trees.append(_tree_text(tree, shape, len(out_trees)))
            leaf_values.append(np.array([float(v) for v in values]))
    if header is None:
        return None
    if not out_trees:
        return {"booster": None, "bias": bias}
    table = np.zeros((len(leaf_values), max(len(v) for v in leaf_values)))
    for t, v in enumerate(leaf_values):
        table[t, : len(v)] = v
    return {
        "booster": lgb.Booster(model_str="\n".join(header) + "\n" + "".join(out_trees) + tail),
        "leaf_values": table,
        "tree_index": np.arange(len(leaf_values))[None, :],
        "starts": np.array(starts, dtype=np.intp),
        "groups": np.array(groups, dtype=np.intp),
        "bias": bias,
    }


def _merged_predict(merged: dict, Xf: np.ndarray) -> np.ndarray:
    """``(n, K)`` sums of each action's regressor trees (column of an action without a regressor: 0)."""
    n = len(Xf)
    out = np.tile(merged["bias"], (n, 1))
    if merged["booster"] is None:
        return out
    step = _leaf_rows(merged["leaf_values"].shape[0])
    for start in range(0, n, step):
        part = Xf[start : start + step]
        leaf = booster_predict(merged["booster"], part, num_threads=_threads(), pred_leaf=True)
        leaf = np.asarray(leaf, dtype=np.intp).reshape(len(part), -1)
        values = merged["leaf_values"][merged["tree_index"], leaf]
        # Each tree belongs to one action: per-action sums of consecutive trees, not a dense product.
        out[start : start + len(part), merged["groups"]] += np.add.reduceat(values, merged["starts"], axis=1)
    return out


def _leaf_rows(n_trees: int) -> int:
    """Customers per chunk of leaf indices: bounds the (customers x trees) matrices to ~4 M entries."""
    return max(256, min(_PRUNED_CUSTOMERS, 4_000_000 // max(n_trees, 1)))
