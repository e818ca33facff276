"""On simulated data, the policy judged against the truth: true values, the oracle, baselines, a DR coverage check.

The simulator records each customer's true churn probability and expected incremental value under every
action. The learned policy's true value is compared with the oracle's (best eligible assignment under the
same limits) and the baselines'; a randomised campaign drawn from the truth checks whether the DR interval
holds the true value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract.catalogue import Catalogue
from features.decision.assignment import assign
from features.decision.ope import dr_difference, dr_pseudo_outcomes, policy_matrix
from features.decision.rule import total_value
from training.policy.baselines import baseline_choices


def _truth_rows(truth: pd.DataFrame, customers: pd.DataFrame) -> pd.DataFrame:
    """The truth's rows indexed by customer id as text, in the order of ``customers``."""
    t = truth.assign(customer_id=truth["customer_id"].astype(str)).set_index("customer_id")
    return t.loc[customers["customer_id"].astype(str)]


# The simulator's campaign-outcome column behind each campaign objective (``<column>__<action>``).
OBJECTIVE_COLUMNS: dict[str, str] = {"visit": "p_visit", "conversion": "p_buy", "spend": "spend", "margin": "spend"}


def truth_ev(
    truth: pd.DataFrame,
    customers: pd.DataFrame,
    catalogue: Catalogue,
    objective: str = "retention",
    *,
    margin: float = 0.35,
) -> np.ndarray:
    """The truth's expected incremental value matrix in catalogue order, rows aligned to ``customers``.

    ``retention``: value × churn reduction − contact cost (``ev__<action>``). The campaign objectives use the
    truth's outcomes over its ``objective_days`` against no contact: ``visit`` and ``conversion`` the gain in
    the probability of a visit / a purchase, ``spend`` the gain in expected spend, ``margin``
    ``margin`` × that gain − contact cost.
    """
    if objective != "retention" and objective not in OBJECTIVE_COLUMNS:
        raise ValueError(f"objective {objective!r}: use retention or one of {', '.join(OBJECTIVE_COLUMNS)}")
    prefix = "ev" if objective == "retention" else OBJECTIVE_COLUMNS[objective]
    cols = [f"{prefix}__{a}" for a in catalogue.ids]
    missing = [c for c in cols if c not in truth.columns]
    if missing:
        hint = "" if objective == "retention" else " (a world simulated with objective_days has them)"
        raise ValueError(f"truth: missing column(s) {missing[:5]} ({len(truth)} rows){hint}")
    m = _truth_rows(truth, customers)[cols].to_numpy(float)
    if objective == "retention":
        return m
    gain = m - m[:, [0]]
    if objective == "margin":
        gain = margin * gain - np.array([a.cost for a in catalogue.actions])[None, :]
        gain[:, 0] = 0.0
    return gain


def simulated_experiment_check(
    truth: pd.DataFrame,
    customers: pd.DataFrame,
    catalogue: Catalogue,
    eligible: np.ndarray,
    choice: np.ndarray,
    est: dict,
    rng: np.random.Generator,
    n_boot: int,
    no_contact_share: float = 0.2,
) -> dict:
    """Does the DR interval hold the true value? A randomised campaign at the cutoff drawn from the truth.

    Each customer gets no contact with probability ``no_contact_share``, otherwise a uniformly random eligible
    action; churn is drawn from the truth's churn probability under that action; the realised reward is
    ``value x (1 - churned) - cost``. The DR estimate (outcome model = the learned effect and value models)
    of the policy's incremental value per customer is compared with its true value.
    """
    t = _truth_rows(truth, customers)
    n, K = eligible.shape
    p_true = t[[f"p_churn__{a}" for a in catalogue.ids]].to_numpy(float)
    value = t["value"].to_numpy(float)
    cost = np.array([a.cost for a in catalogue.actions])
    n_contact = eligible[:, 1:].sum(axis=1)
    u = rng.random((n, K)) * eligible
    u[:, 0] = -1
    rand = u.argmax(axis=1)
    contact = (rng.random(n) >= no_contact_share) & (n_contact > 0)
    a_log = np.where(contact, rand, 0)
    p_log = np.where(
        a_log == 0,
        np.where(n_contact > 0, no_contact_share, 1.0),
        (1 - no_contact_share) / np.maximum(n_contact, 1),
    )
    y = rng.random(n) < p_true[np.arange(n), a_log]
    reward = value * (1 - y) - cost[a_log]
    q = est["value"][:, None] * (1 - est["p"]) - cost[None, :]
    G = dr_pseudo_outcomes(a_log, p_log, reward, q)
    inc = dr_difference(G, policy_matrix(choice, K), policy_matrix(np.zeros(n, int), K), rng=rng, n_boot=n_boot)
    ev_t = truth_ev(truth, customers, catalogue)
    true_inc = float(ev_t[np.arange(n), choice].mean())
    return {
        "dr_incremental_per_customer": inc.as_dict(),
        "true_incremental_per_customer": true_inc,
        "contains_true_value": inc.contains(true_inc),
        "logged_contacts": int(contact.sum()),
    }


