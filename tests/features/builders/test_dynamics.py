"""Activity-dynamics builder: contract, point-in-time correctness, batch invariance, sensible values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import (
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
)

from features.builders.dictionary import feature_dictionary
from features.builders.dynamics import DynamicsBuilder
from features.builders.loglinear import loglinear_rate
from features.builders.pipeline import FeaturePipeline
from features.contract.schema import Tables
from features.contract.validate import validate_tables


@pytest.fixture(scope="module")
def world(make_world) -> Tables:
    return make_world(400, 240, rng_seed=11).without_truth()


@pytest.fixture(scope="module")
def features(world: Tables, cutoff: str) -> pd.DataFrame:
    return DynamicsBuilder().fit_transform(world, cutoff=cutoff)


def assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=1e-12)


def test_contract_and_columns(world: Tables, features: pd.DataFrame) -> None:
    check_no_attributes_set_in_init("DynamicsBuilder", DynamicsBuilder())
    check_parameters_default_constructible("DynamicsBuilder", DynamicsBuilder())
    est = DynamicsBuilder(trend_days=200.0)
    assert clone(est).get_params() == est.get_params()
    names = [n for n, _ in DynamicsBuilder().describe()]
    assert list(features.columns) == names and len(set(names)) == len(names)
    assert list(features.index) == list(world.customers["customer_id"].astype(str))
    assert np.isfinite(features.to_numpy(dtype=np.float64)).all()
    with pytest.raises(ValueError, match="trend_days"):
        DynamicsBuilder(trend_days=0).fit(world, cutoff="2025-06-01")


def test_registered_in_pipeline_and_dictionary(world: Tables, cutoff: str, features: pd.DataFrame) -> None:
    pipe = FeaturePipeline()
    F = pipe.fit_transform(world, cutoff=cutoff)
    assert_same(F[list(features.columns)], features)
    d = feature_dictionary()
    rows = d[d["family"] == "dynamics"]
    assert set(rows["name"]) == set(features.columns) and rows["meaning"].str.len().gt(10).all()


def test_future_events_change_nothing(world: Tables, cutoff: str, features: pd.DataFrame) -> None:
    cut = pd.Timestamp(cutoff)
    assert (world.touchpoints["ts"] >= cut).any()
    before = world.with_(touchpoints=world.touchpoints[world.touchpoints["ts"] < cut].reset_index(drop=True))
    builder = DynamicsBuilder().fit(world, cutoff=cutoff)
    assert_same(builder.transform(before, cutoff=cutoff), features)
    extra = world.touchpoints.sample(300, random_state=2).copy()
    extra["ts"] = cut + pd.to_timedelta(np.random.default_rng(1).integers(0, 20 * 86400, len(extra)), unit="s")
    more = validate_tables(world.with_(touchpoints=pd.concat([world.touchpoints, extra], ignore_index=True)))[0]
    assert_same(builder.transform(more, cutoff=cutoff), features)


def test_an_event_just_before_the_cutoff_counts(world: Tables, cutoff: str, features: pd.DataFrame) -> None:
    row = world.touchpoints[world.touchpoints["kind"] == "visit"].iloc[[0]].copy()
    row["ts"] = pd.Timestamp(cutoff) - pd.Timedelta(hours=1)
    more = validate_tables(world.with_(touchpoints=pd.concat([world.touchpoints, row], ignore_index=True)))[0]
    F = DynamicsBuilder().fit_transform(more, cutoff=cutoff)
    cid = str(row["customer_id"].iloc[0])
    assert F.loc[cid, "dyn_active_days_7d"] == features.loc[cid, "dyn_active_days_7d"] + 1
    assert F.loc[cid, "dyn_days_since_own"] < 0.05


def test_one_customer_alone_equals_batch_and_blocks(world: Tables, cutoff: str, features: pd.DataFrame) -> None:
    builder = DynamicsBuilder().fit(world, cutoff=cutoff)
    counts = world.touchpoints["customer_id"].value_counts()
    for cid in [counts.index[0], counts.index[len(counts) // 2], counts.index[-1]]:
        assert_same(builder.transform(world.subset([cid]), cutoff=cutoff), features.loc[[str(cid)]])
    small = FeaturePipeline(n_jobs=2, block_events=2_000).fit(world, cutoff=cutoff)
    assert_same(small.transform(world, cutoff=cutoff)[list(features.columns)], features)


def test_drop_and_silence_are_detected(world: Tables, cutoff: str, features: pd.DataFrame) -> None:
    # Remove the last 60 days of activity of the most active customers: their drop and overdue must show.
    cut = pd.Timestamp(cutoff)
    top = features["dyn_active_days_365d"].nlargest(20).index
    tp = world.touchpoints
    silent = tp["customer_id"].astype(str).isin(top) & (tp["ts"] >= cut - pd.Timedelta(days=60))
    quiet = world.with_(touchpoints=tp[~silent].reset_index(drop=True))
    F = DynamicsBuilder().fit_transform(quiet, cutoff=cutoff)
    assert (F.loc[top, "dyn_active_days_60d"] == 0).all()
    assert (F.loc[top, "dyn_drop_60d"] < features.loc[top, "dyn_drop_60d"]).all()
    # the signed change statistic moves toward "drop" (it may still report an older, larger rise)
    assert (F.loc[top, "dyn_change_llr"] > features.loc[top, "dyn_change_llr"]).mean() >= 0.8
    assert (F.loc[top, "dyn_overdue"] > 1).all()
    assert (F.loc[top, "dyn_p_silent_90d"] > features.loc[top, "dyn_p_silent_90d"]).all()


def test_loglinear_rate_recovers_a_known_slope() -> None:
    rng = np.random.default_rng(3)
    for beta in (-2.0, 0.0, 1.5):
        # inverse-CDF draws of positions on [0, 1] under a density proportional to exp(beta x)
        u = rng.random(20_000)
        x = u if beta == 0 else np.log1p(u * np.expm1(beta)) / beta
        est = loglinear_rate(np.array([float(x.size)]), np.array([x.mean()]))[0]
        assert abs(est - beta) < 0.1


def test_loglinear_rate_grid_shortcut_equals_plain_bisection(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dyadic-grid start must end in exactly the same float as halving from [-15, 15] every time."""
    import features.builders.loglinear as dyn

    rng = np.random.default_rng(5)
    n = rng.integers(0, 400, 3000).astype(np.float64)
    mean_x = rng.random(3000)
    mean_x[:100] = 0.5  # flat rates: midpoints near 0 take the small-slope branch
    mean_x[100:200] = rng.choice([0.0, 1.0], 100)
    n[200:300] = 0.0
    fast = loglinear_rate(n, mean_x)
    # one customer at a time gives the same floats as the whole batch
    picks = rng.integers(0, 3000, 25)
    alone = [loglinear_rate(n[i : i + 1], mean_x[i : i + 1])[0] for i in picks]
    monkeypatch.setattr(dyn, "GRID_LEVELS", 0)
    plain = loglinear_rate(n, mean_x)
    np.testing.assert_array_equal(fast.view(np.int64), plain.view(np.int64))
    np.testing.assert_array_equal(np.array(alone).view(np.int64), plain[picks].view(np.int64))


@pytest.mark.parametrize("edges", [[7.0, 30.0, 90.0, 365.0], [7.5, 30.0, 90.25, 400.0]])
def test_window_counts_match_a_direct_count(edges: list[float]) -> None:
    """Whole-day edges take a lookup by day, others a binary search: both count ``age < edge`` exactly."""
    from features.builders.dynamics import _window_counts

    rng = np.random.default_rng(8)
    n = 50
    cust = np.sort(rng.integers(0, n, 4000)).astype(np.int32)
    age = rng.exponential(60.0, cust.size)
    age[:20] = np.repeat(edges, 5)[:20]  # ages exactly on an edge are not younger than it
    e = np.asarray(edges)
    got = _window_counts(cust, age, n, e)
    want = np.array([np.bincount(cust[age < x], minlength=n) for x in e])
    np.testing.assert_array_equal(got, want)
