"""Constrained assignment: each customer's action maximising the total expected value under global limits.

Global limits for a round (budget, total contacts, contacts per channel, per offer) are a resource matrix
``A`` over the actions (every customer uses the same resources for the same action) and capacities ``b``.
When no limit binds, the answer is each customer's best action. When limits bind, it is the linear
programme ``max sum EV x  s.t.  sum_a x_ia <= 1, A x <= b`` solved exactly by column generation around
its Lagrangian dual (one variable per limit), followed by an exact integer repair of the few customers
the LP splits.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, sparse

from features.contract.catalogue import Catalogue
from features.decision.config import LimitConfig


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
    cand = _candidates(ev, eligible, min_value)
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


def _candidates(ev: np.ndarray, eligible: np.ndarray, min_value: float) -> np.ndarray:
    """The (customer, contact action) pairs an assignment may choose: eligible and worth more than ``min_value``."""
    cand = eligible & (ev > min_value)
    cand[:, 0] = False
    return cand


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
    ev: np.ndarray, eligible: np.ndarray, A: np.ndarray, b: np.ndarray, *, min_value: float = 0.0
) -> np.ndarray:
    """Baseline: walk (customer, action) pairs by falling value, take each that still fits the limits ``A x <= b``."""
    return _fill(np.zeros(len(ev), dtype=int), ev, _candidates(ev, eligible, min_value), A, b)


def limit_violations(choice: np.ndarray, A: np.ndarray, b: np.ndarray, names: list[str]) -> dict[str, float]:
    """How far each limit is exceeded (only the exceeded ones; empty = all hold)."""
    used = A[:, choice].sum(axis=1) if len(b) else np.zeros(0)
    return {nm: float(u - c) for nm, u, c in zip(names, used, b, strict=True) if u > c + 1e-6}
