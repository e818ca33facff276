"""The next-best-action decision rule: expected incremental value, the decision, its reasons, defense targets.

The expected incremental value of action ``a`` for a customer is
``value x (P(churn | no contact) - P(churn | a)) - cost(a)``; ``no_contact`` is worth 0. Each customer gets
the eligible action (:mod:`features.decision.eligibility`) that maximises the *total* expected incremental
value over all customers under the round's global limits (:mod:`features.decision.assignment`), with
optional epsilon exploration. Every decision says why: a reason for the action, or for not contacting.
Back-door defense targets are the valuable, at-risk, persuadable customers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from features.contract.catalogue import Catalogue
from features.decision.assignment import assign, greedy_assign, limit_matrix
from features.decision.config import DefenseConfig, PolicyConfig
from features.decision.eligibility import consent_arrays, eligibility_arrays, history_arrays

# Reason codes for customers who are not contacted (``no_contact_reason``).
NO_CONSENT = "no_consent"
CAP_REACHED = "cap_reached"
NEGATIVE_UPLIFT = "negative_uplift"
BELOW_COST = "uplift_below_cost"
BUDGET = "budget"
EXPLORATION = "exploration"
INACTIVE = "inactive"
# The policy did not beat its baselines and falls back to the best of them (one action, or no contact).
FALLBACK = "fallback_policy"
NO_CONTACT_REASONS: tuple[str, ...] = (
    FALLBACK,
    INACTIVE,
    NO_CONSENT,
    CAP_REACHED,
    NEGATIVE_UPLIFT,
    BELOW_COST,
    BUDGET,
    EXPLORATION,
)
# Reason codes for contacted customers (``decision_reason``).
BEST_ACTION = "best_action"
LIMITED_ALTERNATIVE = "limited_alternative"


def expected_incremental_value(
    p_no_contact: np.ndarray, p_action: np.ndarray, value: np.ndarray, catalogue: Catalogue
) -> np.ndarray:
    """``value x (p_no_contact - p_action) - cost``: an ``(n, K)`` matrix; column 0 (no contact) is 0."""
    costs = np.array([a.cost for a in catalogue.actions])
    ev = value[:, None] * (p_no_contact[:, None] - p_action) - costs[None, :]
    ev[:, 0] = 0.0
    return ev


def decide(
    ev: np.ndarray,
    customers: pd.DataFrame,
    catalogue: Catalogue,
    config: PolicyConfig,
    *,
    history: pd.DataFrame | None = None,
    churn_probability: np.ndarray | None = None,
    value: np.ndarray | None = None,
    active: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> pd.DataFrame:
    """Decide the next best action for every customer.

    ``ev`` is the ``(n, K)`` expected incremental value over ``catalogue.actions`` (column 0 = no contact),
    rows in the order of ``customers``. ``history`` comes from :func:`~features.decision.eligibility.contact_history`
    (caps and fatigue are skipped without it). ``churn_probability`` and ``value`` feed the defense targets (no
    targets without them). With ``config.epsilon > 0`` a random generator is required. Returns one row per
    customer indexed by ``customer_id`` with :data:`~features.decision.columns.DECISION_COLUMNS`.
    """
    customer_ids = customers["customer_id"].astype(str).to_numpy()
    if ev.shape[0] != len(customers) or len(catalogue.actions) != ev.shape[1]:
        raise ValueError(f"decide: ev has shape {ev.shape}, expected ({len(customers)}, {len(catalogue.actions)})")
    consent = consent_arrays(customers, catalogue)
    hist = None if history is None else history_arrays(history, pd.Index(customer_ids), catalogue, config.caps)
    cols = decide_columns(
        ev,
        consent,
        catalogue,
        config,
        history=hist,
        churn_probability=churn_probability,
        value=value,
        active=active,
        rng=rng,
    )
    return pd.DataFrame(cols, index=pd.Index(customer_ids, name="customer_id"))


def decide_columns(
    ev: np.ndarray,
    consent: dict[str, np.ndarray],
    catalogue: Catalogue,
    config: PolicyConfig,
    *,
    history: dict[str, np.ndarray] | None = None,
    churn_probability: np.ndarray | None = None,
    value: np.ndarray | None = None,
    active: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    fixed_action: int | None = None,
) -> dict[str, np.ndarray]:
    """:func:`decide` on arrays (consent per channel, history from :func:`history_arrays`): the
    :data:`~features.decision.columns.DECISION_COLUMNS` as arrays, rows in the order of ``ev``. Scoring calls
    this directly, so a small request pays for no pandas objects. ``fixed_action`` (a catalogue index): a
    fallback policy, that action for every customer eligible for it (within the limits), reason
    ``fallback_policy``; ``ev`` still gives the reported values and runner-ups."""
    if not np.all(np.isfinite(ev)):
        raise ValueError(f"decide: ev has {int((~np.isfinite(ev)).sum())} non-finite values")
    chosen = _choose(ev, consent, catalogue, config, history, active, rng, fixed_action)
    choice = chosen.action
    reason, no_reason = _reasons(ev, chosen, catalogue)
    # Every eligible contact action by its value: the runner-ups and the defense's "persuadable" test.
    masked = np.where(chosen.eligible, ev, -np.inf)
    masked[:, 0] = -np.inf
    ids = np.asarray([a.id for a in catalogue.actions], dtype=object)
    target, defense_reasons = _defense(masked, ids, churn_probability, value, config)
    return {
        "nba_action": ids[choice],
        "nba_channel": np.asarray([a.channel for a in catalogue.actions], dtype=object)[choice],
        "nba_offer": np.asarray([a.offer for a in catalogue.actions], dtype=object)[choice],
        "nba_expected_incremental_value": ev[np.arange(len(ev)), choice],
        "nba_propensity": chosen.propensity,
        "alternatives": _objects(_alternatives(ev, masked, choice, catalogue, config.n_alternatives)),
        "decision_reason": reason,
        "no_contact_reason": no_reason,
        "defense_target": target,
        "defense_reasons": _objects(defense_reasons),
    }


@dataclass(frozen=True)
class _Choice:
    """The round's choice per customer and what it was chosen from: the eligible actions ``(n, K)`` (after
    consent, caps, fatigue and activity), who consented / was capped / is inactive, the chosen action, the
    best action were there no global limits (0 if none is worth it), and exploration's propensities."""

    eligible: np.ndarray
    consented: np.ndarray
    capped: np.ndarray
    inactive: np.ndarray
    action: np.ndarray
    best_free: np.ndarray
    has_positive: np.ndarray
    propensity: np.ndarray
    explored: np.ndarray
    fixed: bool = False


