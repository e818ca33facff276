"""Fitting the policy on logged rows, and valuing its choices on them with doubly robust pseudo-outcomes.

The effect model (DR-learner) and the value model make a :class:`features.decision.nba.NextBestAction`; the
contact threshold is chosen on validation rows, and the uplift curve ranks held-out rows by the policy's
estimated incremental value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract.catalogue import Catalogue
from features.decision.config import PolicyConfig
from features.decision.nba import NextBestAction
from features.decision.ope import dr_pseudo_outcomes
from features.models.ltv import CustomerValueModel, PolicyValue
from features.models.uplift import UpliftModel
from features.models.value import ValueModel
from training.policy.config import PolicyTrainConfig


def fit_policy(
    X: pd.DataFrame,
    rows: pd.DataFrame,
    catalogue: Catalogue,
    config: PolicyConfig,
    train: PolicyTrainConfig,
    *,
    customer_value: CustomerValueModel | None = None,
) -> NextBestAction:
    """Fit the effect model (DR-learner) on the objective's outcome, and the value model, on logged rows.

    ``customer_value``: a fitted customer-value model to value customers with (``value.source: ltv``, the
    retention objective) instead of fitting the spend-rate regression on the logged rows.
    """
    if train.final not in ("reach", "dr", "plugin"):
        raise ValueError(f"policy training: final must be 'reach', 'dr' or 'plugin' here, got {train.final!r}")
    objective = config.objective_spec
    uplift = UpliftModel(
        catalogue.ids,
        outcome_estimators=train.outcome_estimators,
        effect_estimators=train.effect_estimators,
        final=train.final,
        effect_ridge=train.effect_ridge,
        effect_features=train.effect_features,
        outcome_type="binary" if objective.binary else "continuous",
        random_state=train.seed,
    )
    uplift.fit(
        X,
        rows["action"].to_numpy(),
        rows["propensity"].to_numpy(),
        rows["outcome"].to_numpy(),
        groups=rows["customer_id"].to_numpy(),
    )
    if customer_value is not None and objective.name == "retention":
        value = PolicyValue(customer_value, config.value.horizon_days)
    else:
        # Retention: the value at stake if the customer stays, learned on those who stayed; otherwise every row.
        stay = rows["outcome"].to_numpy() == 0 if objective.name == "retention" else np.ones(len(rows), bool)
        value = ValueModel(
            margin=config.value.margin, horizon_days=config.value.horizon_days, random_state=train.seed
        ).fit(X[stay], rows["spend_per_day"].to_numpy()[stay])
    # The defense targets' "valuable" bar: the configured quantile of the training population's value.
    min_value = config.defense.min_value
    if min_value is None and len(X):
        min_value = float(np.nanquantile(value.predict(X), config.defense.min_value_quantile))
    return NextBestAction(uplift, value, catalogue, config, defense_min_value=min_value)


@dataclass(frozen=True)
class LoggedRewards:
    """Logged rows valued by the model: the objective's reward (retention: ``-value x churned - cost``) and DR
    pseudo-outcomes per action."""

    est: dict  # the model's expected_values of the rows
    action: np.ndarray  # logged action index (catalogue order)
    propensity: np.ndarray
    reward: np.ndarray
    q: np.ndarray  # the model's reward of every action
    pseudo: np.ndarray  # DR pseudo-outcome of every action


def logged_rewards(model: NextBestAction, X: pd.DataFrame, rows: pd.DataFrame) -> LoggedRewards:
    """Model estimates, rewards and DR pseudo-outcomes of logged rows."""
    cat = model.catalogue
    pos = {a: k for k, a in enumerate(cat.ids)}
    a_log = rows["action"].map(pos).to_numpy(int)
    p_log = rows["propensity"].to_numpy(float)
    est = model.expected_values(X)
    cost = np.array([a.cost for a in cat.actions])
    objective = model.objective
    outcome = rows["outcome"] if "outcome" in rows else rows["label"]
    reward = objective.reward(outcome.to_numpy(float), est["value"], cost[a_log])
    q = objective.reward_matrix(est["p"], est["value"], cost)
    return LoggedRewards(est, a_log, p_log, reward, q, dr_pseudo_outcomes(a_log, p_log, reward, q))


def _best_contacts(logged: LoggedRewards) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the best contact action's estimated incremental value and its DR gain over no contact."""
    G = logged.pseudo
    ev = logged.est["ev"].copy()
    ev[:, 0] = -np.inf
    best = ev.argmax(axis=1)
    rows_ = np.arange(len(best))
    return ev[rows_, best], G[rows_, best] - G[:, 0]


