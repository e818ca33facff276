"""Drift figures on a case with a known shift: the shifted feature ranks first, the others stay low."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from training.retrain.drift import drift_figures, ks_test, psi, reference_sketches, sketch


def _frame(rng, n, shift=0.0):
    return pd.DataFrame({
        "recency_days": rng.exponential(20, n),
        "visits_90d": rng.poisson(4, n).astype(float),
        "spend_90d": rng.gamma(2, 50, n) + shift,
        "loyalty": rng.integers(0, 2, n).astype(bool),
    })


def test_the_shifted_feature_ranks_first():
    rng = np.random.default_rng(0)
    ref = _frame(rng, 3000)
    new = _frame(rng, 3000, shift=60.0)
    sketches = reference_sketches(ref, pd.Series(rng.uniform(size=3000)))
    out = drift_figures(sketches, new, pd.Series(rng.uniform(size=3000)))
    rows = out["features"]
    assert rows[0]["feature"] == "spend_90d"
    assert rows[0]["psi"] > 0.25 and rows[0]["ks_p"] < 1e-6
    assert all(r["psi"] < 0.05 for r in rows[1:]), rows
    assert out["score"]["psi"] < 0.05


def test_ks_matches_scipy_on_the_grid():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 4000), rng.normal(0.2, 1, 3000)
    d, p = ks_test(sketch(pd.Series(a)), pd.Series(b))
    exact = stats.ks_2samp(a, b)
    assert abs(d - exact.statistic) < 0.015  # the grid has 101 points: within a percentile of the exact statistic
    assert p < 1e-6 and exact.pvalue < 1e-6


def test_psi_counts_missing_values_as_a_bin_and_is_zero_without_change():
    rng = np.random.default_rng(2)
    x = pd.Series(rng.normal(size=5000))
    ref = sketch(x)
    assert psi(ref, x) < 1e-9
    holes = x.copy()
    holes[: 2000] = np.nan
    assert psi(ref, holes) > 0.25


def test_a_sketch_holds_no_row():
    x = pd.Series(np.arange(10_000, dtype=float))
    s = sketch(x)
    assert len(s["grid"]) <= 101 and len(s["edges"]) <= 9
