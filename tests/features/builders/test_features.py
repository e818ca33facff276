"""Feature builders: estimator contract, point-in-time correctness, order and batch invariance."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
)

from features.builders.channels import ChannelBuilder
from features.builders.dictionary import feature_dictionary
from features.builders.engagement import EngagementBuilder
from features.builders.event_source import EventSource
from features.builders.intent import IntentBuilder
from features.builders.ladders import LadderBuilder
from features.builders.pipeline import FeaturePipeline, build_features
from features.builders.service_social import ServiceSocialBuilder
from features.builders.static import StaticAttributesBuilder
from features.builders.value import ValueBuilder
from features.contract.schema import OUTREACH_CHANNELS, Tables
from features.contract.validate import validate_tables

BUILDERS = [
    EngagementBuilder,
    ServiceSocialBuilder,
    IntentBuilder,
    LadderBuilder,
    ValueBuilder,
    ChannelBuilder,
    StaticAttributesBuilder,
    FeaturePipeline,
]

DECISION_COLUMNS = [
    "engagement_index",
    "days_since_last_active",
    "recency_days",
    "frequency",
    "monetary",
    "aov",
    "apf",
    "tenure_days",
    "price_sensitivity",
    "forward_value",
    "store_ladder",
    "social_ladder",
    "in_market_stage",
    "buy_intent_score",
    "high_engagement_potential",
    "contacts_7d",
    "contacts_30d",
    *[
        f"chan_{c}_{f}"
        for c in OUTREACH_CHANNELS
        for f in ("contacts", "open_rate", "click_rate", "response_rate", "days_since_response", "consent")
    ],
]


@pytest.fixture(scope="module")
def world(make_world) -> Tables:
    return make_world(300, 200, rng_seed=7).without_truth()


@pytest.fixture(scope="module")
def fitted(world: Tables, cutoff: str) -> FeaturePipeline:
    return FeaturePipeline().fit(world, cutoff=cutoff)


@pytest.fixture(scope="module")
def features(world: Tables, cutoff: str, fitted: FeaturePipeline) -> pd.DataFrame:
    return fitted.transform(world, cutoff=cutoff)


def _shuffled(tables: Tables, seed: int) -> Tables:
    rng = np.random.default_rng(seed)
    tp = tables.touchpoints.iloc[rng.permutation(len(tables.touchpoints))].reset_index(drop=True)
    out = tables.outreach.iloc[rng.permutation(len(tables.outreach))].reset_index(drop=True)
    return tables.with_(touchpoints=tp, outreach=out)


def assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    # Sums of the same numbers in another order may differ in the last bits only.
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=1e-12)


# ---- output shape -------------------------------------------------------------------------------------
def test_one_numeric_nan_free_row_per_customer(world: Tables, features: pd.DataFrame) -> None:
    assert list(features.index) == list(world.customers["customer_id"].astype(str))
    assert features.index.name == "customer_id"
    assert all(pd.api.types.is_numeric_dtype(t) for t in features.dtypes)
    assert np.isfinite(features.to_numpy(dtype=np.float64)).all()
    missing = [c for c in DECISION_COLUMNS if c not in features.columns]
    assert not missing, missing
    assert features["store_ladder"].dtype == np.int64 and features["store_ladder"].between(0, 3).all()
    assert features["social_ladder"].between(0, 3).all() and features["in_market_stage"].between(0, 3).all()
    assert set(features["high_engagement_potential"].unique()) <= {0, 1}
    assert features["engagement_index"].between(0, 100).all()
    assert features["buy_intent_score"].between(0, 1).all()


def test_customers_without_events_get_defaults(world: Tables, cutoff: str, fitted: FeaturePipeline) -> None:
    cus = world.customers.iloc[:3].copy()
    cus["customer_id"] = ["new1", "new2", "new3"]
    empty = Tables(customers=cus, touchpoints=world.touchpoints.iloc[:0].copy(), outreach=None)
    empty = validate_tables(empty)[0]
    F = fitted.transform(empty, cutoff=cutoff)
    assert list(F.columns) == list(fitted.get_feature_names_out())
    assert np.isfinite(F.to_numpy(dtype=np.float64)).all()
    assert (F["engagement_index"] == 0).all() and (F["frequency"] == 0).all()
    assert (F["days_since_last_active"] == fitted.families()["engagement"].recency_cap_days).all()
    assert (F["store_ladder"] == 0).all() and (F["contacts_30d"] == 0).all()


# ---- point in time ------------------------------------------------------------------------------------
def test_events_after_cutoff_change_nothing(
    world: Tables, cutoff: str, fitted: FeaturePipeline, features: pd.DataFrame
) -> None:
    cut = pd.Timestamp(cutoff)
    assert (world.touchpoints["ts"] >= cut).any(), "the simulated world should extend past the cutoff"
    before = world.with_(
        touchpoints=world.touchpoints[world.touchpoints["ts"] < cut].reset_index(drop=True),
        outreach=world.outreach[world.outreach["ts"] < cut].reset_index(drop=True),
    )
    assert_same(fitted.transform(before, cutoff=cutoff), features)
    # Append more activity after the cutoff (purchases, clicks, outreach), including exactly at the cutoff.
    rng = np.random.default_rng(1)
    extra = world.touchpoints.sample(500, random_state=2).copy()
    extra["ts"] = cut + pd.to_timedelta(rng.integers(0, 30 * 86400, len(extra)), unit="s")
    extra_out = world.outreach.sample(200, random_state=3).copy()
    extra_out["ts"] = cut + pd.to_timedelta(rng.integers(0, 30 * 86400, len(extra_out)), unit="s")
    more = world.with_(
        touchpoints=pd.concat([world.touchpoints, extra], ignore_index=True),
        outreach=pd.concat([world.outreach, extra_out], ignore_index=True),
    )
    more = validate_tables(more)[0]
    assert_same(fitted.transform(more, cutoff=cutoff), features)


def test_an_event_before_the_cutoff_does_count(
    world: Tables, cutoff: str, fitted: FeaturePipeline, features: pd.DataFrame
) -> None:
    # The converse of the test above, so it cannot pass by ignoring everything.
    row = world.touchpoints[world.touchpoints["kind"] == "purchase"].iloc[[0]].copy()
    row["ts"] = pd.Timestamp(cutoff) - pd.Timedelta(seconds=1)
    more = validate_tables(world.with_(touchpoints=pd.concat([world.touchpoints, row], ignore_index=True)))[0]
    F = fitted.transform(more, cutoff=cutoff)
    cid = str(row["customer_id"].iloc[0])
    assert F.loc[cid, "frequency"] == features.loc[cid, "frequency"] + 1
    assert F.loc[cid, "recency_days"] < 1e-4


def test_row_order_changes_nothing(world: Tables, cutoff: str, fitted: FeaturePipeline, features: pd.DataFrame) -> None:
    shuffled = _shuffled(world, 5)
    assert_same(fitted.transform(shuffled, cutoff=cutoff), features)  # builders sort an unsorted frame
    assert_same(fitted.transform(validate_tables(shuffled)[0], cutoff=cutoff), features)
    refit = FeaturePipeline().fit(shuffled, cutoff=cutoff)
    assert_same(refit.transform(world, cutoff=cutoff), features)


def test_one_customer_alone_equals_its_row_in_the_batch(
    world: Tables, cutoff: str, fitted: FeaturePipeline, features: pd.DataFrame
) -> None:
    counts = world.touchpoints["customer_id"].value_counts()
    for cid in [counts.index[0], counts.index[len(counts) // 2], counts.index[-1]]:
        alone = fitted.transform(world.subset([cid]), cutoff=cutoff)
        assert_same(alone, features.loc[[str(cid)]])


def test_blocks_and_threads_do_not_change_results(world: Tables, cutoff: str, features: pd.DataFrame) -> None:
    small = FeaturePipeline(n_jobs=2, block_events=2_000).fit(world, cutoff=cutoff)
    assert_same(small.transform(world, cutoff=cutoff), features)


def test_threaded_blocks_give_byte_identical_output(world: Tables, cutoff: str) -> None:
    expected = FeaturePipeline(n_jobs=1).fit_transform(world, cutoff=cutoff)  # one block, no threads
    threaded = FeaturePipeline(n_jobs=2, block_events=1_000)
    assert len(EventSource(world, cutoff).blocks(1_000)) > 4
    for out in (threaded.fit_transform(world, cutoff=cutoff), threaded.transform(world, cutoff=cutoff)):
        pd.testing.assert_index_equal(out.index, expected.index)
        pd.testing.assert_index_equal(out.columns, expected.columns)
        assert list(out.dtypes) == list(expected.dtypes)
        for c in expected.columns:
            assert out[c].to_numpy().tobytes() == expected[c].to_numpy().tobytes(), c


def test_mid_sized_inputs_are_shared_among_the_threads(world: Tables, cutoff: str, monkeypatch) -> None:
    # An input below one default block but with enough events per thread is cut for the threads; the output
    # stays byte-identical to one block on one thread.
    from features.builders import base

    events = len(EventSource(world, cutoff).cust_pos)
    monkeypatch.setattr(base, "MIN_THREADED_BLOCK_EVENTS", events // 4)
    seen: list[int] = []
    real_blocks = EventSource.blocks
    monkeypatch.setattr(EventSource, "blocks", lambda self, n: seen.append(n) or real_blocks(self, n))
    expected = FeaturePipeline(n_jobs=1).fit(world, cutoff=cutoff)
    one = expected.transform(world, cutoff=cutoff)
    assert seen[-1] == FeaturePipeline().block_events > events  # one thread: one default block
    two = FeaturePipeline(n_jobs=2).fit(world, cutoff=cutoff).transform(world, cutoff=cutoff)
    assert seen[-1] == -(-events // 2)  # two threads: two halves
    for c in one.columns:
        assert two[c].to_numpy().tobytes() == one[c].to_numpy().tobytes(), c


# ---- estimator contract -------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", BUILDERS, ids=lambda c: c.__name__)
def test_sklearn_init_contract(cls) -> None:
    check_no_attributes_set_in_init(cls.__name__, cls())
    check_parameters_default_constructible(cls.__name__, cls())
    est = cls()
    params = est.get_params()
    assert clone(est).get_params() == params
    changed = {k: v for k, v in params.items() if isinstance(v, float)}
    if changed:
        key = next(iter(changed))
        est.set_params(**{key: changed[key] * 2})
        assert est.get_params()[key] == changed[key] * 2
        assert clone(est).get_params()[key] == changed[key] * 2


@pytest.mark.parametrize("cls", BUILDERS, ids=lambda c: c.__name__)
def test_fit_transform_contract(cls, world: Tables, cutoff: str) -> None:
    est = cls()
    with pytest.raises(NotFittedError):
        est.transform(world, cutoff=cutoff)
    before = copy.deepcopy(world)
    params = copy.deepcopy(est.get_params())
    assert est.fit(world, cutoff=cutoff) is est
    out = est.transform(world, cutoff=cutoff)
    for name in ("customers", "touchpoints", "outreach"):
        pd.testing.assert_frame_equal(getattr(world, name), getattr(before, name))
    assert est.get_params().keys() == params.keys()
    learned = [k for k in vars(est) if k not in params]
    assert learned and all(k.endswith("_") for k in learned), learned
    assert list(out.columns) == list(est.get_feature_names_out())
    # Fixed columns: a few quiet customers (no purchase, no social, unseen categories) give the same ones.
    quiet = world.subset(world.customers["customer_id"].iloc[:2])
    assert list(est.transform(quiet, cutoff=cutoff).columns) == list(out.columns)
    assert_same(clone(est).fit(world, cutoff=cutoff).transform(world, cutoff=cutoff), out)


def test_fit_learns_from_the_training_population(world: Tables, cutoff: str) -> None:
    full = EngagementBuilder().fit(world, cutoff=cutoff)
    quiet_ids = world.touchpoints["customer_id"].value_counts().index[-100:]
    quiet = EngagementBuilder().fit(world.subset(quiet_ids), cutoff=cutoff)
    assert quiet.scale_ < full.scale_
    with pytest.raises(ValueError, match="kind_weights"):
        EngagementBuilder(kind_weights={"teleport": 1.0}).fit(world, cutoff=cutoff)
    slow = EngagementBuilder(half_life_days=300).fit(world, cutoff=cutoff).transform(world, cutoff=cutoff)
    fast = full.transform(world, cutoff=cutoff)
    assert (slow["engagement_raw"] >= fast["engagement_raw"]).all()
    assert (slow["engagement_raw"] > fast["engagement_raw"]).mean() > 0.5


@pytest.mark.filterwarnings("ignore:The inplace keyword")
def test_static_attributes_match_feature_engine(world: Tables, cutoff: str) -> None:
    cus = world.customers.copy()
    rng = np.random.default_rng(3)
    cus["income"] = np.where(rng.random(len(cus)) < 0.2, np.nan, rng.normal(50, 10, len(cus)))
    cus["tier"] = pd.Series(rng.choice(["gold", "silver", "bronze", "rare_one"], len(cus), p=[0.3, 0.3, 0.398, 0.002]))
    cus.loc[::7, "tier"] = None
    tables = world.with_(customers=cus)
    st = StaticAttributesBuilder(rare_tol=0.01).fit(tables, cutoff=cutoff)
    ours = st.transform(tables, cutoff=cutoff)
    fe = st.encoder_.transform(st._frame(cus, st.kinds_, pd.Timestamp(cutoff).value))
    for col in ours.columns:
        src = col.removeprefix(st.prefix)
        assert np.allclose(ours[col].to_numpy(), fe[src].to_numpy(dtype=np.float64)), col
    assert "attr_tier_rare_one" not in ours.columns and "attr_income_na" in ours.columns
    unseen = tables.subset(cus["customer_id"].iloc[:3])
    unseen.customers.loc[:, "tier"] = "platinum"
    out = st.transform(unseen, cutoff=cutoff)
    assert list(out.columns) == list(ours.columns)
    # An unseen category joins the rare group, like any category too rare to get its own column.
    tiers = out.filter(like="attr_tier_")
    assert (tiers["attr_tier_rare"] == 1).all() and (tiers.drop(columns="attr_tier_rare") == 0).all().all()


# ---- dictionary ----------------------------------------------------------------------------------------
def test_feature_dictionary_matches_the_columns(fitted: FeaturePipeline, features: pd.DataFrame) -> None:
    d = feature_dictionary(fitted)
    assert list(d.columns) == ["name", "family", "meaning", "seed_idea", "attribute", "category"]
    assert list(d["name"]) == list(features.columns)
    described = d[["name", "family", "meaning", "seed_idea"]]
    assert described.notna().all().all() and (d["meaning"].str.len() > 5).all()
    # attribute columns name their attribute (and a one-hot column its category); behavioural ones neither
    static = d["family"] == "static"
    assert d.loc[static, "attribute"].notna().all() and d.loc[~static, ["attribute", "category"]].isna().all().all()
    assert d["family"].nunique() == 8  # seven issue families + dynamics (features/builders/dynamics.py)
    generic = feature_dictionary()
    assert "attr_*" in set(generic["name"])
    assert set(generic["name"]) - {"attr_*"} <= set(d["name"])


def test_build_features_fits_when_no_pipeline(world: Tables, cutoff: str, features: pd.DataFrame) -> None:
    assert_same(build_features(world, cutoff), features)


def test_click_to_open_rate_pools_channels_and_old_builders_keep_their_layout(world: Tables, cutoff: str) -> None:
    b = ChannelBuilder().fit(world, cutoff=cutoff)
    F = b.transform(world, cutoff=cutoff)
    before = world.touchpoints[pd.to_datetime(world.touchpoints["ts"], utc=True) < pd.Timestamp(cutoff)]
    kinds = before.assign(customer_id=before["customer_id"].astype(str)).groupby(["customer_id", "kind"],
                                                                                 observed=True).size()
    opens = kinds.xs("message_open", level="kind").reindex(F.index, fill_value=0).to_numpy(float)
    clicks = kinds.xs("message_click", level="kind").reindex(F.index, fill_value=0).to_numpy(float)
    a, prior = b.prior_strength, b.click_to_open_rate_
    assert 0 < prior < 1
    expected = (np.minimum(clicks, opens) + a * prior) / (opens + a)
    np.testing.assert_allclose(F["click_to_open_rate"].to_numpy(), expected)
    # a builder pickled before these columns existed (no fitted CTOR prior) still returns its own columns
    old = ChannelBuilder().fit(world, cutoff=cutoff)
    del old.click_to_open_rate_, old.redeem_to_click_rate_
    old.feature_names_out_ = old.feature_names_out_[:-2]
    old.n_features_out_ -= 2
    out = old.transform(world, cutoff=cutoff)
    assert list(out.columns) == list(F.columns[:-2])
    assert_same(out, F.iloc[:, :-2])
