"""Off-policy estimates on the held-out log: what the learned policy and its baselines would have been worth.

IPS, SNIPS and DR values per logged decision, the DR incremental value over no contact, and the learned
policy's gain split by channel and by offer. Target policies decide per logged row with consent as today's
customers table shows it; round limits and caps are not applied to the log.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract.catalogue import action_id
from features.decision.nba import NextBestAction
from features.decision.ope import by_group, dr_difference, evaluate, policy_matrix
from training.policy.fit import LoggedRewards, logged_rewards


def _target_policies(
    model: NextBestAction, logged: LoggedRewards, churn: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The learned policy and the baselines, each as one action index per logged row."""
    cat = model.catalogue
    K = len(cat.ids)
    pos = {a: k for k, a in enumerate(cat.ids)}
    n = len(logged.action)
    G = logged.pseudo
    # Eligibility from the logged consent: a channel was consented if the logging policy could use it.
    ev = logged.est["ev"]
    pos_ev = np.where(ev > model.config.min_incremental_value, ev, -np.inf)
    pos_ev[:, 0] = 0.0
    learned = pos_ev.argmax(axis=1)
    policies = {"learned": learned, "no_contact": np.zeros(n, int)}
    policies["random"] = rng.integers(0, K, n)
    contacts = int((learned != 0).sum())
    order = np.argsort(-churn, kind="stable")[:contacts]
    tc = np.zeros(n, int)
    tc[order] = pos.get(action_id("email", "none"), 1)
    policies["top_churn_email"] = tc
    single = [float((G[:, k] - G[:, 0]).mean()) for k in range(1, K)]
    policies["best_single_action"] = np.full(n, 1 + int(np.argmax(single)))
    return policies


def offline_estimates(
    model: NextBestAction,
    X: pd.DataFrame,
    rows: pd.DataFrame,
    churn: np.ndarray,
    rng: np.random.Generator,
    n_boot: int,
) -> dict:
    """IPS / SNIPS / DR estimates (per logged decision) of the learned policy and baselines on held-out rows.

    Reward of a logged decision: ``-value x churned - cost`` (the incremental value over no contact is the
    difference of two policy values).
    """
    cat = model.catalogue
    K = len(cat.ids)
    logged = logged_rewards(model, X, rows)
    G, est = logged.pseudo, logged.est
    policies = _target_policies(model, logged, churn, rng)
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
    out["learned_minus_random_dr"] = dr_difference(
        G, policy_matrix(learned, K), policy_matrix(policies["random"], K), rng=rng, n_boot=n_boot
    ).as_dict()
    chans = np.array([a.channel or "none" for a in cat.actions], dtype=object)
    offers = np.array([a.offer or "none" for a in cat.actions], dtype=object)
    out["by_channel"] = by_group(G, learned, chans, rng=rng, n_boot=min(n_boot, 200)).to_dict("records")
    out["by_offer"] = by_group(G, learned, offers, rng=rng, n_boot=min(n_boot, 200)).to_dict("records")
    effect = est["p"][np.arange(len(learned)), learned] - est["p0"]
    out["share_harmed_estimated"] = float(((learned != 0) & (effect > 0)).mean())
    return out
