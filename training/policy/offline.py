"""Off-policy estimates on the held-out log: what the learned policy and its baselines would have been worth.

IPS, SNIPS and DR values per logged decision, the DR incremental value over no contact, the DR difference
between the learned policy and each baseline (what the gate reads, :mod:`training.policy.gate`), the
champion's policy valued on the same rows when there is one, and the learned policy's gain split by channel
and by offer. Target policies decide per logged row; round limits and caps are not applied to the log.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract.catalogue import action_id
from features.decision.nba import NextBestAction
from features.decision.ope import by_group, dr_difference, evaluate, policy_matrix
from training.policy.fit import LoggedRewards, logged_rewards


@dataclass(frozen=True)
class ChampionPolicy:
    """The registered champion's policy (``None`` when it has none) and its version, to value it on the same
    held-out rows as the challenger."""

    policy: NextBestAction | None
    version: str


def policy_choices(model: NextBestAction, ev: np.ndarray) -> np.ndarray:
    """A policy's action index per row from its estimated incremental values ``ev``: the best action above its
    contact threshold (no contact when none is), or its fallback action for every row."""
    fallback = getattr(model, "fallback_action", None)
    if fallback is not None:
        return np.full(len(ev), model.catalogue.ids.index(fallback))
    pos_ev = np.where(ev > model.config.min_incremental_value, ev, -np.inf)
    pos_ev[:, 0] = 0.0
    return pos_ev.argmax(axis=1)


def best_single_action(model: NextBestAction, X: pd.DataFrame, rows: pd.DataFrame) -> int:
    """The contact action with the highest DR value over no contact on logged rows (index into the catalogue).

    Chosen on the training side's validation rows, as the learned policy's threshold is: picked on the held-out
    rows themselves, the best of many noisy actions would be valued with its luck (a winner's curse that no
    learned policy could beat).
    """
    G = logged_rewards(model, X, rows).pseudo
    return 1 + int(np.argmax([(G[:, k] - G[:, 0]).mean() for k in range(1, G.shape[1])]))


def _target_policies(
    model: NextBestAction, logged: LoggedRewards, churn: np.ndarray, rng: np.random.Generator, single: int | None
) -> dict[str, np.ndarray]:
    """The learned policy and the baselines, each as one action index per logged row; ``single`` is the best
    single action chosen elsewhere (``None``: the best on these rows)."""
    cat = model.catalogue
    K = len(cat.ids)
    pos = {a: k for k, a in enumerate(cat.ids)}
    n = len(logged.action)
    G = logged.pseudo
    learned = policy_choices(model.with_fallback(None), logged.est["ev"])
    policies = {"learned": learned, "no_contact": np.zeros(n, int)}
    policies["random"] = rng.integers(0, K, n)
    if not model.objective.campaign:  # a churn ranking exists only for retention
        contacts = int((learned != 0).sum())
        order = np.argsort(-churn, kind="stable")[:contacts]
        tc = np.zeros(n, int)
        tc[order] = pos.get(action_id("email", "none"), 1)
        policies["top_churn_email"] = tc
    if single is None:
        single = 1 + int(np.argmax([float((G[:, k] - G[:, 0]).mean()) for k in range(1, K)]))
    policies["best_single_action"] = np.full(n, single)
    return policies


def champion_comparison(
    champion: ChampionPolicy, model: NextBestAction, X: pd.DataFrame, G: np.ndarray, learned: np.ndarray,
    rng: np.random.Generator, n_boot: int,
) -> dict:
    """The champion's policy valued on the same rows (DR with this run's pseudo-outcomes ``G``), and the learned
    policy's DR difference from it; ``comparable`` is False (with the reason) when it cannot be valued here."""
    out: dict = {"version": champion.version, "comparable": False}
    pol = champion.policy
    if pol is None:
        return {**out, "reason": "the champion has no policy"}
    if pol.objective.name != model.objective.name:
        return {**out, "reason": f"it optimises {pol.objective.name}, not {model.objective.name}"}
    if list(pol.catalogue.ids) != list(model.catalogue.ids):
        return {**out, "reason": "its action catalogue differs"}
    missing = sorted(set(pol.uplift.feature_names_) - set(X.columns))
    if missing:
        return {**out, "reason": f"{len(missing)} of its features are not built here (e.g. {missing[:3]})"}
    K = len(model.catalogue.ids)
    choice = policy_choices(pol, pol.expected_values(X)["ev"])
    diff = dr_difference(G, policy_matrix(learned, K), policy_matrix(choice, K), rng=rng, n_boot=n_boot)
    value = float(G[np.arange(len(choice)), choice].mean())
    return {**out, "comparable": True, "dr": value, "learned_minus_champion": diff.as_dict(),
            "contact_share": float((choice != 0).mean())}  # fmt: skip


def offline_estimates(
    model: NextBestAction,
    X: pd.DataFrame,
    rows: pd.DataFrame,
    churn: np.ndarray,
    rng: np.random.Generator,
    n_boot: int,
    champion: ChampionPolicy | None = None,
    single: int | None = None,
) -> dict:
    """IPS / SNIPS / DR estimates (per logged decision) of the learned policy and baselines on held-out rows.

    Reward of a logged decision: the objective's (retention: ``-value x churned - cost``; the incremental value
    over no contact is the difference of two policy values). ``differences``: the learned policy's DR value
    minus each other policy's, with intervals; ``champion``: the champion's policy on the same rows;
    ``single``: the best single action (:func:`best_single_action` on validation rows; ``None``: on these).
    """
    cat = model.catalogue
    K = len(cat.ids)
    logged = logged_rewards(model, X, rows)
    G, est = logged.pseudo, logged.est
    policies = _target_policies(model, logged, churn, rng, single)
    learned = policies["learned"]
    out: dict = {"rows": len(logged.action), "policies": {}}
    nc_pi = policy_matrix(policies["no_contact"], K)
    for name, choice in policies.items():
        pi = policy_matrix(choice, K)
        res = evaluate(logged.action, logged.propensity, logged.reward, pi, q=logged.q, rng=rng, n_boot=n_boot)
        inc = dr_difference(G, pi, nc_pi, rng=rng, n_boot=n_boot)
        out["policies"][name] = {
            **{k: v.as_dict() for k, v in res.items()},
            "dr_incremental": inc.as_dict(),
            "contact_share": float((choice != 0).mean()),
        }
    out["best_single_action"] = cat.ids[int(policies["best_single_action"][0])]
    learned_pi = policy_matrix(learned, K)
    out["differences"] = {
        name: dr_difference(G, learned_pi, policy_matrix(choice, K), rng=rng, n_boot=n_boot).as_dict()
        for name, choice in policies.items()
        if name != "learned"
    }
    out["learned_minus_random_dr"] = out["differences"]["random"]
    if champion is not None:
        out["champion"] = champion_comparison(champion, model, X, G, learned, rng, n_boot)
    chans = np.array([a.channel or "none" for a in cat.actions], dtype=object)
    offers = np.array([a.offer or "none" for a in cat.actions], dtype=object)
    out["by_channel"] = by_group(G, learned, chans, rng=rng, n_boot=min(n_boot, 200)).to_dict("records")
    out["by_offer"] = by_group(G, learned, offers, rng=rng, n_boot=min(n_boot, 200)).to_dict("records")
    effect = est["p"][np.arange(len(learned)), learned] - est["p0"]
    harmful = effect < 0 if model.objective.campaign else effect > 0  # more churn harms; fewer visits harm
    out["share_harmed_estimated"] = float(((learned != 0) & harmful).mean())
    return out
