"""The churn estimators on their own: score calibration, the blended model's exact log odds, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.models.churn import BlendedChurnModel, ChurnModel, LinearScore, ScoreCalibrator
from training.metrics import expected_calibration_error


def test_calibrator_improves_a_miscalibrated_score_on_new_data():
    rng = np.random.default_rng(1)
    z = rng.normal(size=20_000)
    y = (rng.random(20_000) < 1 / (1 + np.exp(-(0.5 * z - 1.5)))).astype(int)
    raw = 2.0 * z  # right ranking, wrong scale and offset
    for method in ("platt", "isotonic"):
        cal = ScoreCalibrator(method).fit(raw[:10_000], y[:10_000])
        before = expected_calibration_error(y[10_000:], 1 / (1 + np.exp(-raw[10_000:])))
        after = expected_calibration_error(y[10_000:], cal.transform(raw[10_000:]))
        assert after < before / 3, method


def test_blended_model_is_exact_in_log_odds():
    # the blend's reason codes must still sum to its raw score, and weight 1 must be plain LightGBM
    rng = np.random.default_rng(3)
    tenure = rng.integers(1, 72, 800).astype(float)
    F = pd.DataFrame({"tenure": tenure, "monthly": rng.uniform(20, 110, 800), "constant": 0.0})
    y = (rng.random(800) < 1 / (1 + np.exp(1.5 * np.log(tenure) - 4))).astype(int)
    params = {"num_leaves": 4}
    blend = BlendedChurnModel(params, weight=0.4, num_boost_round=50, calibration="none", class_weight=None)
    blend.fit(F, y)
    contrib = blend.contributions(F.head(20))
    assert np.allclose(contrib.sum(axis=1), blend.raw_score(F.head(20)))
    # the constant column is left out at fit: no contribution, and the linear part reads the booster's columns
    assert list(contrib.columns) == ["tenure", "monthly", "__base__"] and blend.dropped_features_ == ["constant"]
    plain = ChurnModel(params, num_boost_round=50, calibration="none", class_weight=None).fit(F, y)
    pure = BlendedChurnModel(params, weight=1.0, num_boost_round=50, calibration="none", class_weight=None).fit(F, y)
    assert np.allclose(pure.predict_proba(F), plain.predict_proba(F))
    # log terms only for the non-negative, many-valued columns (tenure, monthly), none for the constant
    assert LinearScore().fit(F.to_numpy(), y).log_columns_.tolist() == [0, 1]


def test_churn_model_rejects_one_class():
    F = pd.DataFrame({"a": np.arange(10.0)})
    with pytest.raises(ValueError, match="both classes"):
        ChurnModel().fit(F, np.zeros(10))
