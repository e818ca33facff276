"""Off-policy estimators: unbiased on a synthetic randomised log with known values; intervals cover."""

from __future__ import annotations

import numpy as np
import pytest

from features.decision.ope import by_group, dr_pseudo_outcomes, evaluate, policy_matrix, qini_coefficient, qini_curve

K = 4


def synthetic_log(n: int, rng: np.random.Generator):
    x = rng.normal(size=n)
    mean = np.column_stack([0.2 * x, 0.5 - 0.3 * x, 0.1 + 0.4 * x, -0.2 + 0 * x])
    logging = np.exp(np.column_stack([0 * x, 0.5 * x, -0.5 * x, 0 * x]))
    logging /= logging.sum(axis=1, keepdims=True)
    u = rng.random(n)
    a = (u[:, None] > np.cumsum(logging, axis=1)).sum(axis=1)
    r = mean[np.arange(n), a] + rng.normal(0, 1.0, n)
    target = np.where(x > 0, 2, 1)
    return a, logging[np.arange(n), a], r, target, mean


def test_estimators_unbiased_over_repeated_seeds() -> None:
    est = {"ips": [], "snips": [], "dr": [], "truth": []}
    covered = 0
    for seed in range(30):
        rng = np.random.default_rng(seed)
        a, p, r, target, mean = synthetic_log(4000, rng)
        pi = policy_matrix(target, K)
        q = mean + rng.normal(0, 0.2, mean.shape) + 0.1  # a biased, noisy outcome model
        res = evaluate(a, p, r, pi, q=q, rng=rng, n_boot=200)
        true = float(mean[np.arange(len(a)), target].mean())
        for k in ("ips", "snips", "dr"):
            est[k].append(res[k].value - true)
        covered += res["dr"].contains(true)
    for k in ("ips", "snips", "dr"):
        bias = np.mean(est[k])
        se = np.std(est[k]) / np.sqrt(len(est[k]))
        assert abs(bias) < 3 * se + 0.01, (k, bias, se)
    assert covered >= 25  # nominal 95 % of 30


def test_wrong_propensities_rejected() -> None:
    rng = np.random.default_rng(0)
    a, p, r, target, _ = synthetic_log(100, rng)
    p[3] = 0.0
    with pytest.raises(ValueError, match="propensities"):
        evaluate(a, p, r, policy_matrix(target, K), rng=rng)


def test_group_contributions_add_up_and_qini_ranks_true_uplift() -> None:
    rng = np.random.default_rng(1)
    a, p, r, target, mean = synthetic_log(5000, rng)
    G = dr_pseudo_outcomes(a, p, r, mean)
    table = by_group(G, target, np.array(["c0", "c1", "c2", "c3"]), baseline=0, rng=rng, n_boot=50)
    total = (G[np.arange(len(a)), target] - G[:, 0]).mean()
    assert np.isclose(table["incremental_value"].sum(), total)
    assert np.isclose(table["share"].sum(), 1.0)
    # Qini: treatment = action 1 vs control 0; scoring by the true uplift beats scoring at random.
    keep = (a == 0) | (a == 1)
    uplift = (mean[:, 1] - mean[:, 0])[keep]
    good = qini_coefficient(qini_curve(uplift, a[keep] == 1, r[keep], weight=1 / p[keep]))
    rand = qini_coefficient(qini_curve(rng.random(keep.sum()), a[keep] == 1, r[keep], weight=1 / p[keep]))
    assert good > rand
