"""The next-best-action decision rule: eligibility, constrained assignment, reasons, defense targets.

The rule: the expected incremental value of action ``a`` for a customer is
``value x (P(churn | no contact) - P(churn | a)) - cost(a)``; ``no_contact`` is worth 0. Each customer gets
the eligible action that maximises the *total* expected incremental value over all customers, subject to

* consent: a channel without consent is never used;
* frequency caps and contact fatigue per channel and overall, counted in a window before the cutoff;
* global limits for the round: budget, total contacts, contacts per channel, contacts per offer.

When no global limit binds, this is each customer's best action. When limits bind, the assignment is the
linear programme ``max sum EV x  s.t.  sum_a x_ia <= 1, A x <= b`` solved exactly by column generation
around its Lagrangian dual (all customers share one action -> resource matrix ``A``, so the dual has only
one variable per limit), followed by an exact integer repair of the few customers the LP splits.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import optimize, sparse

from features.contract.catalogue import Catalogue
from features.contract.schema import CONSENT_COLUMNS, OUTREACH_CHANNELS
from features.models.lgbm import feature_matrix

# Reason codes for customers who are not contacted (``no_contact_reason``).
NO_CONSENT = "no_consent"
CAP_REACHED = "cap_reached"
NEGATIVE_UPLIFT = "negative_uplift"
BELOW_COST = "uplift_below_cost"
BUDGET = "budget"
EXPLORATION = "exploration"
INACTIVE = "inactive"
NO_CONTACT_REASONS: tuple[str, ...] = (
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

DECISION_COLUMNS: tuple[str, ...] = (
    "nba_action",
    "nba_channel",
    "nba_offer",
    "nba_expected_incremental_value",
    "nba_propensity",
    "alternatives",
    "decision_reason",
    "no_contact_reason",
    "defense_target",
    "defense_reasons",
)


@dataclass(frozen=True)
class CapConfig:
    """Frequency caps and fatigue, counted over ``window_days`` before the cutoff."""

    window_days: int = 30
    per_channel: dict = field(default_factory=lambda: {"email": 4, "sms": 2, "push": 4, "call": 1})
    total: int | None = 4
    min_days_between_contacts: float | None = 7.0


@dataclass(frozen=True)
class LimitConfig:
    """Global limits for one decision round (``None`` / missing key = unlimited)."""

    budget: float | None = None
    max_contacts: int | None = None
    per_channel: dict = field(default_factory=dict)
    per_offer: dict = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return (
            self.budget is not None
            or self.max_contacts is not None
            or any(v is not None for v in self.per_channel.values())
            or any(v is not None for v in self.per_offer.values())
        )


@dataclass(frozen=True)
class DefenseConfig:
    """Back-door defense: valuable, at real risk, persuadable."""

    min_value_quantile: float = 0.5
    min_value: float | None = None
    min_churn_probability: float = 0.2
    min_incremental_value: float = 0.0


@dataclass(frozen=True)
class ValueConfig:
    """What keeping a customer is worth: margin on spend, and over how many days of future spend."""

    margin: float = 0.35
    horizon_days: float = 730.0


@dataclass(frozen=True)
class PolicyConfig:
    """All settings of the decision rule (see ``features/policy.yaml`` for the documented defaults)."""

    min_incremental_value: float = 0.0
    max_days_inactive: float | None = 90.0
    caps: CapConfig = field(default_factory=CapConfig)
    limits: LimitConfig = field(default_factory=LimitConfig)
    epsilon: float = 0.0
    n_alternatives: int = 3
    defense: DefenseConfig = field(default_factory=DefenseConfig)
    value: ValueConfig = field(default_factory=ValueConfig)

    def with_limits(self, **changes) -> PolicyConfig:
        """A copy with some global limits replaced."""
        return replace(self, limits=replace(self.limits, **changes))


def _sub(cls, spec: dict | None, where: str):
    spec = dict(spec or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(f"policy config: unknown key(s) {unknown} in {where!r}; known: {sorted(known)}")
    return cls(**{**{f.name: getattr(cls(), f.name) for f in fields(cls)}, **spec})


def policy_config_from_dict(spec: dict | None) -> PolicyConfig:
    """Build and check a :class:`PolicyConfig` from its YAML structure (missing keys keep defaults)."""
    spec = dict(spec or {})
    known = {f.name for f in fields(PolicyConfig)}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(f"policy config: unknown key(s) {unknown}; known: {sorted(known)}")
    cfg = PolicyConfig(
        min_incremental_value=float(spec.get("min_incremental_value", 0.0)),
        max_days_inactive=spec.get("max_days_inactive", 90.0),
        caps=_sub(CapConfig, spec.get("caps"), "caps"),
        limits=_sub(LimitConfig, spec.get("limits"), "limits"),
        epsilon=float(spec.get("epsilon", 0.0)),
        n_alternatives=int(spec.get("n_alternatives", 3)),
        defense=_sub(DefenseConfig, spec.get("defense"), "defense"),
        value=_sub(ValueConfig, spec.get("value"), "value"),
    )
    if not 0.0 <= cfg.epsilon < 1.0:
        raise ValueError(f"policy config: epsilon must be in [0, 1), got {cfg.epsilon}")
    for name, table in (
        ("caps.per_channel", cfg.caps.per_channel),
        ("limits.per_channel", cfg.limits.per_channel),
    ):
        bad = sorted(set(table) - set(OUTREACH_CHANNELS))
        if bad:
            raise ValueError(f"policy config: {name} names unknown channel(s) {bad}; known: {OUTREACH_CHANNELS}")
    for name, value in (
        ("limits.budget", cfg.limits.budget),
        ("limits.max_contacts", cfg.limits.max_contacts),
        *((f"limits.per_channel.{k}", v) for k, v in cfg.limits.per_channel.items()),
        *((f"limits.per_offer.{k}", v) for k, v in cfg.limits.per_offer.items()),
    ):
        if value is not None and float(value) < 0:
            raise ValueError(f"policy config: {name} must be >= 0, got {value}")
    return cfg


def load_policy_config(path: str | Path | None = None) -> PolicyConfig:
    """Load policy settings from YAML; ``None`` loads the packaged default ``features/policy.yaml``."""
    pkg = resources.files("features.decision").joinpath("policy.yaml")
    text = pkg.read_text() if path is None else Path(path).read_text()
    return policy_config_from_dict(yaml.safe_load(text))


# --------------------------------------------------------------------------------------------- eligibility
def contact_history(outreach: pd.DataFrame | None, customer_ids, cutoff, window_days: int) -> pd.DataFrame:
    """Contacts per outreach channel and in total in ``[cutoff - window, cutoff)``, and days since the last.

    Holdout rows are not contacts. Returns one row per customer id (index), columns ``contacts_{channel}``,
    ``contacts_total``, ``days_since_contact`` (inf when never contacted).
    """
    ids = pd.Index(pd.Series(customer_ids, dtype=str), name="customer_id")
    out = pd.DataFrame(0, index=ids, columns=[f"contacts_{c}" for c in OUTREACH_CHANNELS] + ["contacts_total"])
    out["days_since_contact"] = np.inf
    if outreach is None or len(outreach) == 0:
        return out
    cutoff = pd.Timestamp(cutoff)
    o = outreach[outreach["ts"] < cutoff]
    if "holdout" in o.columns:
        o = o[~o["holdout"].fillna(False).astype(bool)]
    cid = o["customer_id"].astype(str)
    last = o.groupby(cid.to_numpy())["ts"].max()
    days = (cutoff - last).dt.total_seconds() / 86400.0
    out["days_since_contact"] = days.reindex(ids).fillna(np.inf).to_numpy()
    recent = o["ts"] >= cutoff - pd.Timedelta(days=window_days)
    r = o[recent]
    counts = pd.crosstab(r["customer_id"].astype(str).to_numpy(), r["channel"].astype(str).to_numpy())
    for c in OUTREACH_CHANNELS:
        if c in counts.columns:
            out[f"contacts_{c}"] = counts[c].reindex(ids).fillna(0).astype(int).to_numpy()
    out["contacts_total"] = out[[f"contacts_{c}" for c in OUTREACH_CHANNELS]].sum(axis=1)
    return out


def eligibility(
    customers: pd.DataFrame, history: pd.DataFrame | None, catalogue: Catalogue, caps: CapConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which actions each customer may get: consent, frequency caps, fatigue.

    Returns ``(eligible, consented, capped)``: ``eligible`` is bool ``(n, K)`` over ``catalogue.actions``
    (no contact always eligible); ``consented[i]`` is True if customer i consented to any catalogue channel;
    ``capped[i]`` True if caps/fatigue block every consented channel.
    """
    consent = _consent_arrays(customers, catalogue)
    hist = None
    if history is not None:
        hist = _history_arrays(history, pd.Index(customers["customer_id"].astype(str)), catalogue, caps)
    return _eligibility(consent, hist, catalogue, caps, len(customers))