def select_threshold(model: NextBestAction, X: pd.DataFrame, rows: pd.DataFrame, z: float = 0.5) -> tuple[float, float]:
    """The contact threshold on estimated incremental value chosen on validation rows.

    For each candidate threshold, the DR-estimated gain over no contact per logged decision of giving every
    row whose best estimated incremental value exceeds it that action, and its standard error; the threshold
    with the highest ``mean - z se`` wins. ``z = 0.5`` is a mild guard against a threshold that looks good by
    luck; a one-sided 95 % bound (``z = 1.645``) is far too strict for effects as small as churn effects are:
    it rejects every threshold and the policy contacts nobody. When no threshold's bound is above zero the
    threshold rises above every estimate (nobody is contacted).
    Returns ``(threshold, guarded gain per decision)``.
    """
    best_ev, gain = _best_contacts(logged_rewards(model, X, rows))
    return _threshold(best_ev, gain, z)


def _threshold(best_ev: np.ndarray, gain: np.ndarray, z: float) -> tuple[float, float]:
    """:func:`select_threshold` on each row's best estimated value and its DR gain over no contact."""
    pos = best_ev[best_ev > 0]
    if pos.size == 0:
        return float("inf"), 0.0
    grid = np.unique(np.concatenate([[0.0], np.quantile(pos, np.linspace(0.0, 0.995, 40))]))
    contrib = np.where(best_ev[:, None] > grid[None, :], gain[:, None], 0.0)
    lcb = contrib.mean(axis=0) - z * contrib.std(axis=0) / np.sqrt(len(gain))
    k = int(np.argmax(lcb))
    if lcb[k] <= 0:
        return float(pos.max()) + 1.0, 0.0
    return float(grid[k]), float(lcb[k])


def out_of_fold_gain(
    model: NextBestAction, X: pd.DataFrame, rows: pd.DataFrame, z: float, rng: np.random.Generator
) -> float:
    """The DR gain over no contact per validation decision of the policy with a threshold chosen elsewhere.

    The validation customers are halved; the threshold chosen on one half is valued on the other, and the two
    values averaged. A gain measured on the rows that chose the threshold flatters the noisier effect model;
    this one does not, so it is what the effect models are compared by.
    """
    best_ev, gain = _best_contacts(logged_rewards(model, X, rows))
    ids, inv = np.unique(rows["customer_id"].astype(str).to_numpy(), return_inverse=True)
    half = (rng.random(len(ids)) < 0.5)[inv]
    total = 0.0
    for part in (half, ~half):
        thr, _ = _threshold(best_ev[part], gain[part], z)
        other = ~part
        total += float(np.where(best_ev[other] > thr, gain[other], 0.0).sum())
    return total / max(len(gain), 1)


def uplift_curve(model: NextBestAction, X: pd.DataFrame, rows: pd.DataFrame, n_points: int = 21) -> dict:
    """Qini-style uplift curve on logged rows: DR gain over no contact when the top share is treated.

    Rows are ranked by their best estimated incremental value; treating the top ``share`` with their best
    estimated action gives a DR-estimated gain per logged decision (``gain``). ``random`` is the same share
    treated with a random contact action, ranked at random (the straight line a useless model draws).
    """
    logged = logged_rewards(model, X, rows)
    G = logged.pseudo
    best_ev, gain = _best_contacts(logged)
    n = len(best_ev)
    order = np.argsort(-best_ev, kind="stable")
    gain_row = gain[order]
    avg_contact = (G[:, 1:].mean(axis=1) - G[:, 0]).mean() if G.shape[1] > 1 else 0.0
    shares = np.linspace(0.0, 1.0, n_points)
    cum = np.concatenate([[0.0], np.cumsum(gain_row)])
    k = np.round(shares * n).astype(int)
    return {
        "share": shares.tolist(),
        "gain": (cum[k] / max(n, 1)).tolist(),
        "random": (shares * avg_contact).tolist(),
        "rows": n,
    }
