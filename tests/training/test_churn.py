"""Churn training: temporal split, calibration, reason codes, metrics, baselines, given labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.builders.dictionary import attribute_origins
from features.labels import make_labels
from training.churn.given_labels import train_given_labels
from training.churn.split import ChurnSettings, labelled_features, temporal_split
from training.churn.train import train_churn
from training.metrics import churn_metrics, expected_calibration_error, lift_capture

SETTINGS = ChurnSettings(max_train_cutoffs=4)


@pytest.fixture(scope="module")
def world(make_world):
    return make_world(1500, 420, seed=21)


@pytest.fixture(scope="module")
def result(world):
    return train_churn(world, SETTINGS, np.random.default_rng(0), dataset="test-world")


def test_no_training_label_from_after_the_training_period(world, result):
    split = temporal_split(world, SETTINGS)
    H = pd.Timedelta(days=SETTINGS.horizon_days)
    train_end = min(split.val)
    assert max(split.train) + H <= train_end
    assert max(split.val) + H <= split.test
    # Training labels are identical when every event from the training period's end on is deleted:
    # they cannot depend on anything after it.
    cut = world.touchpoints[world.touchpoints["ts"] < train_end]
    full = make_labels(world, split.train)
    truncated = make_labels(world.with_(touchpoints=cut), split.train)
    pd.testing.assert_frame_equal(full, truncated)
    assert pd.Timestamp(result.report["train_label_window_end"]) <= train_end


def test_training_rows_span_many_cutoffs(world):
    from features.builders.pipeline import FeaturePipeline

    split = temporal_split(world, SETTINGS)
    pipe = FeaturePipeline().fit(world.without_truth(), cutoff=split.train[-1])
    F, keys = labelled_features(world, split.train, pipe, SETTINGS)
    assert len(F) == len(keys)
    assert keys["cutoff"].nunique() == len(split.train) >= 2
    assert (F.index.astype(str) == keys["customer_id"].to_numpy()).all()


def test_report_has_the_expected_keys_and_beats_chance(result):
    r = result.report
    for key in ("auc", "pr_auc", "brier", "ece", "lift_at_10", "oracle_auc", "oracle_brier"):
        assert np.isfinite(r[key]), key
    assert "auc" in r["baselines"]["logistic_rfm"]
    assert "auc" in r["baselines"]["bgnbd_expected_purchases"]
    assert 0.6 < r["auc"] <= r["oracle_auc"] + 0.05
    assert r["lift_at_10"] > 1.5


def test_calibration_keeps_or_improves_ece(result):
    # class weighting inflates raw probabilities; the calibrator must bring them back
    assert result.report["ece"] <= result.report["ece_uncalibrated"]
    assert result.report["brier"] <= result.report["brier_uncalibrated"]


def test_reason_codes_sum_with_base_value_to_raw_score(result):
    model = result.system.churn_model
    F = result.test_features.head(200)
    contrib = model.contributions(F)
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy(), model.raw_score(F), rtol=1e-6, atol=1e-6)
    reasons = model.reason_codes(F, top=3)
    assert len(reasons) == len(F)
    origins = attribute_origins(result.system.pipeline)
    for row, (_, c) in zip(reasons, contrib.iterrows(), strict=True):
        values = [r["contribution"] for r in row]
        assert values == sorted(values, reverse=True) and all(v > 0 for v in values)
        for r in row:
            # an attribute is one reason: its columns' contributions summed
            columns = [n for n, o in origins.items() if o[0] == r["attribute"]] if r["attribute"] else [r["feature"]]
            assert c[[n for n in columns if n in c.index]].sum() == pytest.approx(r["contribution"])
            assert r["label"] and r["label"] != ""
    imp = model.importance()
    assert imp["gain_share"].sum() == pytest.approx(1.0)


def test_decision_system_scores_raw_touchpoints(world, result):
    test = pd.Timestamp(result.report["cutoffs"]["test"])
    scored = result.system.score(world, test)
    assert len(scored) == world.n_customers
    assert scored["churn_probability"].between(0, 1).all()
    assert scored["store_ladder"].isin(["visitor", "interested", "almost_buyer", "buyer"]).all()
    same = scored.set_index("customer_id").loc[result.test_keys["customer_id"], "churn_probability"]
    np.testing.assert_allclose(same.to_numpy(), result.test_prob)


def test_model_is_reproducible_with_the_same_seed(world):
    a = train_churn(world, SETTINGS, np.random.default_rng(3))
    b = train_churn(world, SETTINGS, np.random.default_rng(3))
    np.testing.assert_array_equal(a.test_prob, b.test_prob)


def test_metrics_on_known_cases():
    y = np.array([0] * 90 + [1] * 10)
    p = np.r_[np.zeros(90), np.ones(10)]
    m = churn_metrics(y, p)
    assert m["auc"] == 1.0 and m["brier"] == 0.0 and m["ece"] == 0.0
    assert lift_capture(y, p, 0.1) == (10.0, 1.0)
    rng = np.random.default_rng(0)
    q = rng.random(50_000)
    assert expected_calibration_error((rng.random(50_000) < q).astype(int), q) < 0.01


def test_given_labels_are_cross_validated(world):
    cutoff = pd.Timestamp(world.meta["manifest"]["cutoff"])
    labels = make_labels(world, [cutoff])
    small = world.subset(labels["customer_id"].head(600)).with_(
        labels=labels.head(600).drop(columns="cutoff").assign(cutoff=cutoff)
    )
    grid = ({"num_leaves": 4, "min_child_samples": 20}, {"num_leaves": 8, "min_child_samples": 40})
    res = train_given_labels(
        small, ChurnSettings(cv_folds=3), np.random.default_rng(0), dataset="given", grid=grid
    )
    assert res.report["mode"] == "given_labels_cv"
    assert len(res.report["auc_folds"]) == 3
    assert 0.6 < res.report["auc"] < 1.0
    assert "auc" in res.report["baselines"]["logistic_all_features"]
    assert "auc" in res.report["baselines"]["lightgbm_tuned"]
    assert all(0.0 <= t["weight"] <= 1.0 for t in res.report["tuned"])


def test_training_labels_leave_outreach_reactions_out(world):
    # the default settings read the label's horizon without opens, clicks and redemptions; counting them
    # is a setting, and it can only turn churn labels into retained ones
    split = temporal_split(world, SETTINGS)
    default = make_labels(world, split.train, outcome_excludes=SETTINGS.outcome_excludes)
    counted = make_labels(world, split.train, outcome_excludes=())
    assert set(SETTINGS.outcome_excludes) == {"message_open", "message_click", "offer_redeemed"}
    assert ChurnSettings.from_dict({"outcome_excludes": []}).outcome_excludes == ()
    assert ChurnSettings.from_dict({"outcome_excludes": None}).outcome_excludes == ()
    assert (default["customer_id"].to_numpy() == counted["customer_id"].to_numpy()).all()
    assert (default["label"].to_numpy() >= counted["label"].to_numpy()).all()
    assert default["label"].sum() > counted["label"].sum()


def test_same_cutoff_cv_reference_follows_the_signal():
    # the in-period reference must see a real signal and must not invent one from noise
    from training.bench.churn_data import same_cutoff_cv

    rng = np.random.default_rng(11)
    F = pd.DataFrame({"recency": rng.exponential(60, 3000), "noise": rng.normal(size=3000)})
    y = (rng.random(3000) < 1 / (1 + np.exp(-(F["recency"].to_numpy() - 60) / 20))).astype(int)
    assert same_cutoff_cv(F, y)["auc"] > 0.8
    assert abs(same_cutoff_cv(F[["noise"]], y)["auc"] - 0.5) < 0.06


def test_report_puts_the_model_beside_its_ceiling_and_the_oracle(world, result):
    """On simulated data the report carries the ceiling: a regressor of the true churn probability from the
    same features, scored on the same test rows; no truth, no ceiling."""
    from training.churn.ceiling import ceiling_metrics, side_by_side

    r = result.report
    assert 0.5 < r["ceiling_auc"] <= r["oracle_auc"] + 0.02
    assert 0 < r["ceiling_r2_true_probability"] < 1 and 0 <= r["ceiling_ece"] < 0.1
    table = side_by_side(r)
    assert table["model"]["auc"] == r["auc"] and table["oracle"]["auc"] == r["oracle_auc"]
    assert table["model_minus_ceiling_auc"] == pytest.approx(r["auc"] - r["ceiling_auc"])
    keys = result.test_keys
    test_cutoff = pd.Timestamp(r["cutoffs"]["test"])
    assert ceiling_metrics(result.test_features, keys, world.without_truth(), test_cutoff,
                           np.random.default_rng(0)) == {}
    early = test_cutoff - pd.Timedelta(days=30)  # not the truth's cutoff: its probabilities do not apply
    assert ceiling_metrics(result.test_features, keys, world, early, np.random.default_rng(0)) == {}