def _choose(
    ev: np.ndarray,
    consent: dict[str, np.ndarray],
    catalogue: Catalogue,
    config: PolicyConfig,
    history: dict[str, np.ndarray] | None,
    active: np.ndarray | None,
    rng: np.random.Generator | None,
    fixed_action: int | None = None,
) -> _Choice:
    """Eligibility, the constrained assignment, and epsilon exploration on top of it."""
    n = len(ev)
    eligible, consented, capped = eligibility_arrays(consent, history, catalogue, config.caps, n)
    inactive = np.zeros(n, dtype=bool) if active is None else ~np.asarray(active, dtype=bool)
    eligible[inactive, 1:] = False
    A, b, _ = limit_matrix(catalogue, config.limits)
    threshold, score, allowed = config.min_incremental_value, ev, eligible
    if fixed_action is None:
        choice = assign(score, allowed, A, b, min_value=threshold)
    else:
        # The fallback: one action for every customer who may get it; where the round's limits bind, those with
        # the highest estimated value of it first (runner-ups still come from ``ev``).
        allowed = np.zeros_like(eligible)
        allowed[:, 0] = True
        allowed[:, fixed_action] = eligible[:, fixed_action]
        score = np.zeros_like(ev)
        if fixed_action:
            rank = np.argsort(np.argsort(ev[:, fixed_action], kind="stable"), kind="stable")
            score[:, fixed_action] = 1.0 + rank / max(n, 1)
        threshold = 0.0
        choice = greedy_assign(score, allowed, A, b, min_value=threshold)
    unconstrained = np.where(allowed & (score > threshold), score, -np.inf)
    unconstrained[:, 0] = -np.inf
    has_positive = np.isfinite(unconstrained.max(axis=1))
    best_free = np.where(has_positive, unconstrained.argmax(axis=1), 0)
    propensity = np.ones(n)
    explored = np.zeros(n, dtype=bool)
    if config.epsilon > 0:
        if rng is None:
            raise ValueError("decide: epsilon > 0 needs a numpy random Generator (rng)")
        choice, propensity, explored = _explore(choice, allowed, A, b, config.epsilon, rng)
    return _Choice(
        eligible, consented, capped, inactive, choice, best_free, has_positive, propensity, explored,
        fixed=fixed_action is not None,
    )  # fmt: skip


