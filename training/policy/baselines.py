"""What the learned policy is compared with, and an independent check of the constraints it must keep.

Baselines contact as many customers as the learned policy, within the same eligibility and limits:
random contacts, the highest churn scores on their most-opened channel, and one action for everybody.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract.catalogue import Catalogue, action_id
from features.contract.schema import OUTREACH_CHANNELS
from features.decision.assignment import limit_matrix, limit_violations
from features.decision.config import PolicyConfig


def choice_index(decisions: pd.DataFrame, catalogue: Catalogue) -> np.ndarray:
    """The catalogue index of each decision's ``nba_action``."""
    pos = {a: k for k, a in enumerate(catalogue.ids)}
    return decisions["nba_action"].map(pos).to_numpy(int)


def most_opened_channel(F: pd.DataFrame, eligible_channel: np.ndarray) -> np.ndarray:
    """Per customer, the index (into OUTREACH_CHANNELS) of the eligible channel with the highest open rate."""
    rates = np.column_stack(
        [F.get(f"chan_{c}_open_rate", pd.Series(0.0, index=F.index)).to_numpy(float) for c in OUTREACH_CHANNELS]
    )
    rates = np.where(eligible_channel, np.nan_to_num(rates, nan=0.0), -np.inf)
    return rates.argmax(axis=1)


def _within_limits(
    order: np.ndarray, action: np.ndarray, n_contacts: int, A: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """Give ``action`` to customers in ``order`` until ``n_contacts`` are contacted, skipping what breaks a limit."""
    choice = np.zeros(len(action), dtype=int)
    remaining = b.copy()
    taken = 0
    for i in order:
        if taken >= n_contacts:
            break
        a = action[i]
        if a == 0 or (len(b) and np.any(A[:, a] > remaining + 1e-9)):
            continue
        choice[i] = a
        taken += 1
        if len(b):
            remaining = remaining - A[:, a]
    return choice


def _value_contact_on_most_opened(F: pd.DataFrame, eligible: np.ndarray, catalogue: Catalogue) -> np.ndarray:
    """Per customer, the value contact (offer ``none``) on the most-opened eligible channel."""
    n = len(eligible)
    ids = catalogue.ids
    chan_elig = np.column_stack(
        [
            eligible[:, [k for k, a in enumerate(catalogue.actions) if a.channel == c]].any(axis=1)
            if any(a.channel == c for a in catalogue.actions)
            else np.zeros(n, bool)
            for c in OUTREACH_CHANNELS
        ]
    )
    best_ch = most_opened_channel(F, chan_elig)
    value_contact = np.array(
        [ids.index(action_id(c, "none")) if action_id(c, "none") in ids else 0 for c in OUTREACH_CHANNELS]
    )
    return value_contact[best_ch]


def baseline_choices(
    F: pd.DataFrame,
    eligible: np.ndarray,
    catalogue: Catalogue,
    churn: np.ndarray,
    n_contacts: int,
    A: np.ndarray,
    b: np.ndarray,
    rng: np.random.Generator,
    ev_single: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Baseline policies at the learned policy's contact volume, within the same eligibility and limits.

    ``random``: ``n_contacts`` random reachable customers, a random eligible action each.
    ``top_churn_most_opened``: the ``n_contacts`` highest churn scores, on their most-opened eligible channel
    with a value contact (offer ``none``). ``best_single_action``: one action for every eligible customer;
    the action maximising ``ev_single`` summed (hindsight-best when given the truth).
    """
    n, K = eligible.shape
    reachable = eligible[:, 1:].any(axis=1)
    out: dict[str, np.ndarray] = {}

    u = rng.random((n, K)) * eligible
    u[:, 0] = 0
    rand_action = u.argmax(axis=1)
    out["random"] = _within_limits(rng.permutation(np.nonzero(reachable)[0]), rand_action, n_contacts, A, b)

    act = np.where(reachable, _value_contact_on_most_opened(F, eligible, catalogue), 0)
    order = np.argsort(-np.where(reachable, churn, -np.inf), kind="stable")
    out["top_churn_most_opened"] = _within_limits(order[reachable[order]], act, n_contacts, A, b)

    if ev_single is not None:
        totals = [np.where(eligible[:, k], ev_single[:, k], 0.0).sum() for k in range(1, K)]
        k_best = 1 + int(np.argmax(totals))
        act = np.where(eligible[:, k_best], k_best, 0)
        out["best_single_action"] = _within_limits(rng.permutation(n), act, n_contacts, A, b)
        out["best_single_action_id"] = np.array([k_best])
    return out


def constraint_violations(
    choice: np.ndarray,
    customers: pd.DataFrame,
    history: pd.DataFrame | None,
    catalogue: Catalogue,
    config: PolicyConfig,
) -> dict[str, int]:
    """Independent count of decisions breaking consent, caps/fatigue or the global limits."""
    acts = catalogue.actions
    chan = np.array([acts[k].channel or "" for k in choice], dtype=object)
    consent_bad = 0
    for c in OUTREACH_CHANNELS:
        on = chan == c
        if on.any():
            consent_bad += int((on & ~customers[f"consent_{c}"].fillna(False).to_numpy(bool)).sum())
    cap_bad = 0
    if history is not None:
        h = history.reindex(customers["customer_id"].astype(str))
        contacted = choice != 0
        for c in OUTREACH_CHANNELS:
            cap = config.caps.per_channel.get(c)
            if cap is not None:
                cap_bad += int(((chan == c) & (h[f"contacts_{c}"].to_numpy() + 1 > cap)).sum())
        if config.caps.total is not None:
            cap_bad += int((contacted & (h["contacts_total"].to_numpy() + 1 > config.caps.total)).sum())
        if config.caps.min_days_between_contacts is not None:
            cap_bad += int(
                (contacted & (h["days_since_contact"].to_numpy() < config.caps.min_days_between_contacts)).sum()
            )
    A, b, names = limit_matrix(catalogue, config.limits)
    return {"consent": consent_bad, "caps": cap_bad, "limits": len(limit_violations(choice, A, b, names))}
