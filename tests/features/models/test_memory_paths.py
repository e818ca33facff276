"""The memory-saving paths of the policy's models give the numbers of the plain ones.

The policy trainer at 100,000 customers holds 1.5 GB per copy of its fitting rows, so the reach stage builds
its standardised matrix a few columns at a time and its Gram matrices in row chunks, and large frames are
predicted in row chunks. Each is compared here with the whole-matrix computation it replaces.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.models import reach
from features.models.value import ValueModel


def frame(rng: np.random.Generator, n: int = 3_000, d: int = 37) -> pd.DataFrame:
    X = pd.DataFrame(rng.normal(2.0, 3.0, size=(n, d)), columns=[f"f{i}" for i in range(d)])
    X.iloc[rng.random(n) < 0.2, 3] = np.nan  # missing values are ignored by the mean and scale
    X["const"] = 1.0
    return X


def test_standardised_columns_equal_the_whole_matrix_bit_for_bit() -> None:
    X = frame(np.random.default_rng(0))
    names = list(X.columns)
    Xn = X[names].to_numpy(dtype=float)
    mean, scale = reach.standardisation(Xn)
    Z, m2, s2 = reach.standardised_columns(X, names, chunk=5)
    assert np.array_equal(m2, mean) and np.array_equal(s2, scale)
    assert np.array_equal(Z, reach.standardised(Xn, mean, scale))
    assert Z.flags["F_CONTIGUOUS"]


def test_weighted_gram_and_ridge_baseline_match_the_stacked_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    Z = np.asfortranarray(rng.normal(size=(5_000, 12)))
    w = rng.random(5_000)
    y = rng.random(5_000)
    monkeypatch.setattr(reach, "_GRAM_ROWS", 777)  # several chunks and a ragged last one
    np.testing.assert_allclose(reach._weighted_gram(Z, w), (Z * w[:, None]).T @ Z, rtol=1e-12, atol=1e-9)
    Z1 = np.column_stack([np.ones(len(Z)), Z])
    stacked = Z1 @ np.linalg.solve(Z1.T @ Z1 + np.eye(Z1.shape[1]), Z1.T @ y)
    np.testing.assert_allclose(reach.ridge_baseline(Z, y), stacked, rtol=1e-10, atol=1e-12)


def test_value_model_predicts_large_frames_in_chunks_with_the_same_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    X = frame(rng, n=2_000, d=6)
    spend = np.exp(X["f0"].to_numpy() / 3) * rng.random(len(X))
    model = ValueModel(n_estimators=20).fit(X, spend)
    whole = model.predict(X)
    import features.models.value as value_module

    monkeypatch.setattr(value_module, "PREDICT_ROWS", 300)
    assert np.array_equal(model.predict(X), whole)