def _reasons(ev: np.ndarray, chosen: _Choice, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray]:
    """``(decision_reason, no_contact_reason)`` per customer; the later rules of not contacting win."""
    n, K = ev.shape
    costs = np.array([a.cost for a in catalogue.actions])
    gross = ev + costs[None, :]
    eligible = chosen.eligible
    best_gross = np.where(eligible[:, 1:], gross[:, 1:], -np.inf).max(axis=1) if K > 1 else np.full(n, -np.inf)
    choice, explored, has_positive = chosen.action, chosen.explored, chosen.has_positive
    reason = np.empty(n, dtype=object)
    contacted = choice != 0
    reason[contacted & (choice == chosen.best_free)] = FALLBACK if chosen.fixed else BEST_ACTION
    reason[contacted & (choice != chosen.best_free)] = LIMITED_ALTERNATIVE
    nc = ~contacted
    no_reason = np.full(n, None, dtype=object)
    no_reason[nc & has_positive] = BUDGET
    no_reason[nc & ~has_positive] = BELOW_COST
    no_reason[nc & ~has_positive & (best_gross <= 0)] = NEGATIVE_UPLIFT
    if chosen.fixed:
        no_reason[nc & ~has_positive] = FALLBACK
    no_reason[nc & chosen.capped] = CAP_REACHED
    no_reason[nc & chosen.inactive] = INACTIVE
    no_reason[nc & ~chosen.consented] = NO_CONSENT
    no_reason[nc & explored] = EXPLORATION
    reason[nc] = no_reason[nc]
    reason[contacted & explored] = EXPLORATION
    return reason, no_reason


def _alternatives(
    ev: np.ndarray, masked: np.ndarray, choice: np.ndarray, catalogue: Catalogue, n_alternatives: int
) -> list[list[dict]]:
    """Runner-ups: the next best eligible contact actions by expected incremental value."""
    n = len(ev)
    ids = [a.id for a in catalogue.actions]
    chans = [a.channel for a in catalogue.actions]
    offers = [a.offer for a in catalogue.actions]
    n_alt = max(int(n_alternatives), 0)
    alt_scores = masked.copy()
    alt_scores[np.arange(n), choice] = -np.inf
    order = np.argsort(-alt_scores, axis=1, kind="stable")[:, :n_alt]
    # Python lists, not per-element numpy indexing: this loop runs once per customer.
    alt_ok = np.isfinite(np.take_along_axis(alt_scores, order, axis=1)).tolist()
    alt_ev = np.take_along_axis(ev, order, axis=1).tolist()
    return [
        [
            {"action": ids[k], "channel": chans[k], "offer": offers[k], "expected_incremental_value": v}
            for k, ok, v in zip(ks, oks, vs, strict=True)
            if ok
        ]
        for ks, oks, vs in zip(order.tolist(), alt_ok, alt_ev, strict=True)
    ]


def _defense(
    masked: np.ndarray,
    ids: np.ndarray,
    churn_probability: np.ndarray | None,
    value: np.ndarray | None,
    config: PolicyConfig,
) -> tuple[np.ndarray, list[list[str]]]:
    """:func:`defense_targets` with each customer's best eligible contact action as the persuasion test."""
    best_any = np.where(masked.max(axis=1) > -np.inf, masked.max(axis=1), 0.0)
    # persuadable = an action the policy itself would take: above its contact threshold too
    defense = replace(
        config.defense,
        min_incremental_value=max(config.defense.min_incremental_value, config.min_incremental_value),
    )
    return defense_targets(churn_probability, value, best_any, ids[masked.argmax(axis=1)], defense)