def sign_agreement(est: dict, truth: pd.DataFrame, customers: pd.DataFrame, cat: Catalogue) -> float:
    """Share of (customer, action) effects of at least half a point whose estimated sign is the true one."""
    t = _truth_rows(truth, customers)
    alive = t["p_churn_no_contact"].to_numpy() < 1.0
    true = t[[f"p_churn__{a}" for a in cat.ids[1:]]].to_numpy() - t[["p_churn_no_contact"]].to_numpy()
    mine = est["p"][:, 1:] - est["p0"][:, None]
    big = (np.abs(true) >= 0.005) & alive[:, None]
    return float((np.sign(true[big]) == np.sign(mine[big])).mean()) if big.any() else float("nan")


@dataclass(frozen=True)
class Decided:
    """The learned policy's decisions at a cutoff and what judging them needs."""

    customers: pd.DataFrame
    F: pd.DataFrame  # features, rows aligned to ``customers``
    eligible: np.ndarray
    choice: np.ndarray  # catalogue index per customer
    A: np.ndarray  # limit matrix and caps (:func:`features.decision.nba.limit_matrix`)
    b: np.ndarray
    est: dict  # the model's expected_values
    churn: np.ndarray  # churn scores the baselines rank by


def value_comparison(
    decided: Decided, ev_t: np.ndarray, cat: Catalogue, rng: np.random.Generator
) -> tuple[dict, dict[str, np.ndarray]]:
    """True value (``ev_t``: customers × actions) of the policy's choice, the oracle's (best assignment under the
    same limits) and the baselines' at the policy's contact volume; also the baselines' choices."""
    choice = decided.choice
    oracle = assign(ev_t, decided.eligible, decided.A, decided.b, min_value=0.0)
    base = baseline_choices(
        decided.F, decided.eligible, cat, decided.churn, int((choice != 0).sum()), decided.A, decided.b, rng,
        ev_single=ev_t,
    )
    pv, ov = total_value(ev_t, choice), total_value(ev_t, oracle)
    out = {
        "policy_value": pv,
        "oracle_value": ov,
        "no_contact_value": 0.0,
        "captured_uplift_ratio": pv / ov if ov > 0 else None,
        "baselines": {k: total_value(ev_t, v) for k, v in base.items() if k != "best_single_action_id"},
        "best_single_action": cat.ids[int(base["best_single_action_id"][0])],
        "oracle_contacts": int((oracle != 0).sum()),
    }
    return out, base


def truth_comparison(
    decided: Decided, truth: pd.DataFrame, cat: Catalogue, rng: np.random.Generator, n_boot: int
) -> dict:
    """True value of the policy vs the oracle and the baselines, harm, sign agreement and the DR check."""
    customers, choice = decided.customers, decided.choice
    contacted = choice != 0
    ev_t = truth_ev(truth, customers, cat)
    out, base = value_comparison(decided, ev_t, cat, rng)
    pv, top_churn = out["policy_value"], out["baselines"]["top_churn_most_opened"]
    rows = np.arange(len(choice))
    true_effect = ev_t + np.array([a.cost for a in cat.actions])[None, :]  # value x churn reduction
    out.update({
        "ratio_to_top_churn": pv / top_churn if top_churn > 0 else None,
        # the bar: at least 1.2 x the top-churn baseline's true uplift (a ratio is undefined when that
        # baseline loses value, which it does whenever the riskiest customers are lost causes)
        "beats_top_churn_1_2x": bool(pv > 0 and pv >= 1.2 * top_churn),
        "share_harmed_true": float((contacted & (true_effect[rows, choice] < 0)).mean()),
        "baseline_share_harmed_true": {
            k: float(((v != 0) & (true_effect[rows, v] < 0)).mean())
            for k, v in base.items()
            if k != "best_single_action_id"
        },
        "effect_sign_agreement": sign_agreement(decided.est, truth, customers, cat),
        "value_correlation": float(
            np.corrcoef(
                decided.est["value"],
                truth.set_index(truth["customer_id"].astype(str)).loc[customers["customer_id"].astype(str), "value"],
            )[0, 1]
        ),
    })
    out["ope_check"] = simulated_experiment_check(
        truth, customers, cat, decided.eligible, choice, decided.est, rng, n_boot
    )
    return out
