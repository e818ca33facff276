"""The value of one offer policy minus another on held-out rows, with row- and person-bootstrap intervals.

A person's rows are not independent (the same member receives several offers), so besides the row
bootstrap of :func:`features.decision.ope.dr_difference` every difference gets an interval from
resampling whole persons; a difference counts as above zero only when both intervals are.
"""

from __future__ import annotations

import numpy as np

from features.decision.ope import Estimate, dr_difference


def person_bootstrap(d: np.ndarray, persons: np.ndarray, rng: np.random.Generator, n_boot: int = 500) -> Estimate:
    """Mean of per-row values ``d`` with a percentile interval from resampling persons (all their rows at once)."""
    _, inv = np.unique(persons, return_inverse=True)
    sums = np.bincount(inv, weights=d)
    counts = np.bincount(inv).astype(float)
    idx = rng.integers(0, len(sums), size=(n_boot, len(sums)))
    boot = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return Estimate(float(d.mean()), float(lo), float(hi))


def policy_difference(G: np.ndarray, pi_a: np.ndarray, pi_b: np.ndarray, persons: np.ndarray,
                      rng: np.random.Generator, n_boot: int) -> dict:
    """DR value of policy a minus policy b, with row-bootstrap and person-bootstrap intervals."""
    rows = dr_difference(G, pi_a, pi_b, rng=rng, n_boot=n_boot)
    d = (pi_a * G).sum(axis=1) - (pi_b * G).sum(axis=1)
    per = person_bootstrap(d, persons, rng, n_boot)
    return {**rows.as_dict(), "person_bootstrap": {"low": per.low, "high": per.high},
            "above_zero": bool(rows.low > 0 and per.low > 0)}