def _consent_arrays(customers: pd.DataFrame, catalogue: Catalogue) -> dict[str, np.ndarray]:
    """Per catalogue channel, the customers' consent as a bool array (missing = no consent)."""
    missing = [CONSENT_COLUMNS[c] for c in catalogue.channels if CONSENT_COLUMNS[c] not in customers.columns]
    if missing:
        raise ValueError(f"customers: missing consent column(s) {missing} ({len(customers)} rows)")
    return {c: _bool_column(customers[CONSENT_COLUMNS[c]]) for c in catalogue.channels}


def _history_arrays(
    history: pd.DataFrame, ids: pd.Index, catalogue: Catalogue, caps: CapConfig
) -> dict[str, np.ndarray]:
    """The contact-history columns the caps read, aligned to ``ids`` (missing counts 0, never contacted)."""
    # Aligned already in the common case (history built from the same customers): no reindex.
    h = history if history.index.equals(ids) and history.index.is_unique else history.reindex(ids)
    out = {"contacts_total": _filled(h["contacts_total"], 0)}
    if caps.min_days_between_contacts is not None:
        out["days_since_contact"] = _filled(h["days_since_contact"], np.inf)
    for c in catalogue.channels:
        if caps.per_channel.get(c) is not None:
            out[f"contacts_{c}"] = _filled(h[f"contacts_{c}"], 0)
    return out


