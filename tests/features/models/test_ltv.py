"""The customer-value model: point in time, its parts, fixed deciles, and its place in the policy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.builders.pipeline import FeaturePipeline
from features.contract.schema import Tables
from features.models.ltv import CustomerValueModel, PolicyValue
from training.value.evaluate import ValueSettings, value_at

FAST = ValueSettings(max_cutoffs=3, model=(("n_estimators", 40),))


def before(tables: Tables, cutoff: pd.Timestamp) -> Tables:
    """The tables with every touchpoint and outreach row at or after ``cutoff`` removed, and no truth."""
    t = tables.without_truth()
    return t.with_(touchpoints=t.touchpoints[t.touchpoints["ts"] < cutoff].reset_index(drop=True),
                   outreach=t.outreach[t.outreach["ts"] < cutoff].reset_index(drop=True))


def fitted_value(tables: Tables, cutoff: pd.Timestamp) -> tuple[CustomerValueModel, pd.DataFrame]:
    data = tables.without_truth()
    pipeline = FeaturePipeline(n_jobs=1).fit(data, cutoff=cutoff)
    F = pipeline.transform(data, cutoff=cutoff)
    return value_at(tables, cutoff, pipeline, FAST), F


@pytest.fixture(scope="module")
def world_and_cutoff(make_world):
    world = make_world(600, 300, seed=8)
    return world, pd.Timestamp(world.meta["manifest"]["cutoff"])


def test_future_events_do_not_change_the_value(world_and_cutoff) -> None:
    """Fitted and scored at a cutoff, the value model reads nothing at or after it: the world's own 90 days
    after the cutoff plus a large extra purchase by every customer change no prediction."""
    world, cutoff = world_and_cutoff
    past = before(world, cutoff)
    extra = past.touchpoints.groupby("customer_id", observed=True).head(1).copy()
    extra["ts"] = cutoff + pd.Timedelta(hours=1)
    extra["kind"], extra["direction"], extra["amount"] = "purchase", "inbound", 10_000.0
    future = world.without_truth()
    future = future.with_(touchpoints=pd.concat([future.touchpoints, extra], ignore_index=True))
    assert len(future.touchpoints) > len(past.touchpoints) + len(extra) // 2
    m_past, F_past = fitted_value(past, cutoff)
    m_future, F_future = fitted_value(future, cutoff)
    pd.testing.assert_frame_equal(F_past, F_future)
    np.testing.assert_array_equal(m_past.predict(F_past), m_future.predict(F_future))
    assert m_past.blend_weight == m_future.blend_weight
    assert m_past.bgnbd_.bgnbd_params_ == m_future.bgnbd_.bgnbd_params_


@pytest.fixture(scope="module")
def fitted(world_and_cutoff) -> tuple[CustomerValueModel, pd.DataFrame]:
    return fitted_value(*world_and_cutoff)


def test_parts_blend_and_deciles(fitted) -> None:
    model, F = fitted
    parts = model.component_spend(F)
    assert set(parts) == {"lgbm_tweedie", "bgnbd_gamma_gamma"}
    w = model.blend_weight
    want = model.margin * (w * parts["lgbm_tweedie"] + (1 - w) * parts["bgnbd_gamma_gamma"])
    np.testing.assert_allclose(model.predict(F), want)
    assert (model.predict(F) >= 0).all()
    # deciles against fixed edges: the same customer gets the same decile alone or in the whole base
    dec = model.decile(model.predict(F))
    assert dec.min() >= 1 and dec.max() <= 10
    one = F.iloc[[5]]
    assert model.decile(model.predict(one))[0] == dec[5]
    assert model.decile(np.array([0.0]))[0] == 1
    assert model.decile(np.array([1e12]))[0] == 10


def test_policy_value_scales_to_the_policy_horizon(fitted) -> None:
    model, F = fitted
    pv = PolicyValue(model, 730)
    np.testing.assert_allclose(pv.predict(F), model.predict(F) * 730 / model.horizon_days)
    assert pv.feature_names_ == model.feature_names_


def test_bad_spend_is_refused() -> None:
    X = pd.DataFrame({"frequency": [1.0, 2.0]})
    with pytest.raises(ValueError, match="negative or missing"):
        CustomerValueModel().fit(X, np.array([1.0, -2.0]), X)
    with pytest.raises(ValueError, match="decile edges"):
        CustomerValueModel().decile(np.array([1.0]))