def _objects(items: list) -> np.ndarray:
    """A 1-d object array holding ``items`` as they are (lists stay list elements, never a 2-d array)."""
    arr = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        arr[i] = item
    return arr


def _explore(
    choice: np.ndarray,
    eligible: np.ndarray,
    A: np.ndarray,
    b: np.ndarray,
    epsilon: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epsilon-uniform exploration over each customer's eligible actions, limits still held exactly.

    A drawn action that would break a limit is not taken (the decided action stays); the returned propensity
    is the mixture probability ``(1 - eps) 1[a = decided] + eps / n_eligible`` of the final action, exact
    whenever no draw was refused.
    """
    n = len(choice)
    n_elig = eligible.sum(axis=1)
    draw = rng.random(n) < epsilon
    u = rng.random(n)
    cum = np.cumsum(eligible, axis=1)
    random_action = (cum <= (u * n_elig)[:, None]).sum(axis=1)
    new = choice.copy()
    remaining = b - A[:, choice].sum(axis=1) if len(b) else b
    for i in np.nonzero(draw & (random_action != choice))[0]:
        a_old, a_new = choice[i], random_action[i]
        delta = A[:, a_new] - A[:, a_old]
        if len(b) == 0 or np.all(delta <= remaining + 1e-9):
            new[i] = a_new
            if len(b):
                remaining = remaining - delta
    explored = draw & (new != choice)
    prop = epsilon / n_elig + (1.0 - epsilon) * (new == choice)
    return new, prop, explored


def defense_targets(
    churn_probability: np.ndarray | None,
    value: np.ndarray | None,
    best_ev: np.ndarray,
    best_action: np.ndarray,
    cfg: DefenseConfig,
) -> tuple[np.ndarray, list[list[str]]]:
    """Back-door defense flags (valuable AND at risk AND persuadable) with the reasons behind each flag."""
    n = len(best_ev)
    if churn_probability is None or value is None:
        return np.zeros(n, dtype=bool), [[] for _ in range(n)]
    value = np.asarray(value, dtype=float)
    churn = np.asarray(churn_probability, dtype=float)
    v_min = (
        cfg.min_value
        if cfg.min_value is not None
        else (float(np.nanquantile(value, cfg.min_value_quantile)) if n else 0.0)
    )
    valuable = value >= v_min
    at_risk = churn >= cfg.min_churn_probability
    persuadable = best_ev > cfg.min_incremental_value
    target = valuable & at_risk & persuadable
    reasons: list[list[str]] = []
    for i in range(n):
        if not target[i]:
            reasons.append([])
            continue
        reasons.append(
            [
                f"valuable: value {value[i]:.1f} >= {v_min:.1f}",
                f"at risk: churn probability {churn[i]:.2f} >= {cfg.min_churn_probability:.2f}",
                f"persuadable: {best_action[i]} adds {best_ev[i]:.2f} expected value",
            ]
        )
    return target, reasons


def engagement_potential_list(F: pd.DataFrame, *, top: int | None = None) -> pd.DataFrame:
    """Customers flagged ``high_engagement_potential`` (treat personally, not retain), most engaged first."""
    for col in ("high_engagement_potential", "engagement_index"):
        if col not in F.columns:
            raise ValueError(f"features: missing column {col!r} ({len(F)} rows)")
    keep = [
        c
        for c in ("engagement_index", "buy_intent_score", "forward_value", "social_ladder", "store_ladder")
        if c in F.columns
    ]
    sel = F.loc[F["high_engagement_potential"].astype(bool), keep].sort_values("engagement_index", ascending=False)
    return sel if top is None else sel.head(top)


def total_value(ev: np.ndarray, choice: np.ndarray) -> float:
    """Sum of the expected incremental values of the chosen actions."""
    return float(ev[np.arange(len(choice)), choice].sum())