def _eligibility(
    consent: dict[str, np.ndarray],
    hist: dict[str, np.ndarray] | None,
    catalogue: Catalogue,
    caps: CapConfig,
    n: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`eligibility` on arrays: ``consent`` per channel, ``hist`` from :func:`_history_arrays`."""
    channels = list(catalogue.channels)
    open_ = {c: np.ones(n, dtype=bool) for c in channels}
    if hist is not None:
        total = hist["contacts_total"]
        rested = None
        if caps.min_days_between_contacts is not None:
            days = hist["days_since_contact"]
            # never contacted (missing) counts as rested, as an infinite gap
            rested = np.where(np.isnan(days), np.inf, days) >= caps.min_days_between_contacts
        for c in channels:
            cap = caps.per_channel.get(c)
            if cap is not None:
                open_[c] &= hist[f"contacts_{c}"] + 1 <= cap
            if caps.total is not None:
                open_[c] &= total + 1 <= caps.total
            if rested is not None:
                open_[c] &= rested
    eligible = np.zeros((n, len(catalogue.actions)), dtype=bool)
    for k, a in enumerate(catalogue.actions):
        eligible[:, k] = True if a.channel is None else consent[a.channel] & open_[a.channel]
    consented = np.zeros(n, dtype=bool)
    reachable = np.zeros(n, dtype=bool)
    for c in channels:
        consented |= consent[c]
        reachable |= consent[c] & open_[c]
    return eligible, consented, consented & ~reachable


def _bool_column(values: pd.Series) -> np.ndarray:
    """``values.fillna(False).astype(bool)`` as an array; a plain bool column is used as it is."""
    if values.dtype == bool:
        return values.to_numpy()
    return values.fillna(False).astype(bool).to_numpy()


def _filled(values: pd.Series, fill: float) -> np.ndarray:
    """``values.fillna(fill).to_numpy()``; a plain float column without the pandas round trip."""
    arr = values.to_numpy()
    if arr.dtype.kind == "f":
        return np.where(np.isnan(arr), fill, arr)
    return values.fillna(fill).to_numpy()


# --------------------------------------------------------------------------------------------- assignment
def limit_matrix(catalogue: Catalogue, limits: LimitConfig) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The resource use of every action under each active global limit: ``(A (m, K), b (m,), names)``."""
    rows, caps, names = [], [], []
    acts = catalogue.actions
    if limits.budget is not None:
        rows.append([a.cost for a in acts])
        caps.append(float(limits.budget))
        names.append("budget")
    if limits.max_contacts is not None:
        rows.append([0.0 if a.channel is None else 1.0 for a in acts])
        caps.append(float(limits.max_contacts))
        names.append("max_contacts")
    for ch, cap in limits.per_channel.items():
        if cap is not None:
            rows.append([1.0 if a.channel == ch else 0.0 for a in acts])
            caps.append(float(cap))
            names.append(f"channel:{ch}")
    for off, cap in limits.per_offer.items():
        if cap is not None:
            rows.append([1.0 if (a.channel is not None and a.offer == off) else 0.0 for a in acts])
            caps.append(float(cap))
            names.append(f"offer:{off}")
    K = len(acts)
    return np.asarray(rows, dtype=float).reshape(-1, K), np.asarray(caps, dtype=float), names


def _dual_estimate(S: np.ndarray, A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Approximate Lagrange multipliers of the limits by minimising an entropy-smoothed dual (L-BFGS-B).

    ``S`` holds expected values with -inf for ineligible/unprofitable pairs; no contact (0) is implicit.
    """
    finite = S[np.isfinite(S)]
    scale = float(np.median(finite)) if finite.size else 1.0
    lam = np.zeros(len(b))
    for tau in (0.3 * scale, 0.1 * scale, 0.03 * scale, 0.01 * scale):

        def dual(lam_: np.ndarray, tau: float = tau) -> tuple[float, np.ndarray]:
            adj = (S - lam_ @ A) / tau
            top = np.maximum(adj.max(axis=1), 0.0)
            e = np.exp(adj - top[:, None])
            z = np.exp(-top) + e.sum(axis=1)
            val = float(lam_ @ b + tau * np.sum(top + np.log(z)))
            p = e / z[:, None]
            grad = b - A @ p.sum(axis=0)
            return val, grad

        res = optimize.minimize(
            dual, lam, jac=True, method="L-BFGS-B", bounds=[(0, None)] * len(b), options={"maxiter": 200}
        )
        lam = res.x
    return lam


def _solve_restricted_lp(
    ii: np.ndarray, aa: np.ndarray, ev: np.ndarray, A: np.ndarray, b: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LP over the given (customer, action) columns. Returns ``(x, lam, u)`` with duals >= 0."""
    custs, row_of = np.unique(ii, return_inverse=True)
    nc, m, ncol = len(custs), A.shape[0], len(ii)
    rows = [row_of, *[np.full(ncol, nc + j) for j in range(m)]]
    vals = [np.ones(ncol), *[A[j, aa] for j in range(m)]]
    cols = [np.arange(ncol)] * (m + 1)
    keep = [np.ones(ncol, bool)] + [A[j, aa] != 0 for j in range(m)]
    mat = sparse.csr_matrix(
        (
            np.concatenate([v[k] for v, k in zip(vals, keep, strict=True)]),
            (
                np.concatenate([r[k] for r, k in zip(rows, keep, strict=True)]),
                np.concatenate([c[k] for c, k in zip(cols, keep, strict=True)]),
            ),
        ),
        shape=(nc + m, ncol),
    )
    res = optimize.linprog(-ev, A_ub=mat, b_ub=np.concatenate([np.ones(nc), b]), bounds=(0, 1), method="highs")
    if res.status != 0:
        raise RuntimeError(f"policy assignment: LP solver failed ({res.message})")
    duals = -res.ineqlin.marginals
    u = np.zeros(n)
    u[custs] = duals[:nc]
    return res.x, np.maximum(duals[nc:], 0.0), u


def assign(
    ev: np.ndarray,
    eligible: np.ndarray,
    A: np.ndarray | None = None,
    b: np.ndarray | None = None,
    *,
    min_value: float = 0.0,
) -> np.ndarray:
    """The action index per customer maximising total expected incremental value under ``A x <= b``.

    ``ev`` is ``(n, K)`` with column 0 = no contact (value 0); ineligible pairs are never chosen, nor pairs
    worth ``<= min_value``. Every limit holds exactly. Column generation on the LP relaxation gives the
    optimum of the relaxation; the customers the LP splits (at most one per binding limit in a basic
    solution) are then decided by an exact small integer programme on the capacity they leave.
    """
    n, _K = ev.shape
    cand = eligible & (ev > min_value)
    cand[:, 0] = False
    S = np.where(cand, ev, -np.inf)
    best = np.where(cand.any(axis=1), S.argmax(axis=1), 0)
    if A is None or len(b) == 0 or not cand.any():
        return best
    use = A[:, best].sum(axis=1) if n else np.zeros(len(b))
    if np.all(use <= b + 1e-9):
        return best
    lam = _dual_estimate(S, A, b)
    # Columns near each customer's best Lagrangian-adjusted action form the core.
    adj = S - lam @ A
    top = np.maximum(adj.max(axis=1), 0.0)
    spread = max(float(np.std(ev[cand])), 1e-9)
    core = cand & (adj >= top[:, None] - 0.05 * spread)
    for _ in range(30):
        ii, aa = np.nonzero(core)
        x, lam, u = _solve_restricted_lp(ii, aa, ev[ii, aa], A, b, n)
        reduced = S - (lam @ A)[None, :] - u[:, None]
        add = cand & ~core & (reduced > 1e-7 * spread)
        if not add.any():
            break
        core |= add
    choice = np.zeros(n, dtype=int)
    whole = x > 1 - 1e-7
    choice[ii[whole]] = aa[whole]
    frac = (x > 1e-7) & ~whole
    split = np.unique(ii[frac])
    remaining = b - A[:, choice].sum(axis=1)
    if split.size:
        sub = cand[split]
        si, sa = np.nonzero(sub)
        m = len(b)
        cons_rows = np.zeros((split.size + m, si.size))
        cons_rows[si, np.arange(si.size)] = 1.0
        cons_rows[split.size :, :] = A[:, sa]
        res = optimize.milp(
            -ev[split[si], sa],
            integrality=np.ones(si.size),
            bounds=optimize.Bounds(0, 1),
            constraints=optimize.LinearConstraint(
                cons_rows, -np.inf, np.concatenate([np.ones(split.size), remaining + 1e-9])
            ),
        )
        if res.status == 0:
            picked = res.x > 0.5
            choice[split[si[picked]]] = sa[picked]
    return _fill(choice, ev, cand, A, b)


def _fill(choice: np.ndarray, ev: np.ndarray, cand: np.ndarray, A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Use capacity the rounding left free: uncontacted customers' best fitting action, best first."""
    remaining = b - A[:, choice].sum(axis=1)
    free = np.nonzero((choice == 0) & cand.any(axis=1))[0]
    if free.size == 0:
        return choice
    ii, aa = np.nonzero(cand[free])
    vals = ev[free[ii], aa]
    order = np.argsort(-vals, kind="stable")
    done = np.zeros(len(choice), dtype=bool)
    for j in order[:200_000]:
        i, a = free[ii[j]], aa[j]
        if done[i]:
            continue
        need = A[:, a]
        if np.all(need <= remaining + 1e-9):
            choice[i] = a
            remaining = remaining - need
            done[i] = True
    return choice


def greedy_assign(
    ev: np.ndarray,
    eligible: np.ndarray,
    A: np.ndarray | None = None,
    b: np.ndarray | None = None,
    *,
    min_value: float = 0.0,
) -> np.ndarray:
    """Baseline: walk (customer, action) pairs by falling value, take each that still fits the limits."""
    n, K = ev.shape
    cand = eligible & (ev > min_value)
    cand[:, 0] = False
    if A is None:
        A, b = np.zeros((0, K)), np.zeros(0)
    return _fill(np.zeros(n, dtype=int), ev, cand, A, b)


def limit_violations(choice: np.ndarray, A: np.ndarray, b: np.ndarray, names: list[str]) -> dict[str, float]:
    """How far each limit is exceeded (only the exceeded ones; empty = all hold)."""
    used = A[:, choice].sum(axis=1) if len(b) else np.zeros(0)
    return {nm: float(u - c) for nm, u, c in zip(names, used, b, strict=True) if u > c + 1e-6}


# --------------------------------------------------------------------------------------------- decisions
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
    rows in the order of ``customers``. ``history`` comes from :func:`contact_history` (caps and fatigue are
    skipped without it). ``churn_probability`` and ``value`` feed the defense targets (no targets without
    them). With ``config.epsilon > 0`` a random generator is required. Returns one row per customer indexed by
    ``customer_id`` with :data:`DECISION_COLUMNS`.
    """
    customer_ids = customers["customer_id"].astype(str).to_numpy()
    if ev.shape[0] != len(customers) or len(catalogue.actions) != ev.shape[1]:
        raise ValueError(f"decide: ev has shape {ev.shape}, expected ({len(customers)}, {len(catalogue.actions)})")
    consent = _consent_arrays(customers, catalogue)
    hist = None if history is None else _history_arrays(history, pd.Index(customer_ids), catalogue, config.caps)
    cols = _decide_columns(
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


def _decide_columns(
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
) -> dict[str, np.ndarray]:
    """:func:`decide` on arrays (consent per channel, history from :func:`_history_arrays`): the
    :data:`DECISION_COLUMNS` as arrays, rows in the order of ``ev``. Scoring calls this directly, so a small
    request pays for no pandas objects."""
    n, K = ev.shape
    if not np.all(np.isfinite(ev)):
        raise ValueError(f"decide: ev has {int((~np.isfinite(ev)).sum())} non-finite values")
    eligible, consented, capped = _eligibility(consent, history, catalogue, config.caps, n)
    inactive = np.zeros(n, dtype=bool) if active is None else ~np.asarray(active, dtype=bool)
    eligible[inactive, 1:] = False
    A, b, _ = limit_matrix(catalogue, config.limits)
    choice = assign(ev, eligible, A, b, min_value=config.min_incremental_value)
    unconstrained = np.where(eligible & (ev > config.min_incremental_value), ev, -np.inf)
    unconstrained[:, 0] = -np.inf
    has_positive = np.isfinite(unconstrained.max(axis=1))
    best_free = np.where(has_positive, unconstrained.argmax(axis=1), 0)

    propensity = np.ones(n)
    explored = np.zeros(n, dtype=bool)
    if config.epsilon > 0:
        if rng is None:
            raise ValueError("decide: epsilon > 0 needs a numpy random Generator (rng)")
        choice, propensity, explored = _explore(choice, eligible, A, b, config.epsilon, rng)

    costs = np.array([a.cost for a in catalogue.actions])
    ids = [a.id for a in catalogue.actions]
    chans = [a.channel for a in catalogue.actions]
    offers = [a.offer for a in catalogue.actions]
    gross = ev + costs[None, :]
    masked = np.where(eligible, ev, -np.inf)
    masked[:, 0] = -np.inf
    best_gross = np.where(eligible[:, 1:], gross[:, 1:], -np.inf).max(axis=1) if K > 1 else np.full(n, -np.inf)

    reason = np.empty(n, dtype=object)
    contacted = choice != 0
    reason[contacted & (choice == best_free)] = BEST_ACTION
    reason[contacted & (choice != best_free)] = LIMITED_ALTERNATIVE
    nc = ~contacted
    no_reason = np.full(n, None, dtype=object)
    no_reason[nc & has_positive] = BUDGET
    no_reason[nc & ~has_positive] = BELOW_COST
    no_reason[nc & ~has_positive & (best_gross <= 0)] = NEGATIVE_UPLIFT
    no_reason[nc & capped] = CAP_REACHED
    no_reason[nc & inactive] = INACTIVE
    no_reason[nc & ~consented] = NO_CONSENT
    no_reason[nc & explored] = EXPLORATION
    reason[nc] = no_reason[nc]
    reason[contacted & explored] = EXPLORATION

    # Runner-ups: the next best eligible contact actions by expected incremental value.
    n_alt = max(int(config.n_alternatives), 0)
    alt_scores = masked.copy()
    alt_scores[np.arange(n), choice] = -np.inf
    order = np.argsort(-alt_scores, axis=1, kind="stable")[:, :n_alt]
    # Python lists, not per-element numpy indexing: this loop runs once per customer.
    alt_ok = np.isfinite(np.take_along_axis(alt_scores, order, axis=1)).tolist()
    alt_ev = np.take_along_axis(ev, order, axis=1).tolist()
    alternatives = [
        [
            {"action": ids[k], "channel": chans[k], "offer": offers[k], "expected_incremental_value": v}
            for k, ok, v in zip(ks, oks, vs, strict=True)
            if ok
        ]
        for ks, oks, vs in zip(order.tolist(), alt_ok, alt_ev, strict=True)
    ]

    out = {
        "nba_action": np.asarray(ids, dtype=object)[choice],
        "nba_channel": np.asarray(chans, dtype=object)[choice],
        "nba_offer": np.asarray(offers, dtype=object)[choice],
        "nba_expected_incremental_value": ev[np.arange(n), choice],
        "nba_propensity": propensity,
        "alternatives": _objects(alternatives),
        "decision_reason": reason,
        "no_contact_reason": no_reason,
    }
    best_any = np.where(masked.max(axis=1) > -np.inf, masked.max(axis=1), 0.0)
    target, reasons = defense_targets(
        churn_probability,
        value,
        best_any,
        np.asarray(ids, dtype=object)[masked.argmax(axis=1)],
        # persuadable = an action the policy itself would take: above its contact threshold too
        replace(
            config.defense,
            min_incremental_value=max(config.defense.min_incremental_value, config.min_incremental_value),
        ),
    )
    out["defense_target"] = target
    out["defense_reasons"] = _objects(reasons)
    return out


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


# --------------------------------------------------------------------------------------------- the model
class NextBestAction:
    """The fitted policy carried by a decision system: effect model, value model, catalogue and settings.

    ``uplift`` is a fitted :class:`features.models.uplift.UpliftModel` over ``catalogue.ids``, ``value_model`` a
    fitted :class:`features.models.value.ValueModel`. Feature frames are indexed by ``customer_id``.
    """

    def __init__(
        self,
        uplift,
        value_model,
        catalogue: Catalogue,
        config: PolicyConfig,
        *,
        defense_min_value: float | None = None,
    ) -> None:
        if list(uplift.actions) != catalogue.ids:
            raise ValueError("NextBestAction: the effect model's actions differ from the catalogue's")
        self.uplift = uplift
        self.value_model = value_model
        self.catalogue = catalogue
        self.config = config
        # The "valuable" bar fixed at training time, so a customer's defense flag does not depend on which
        # other customers share the request (a quantile of the scored batch would).
        self.defense_min_value = defense_min_value

    def expected_values(self, F: pd.DataFrame) -> dict[str, np.ndarray]:
        """Per customer: churn without contact ``p0``, with each action ``p``, ``value`` and the EV matrix."""
        # One float matrix of the features serves both models (each conversion copies every column).
        names = list(self.uplift.feature_names_)
        matrix = feature_matrix(F, names) if len(F) else None
        p0, p = self.uplift.predict_churn(F, matrix=matrix)
        same = list(getattr(self.value_model, "feature_names_", ())) == names
        value = self.value_model.predict(F, matrix=matrix if same else None)
        return {
            "p0": p0,
            "p": p,
            "value": value,
            "ev": expected_incremental_value(p0, p, value, self.catalogue),
        }

    def decide(
        self,
        F: pd.DataFrame,
        churn_probability=None,
        *,
        customers: pd.DataFrame | None = None,
        outreach: pd.DataFrame | None = None,
        cutoff=None,
        config: PolicyConfig | None = None,
        rng: np.random.Generator | None = None,
    ) -> pd.DataFrame:
        """Decisions for the customers of ``F`` (indexed by ``customer_id``), one row each, same order.

        Consent comes from ``customers`` when given, else from the features ``chan_{c}_consent``. Caps and
        fatigue count ``outreach`` before ``cutoff`` when both are given, else the features'
        ``chan_{c}_contacts_30d``, ``contacts_30d`` and ``chan_{c}_days_since_contact`` (a 30-day window).
        ``churn_probability`` (e.g. the churn model's) drives the defense targets, defaulting to the effect
        model's own estimate.
        """
        ids = pd.Index(F.index.astype(str), name="customer_id")
        cols = self.decide_columns(
            F,
            churn_probability,
            customers=customers,
            outreach=outreach,
            cutoff=cutoff,
            config=config,
            rng=rng,
            ids=ids,
        )
        return pd.DataFrame(cols, index=ids)

    def decide_columns(
        self,
        F: pd.DataFrame,
        churn_probability=None,
        *,
        customers: pd.DataFrame | None = None,
        outreach: pd.DataFrame | None = None,
        cutoff=None,
        config: PolicyConfig | None = None,
        rng: np.random.Generator | None = None,
        ids: pd.Index | None = None,
    ) -> dict[str, np.ndarray]:
        """:meth:`decide` as a dict of :data:`DECISION_COLUMNS` arrays in the row order of ``F`` (no frame:
        scoring a few customers pays for little but the models). ``ids``: ``F``'s index as strings, if known.
        """
        cfg = config or self.config
        fixed = getattr(self, "defense_min_value", None)  # absent in systems pickled before it existed
        if cfg.defense.min_value is None and fixed is not None:
            cfg = replace(cfg, defense=replace(cfg.defense, min_value=fixed))
        if ids is None:
            ids = pd.Index(F.index.astype(str), name="customer_id")
        if customers is None:
            consent = _consent_from_features(F, self.catalogue)
        else:
            aligned = (
                customers.assign(customer_id=customers["customer_id"].astype(str))
                .set_index("customer_id")
                .reindex(ids)
                .reset_index()
            )
            consent = _consent_arrays(aligned, self.catalogue)
        if outreach is not None and cutoff is not None:
            hist = contact_history(outreach, ids, cutoff, cfg.caps.window_days)
            history = _history_arrays(hist, ids, self.catalogue, cfg.caps)
        else:
            history = _history_from_features(F)
        est = self.expected_values(F)
        churn = est["p0"] if churn_probability is None else np.asarray(churn_probability, dtype=float)
        return _decide_columns(
            est["ev"],
            consent,
            self.catalogue,
            cfg,
            history=history,
            churn_probability=churn,
            value=est["value"],
            active=active_customers(F, cfg),
            rng=rng,
        )


def active_customers(F: pd.DataFrame, config: PolicyConfig) -> np.ndarray | None:
    """Customers within the effect model's domain: active in the last ``max_days_inactive`` days.

    The effect model learns from customers active before each campaign; a long-lapsed customer is outside
    what it has seen (and most are already gone), so they are not contacted (reason ``inactive``).
    """
    if config.max_days_inactive is None or "days_since_last_active" not in F.columns:
        return None
    return _filled(F["days_since_last_active"], np.inf) <= float(config.max_days_inactive)


def consent_from_features(F: pd.DataFrame) -> pd.DataFrame:
    """A customers frame (``customer_id`` + consent columns) from the features ``chan_{c}_consent``."""
    data: dict = {"customer_id": F.index.astype(str)}
    for c, col in CONSENT_COLUMNS.items():
        data[col] = _consent_feature(F, c)
    return pd.DataFrame(data)


def _consent_feature(F: pd.DataFrame, channel: str) -> np.ndarray:
    name = f"chan_{channel}_consent"
    if name not in F.columns:
        raise ValueError(f"features: missing column {name} ({len(F)} rows); consent is required")
    return _filled(F[name], 0) > 0


def _consent_from_features(F: pd.DataFrame, catalogue: Catalogue) -> dict[str, np.ndarray]:
    """:func:`consent_from_features` as arrays per catalogue channel."""
    return {c: _consent_feature(F, c) for c in catalogue.channels}


def history_from_features(F: pd.DataFrame) -> pd.DataFrame | None:
    """Contact history for caps from the features (30-day counts); ``None`` when the columns are absent."""
    data = _history_from_features(F)
    return None if data is None else pd.DataFrame(data, index=pd.Index(F.index.astype(str), name="customer_id"))


def _history_from_features(F: pd.DataFrame) -> dict[str, np.ndarray] | None:
    """:func:`history_from_features` as arrays (the frame's columns)."""
    need = [f"chan_{c}_contacts_30d" for c in OUTREACH_CHANNELS] + ["contacts_30d"]
    if any(c not in F.columns for c in need):
        return None
    data = {f"contacts_{c}": _filled(F[f"chan_{c}_contacts_30d"], 0) for c in OUTREACH_CHANNELS}
    data["contacts_total"] = _filled(F["contacts_30d"], 0)
    since = [f"chan_{c}_days_since_contact" for c in OUTREACH_CHANNELS if f"chan_{c}_days_since_contact" in F]
    # fmin skips missing values as DataFrame.min(axis=1) does (all missing -> NaN), without a frame.
    data["days_since_contact"] = (
        np.fmin.reduce(np.column_stack([F[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in since]), axis=1)
        if since
        else np.full(len(F), np.inf)
    )
    return data
