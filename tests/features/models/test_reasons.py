"""Reason codes state the customer's own value; constant and all-missing features are dropped at fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.builders.dictionary import attribute_origins, feature_dictionary
from features.builders.pipeline import FeaturePipeline
from features.contract.schema import Tables
from features.contract.validate import validate_tables
from features.models.churn import ChurnModel, feature_labels_from

CUTOFF = pd.Timestamp("2024-01-01", tz="UTC")


def test_constant_and_all_missing_features_are_dropped_at_fit():
    rng = np.random.default_rng(0)
    n = 600
    x = rng.normal(size=n)
    F = pd.DataFrame({"x": x, "zero": 0.0, "empty": np.nan, "noise": rng.normal(size=n),
                      "sometimes": np.where(rng.random(n) < 0.5, 1.0, np.nan)})
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * x))).astype(int)
    model = ChurnModel(num_boost_round=30, calibration="none").fit(F, y)
    # a column with one value and missing values varies (missingness can carry signal)
    assert model.feature_names_ == ["x", "noise", "sometimes"] and model.dropped_features_ == ["zero", "empty"]
    assert list(model.contributions(F).columns) == ["x", "noise", "sometimes", "__base__"]
    # the full feature table, or one without the dropped columns, scores the same
    np.testing.assert_array_equal(model.predict_proba(F), model.predict_proba(F[model.feature_names_]))
    with pytest.raises(ValueError, match="all 2 features are constant or missing"):
        ChurnModel().fit(F[["zero", "empty"]], y)


@pytest.fixture(scope="module")
def fitted() -> tuple[ChurnModel, pd.DataFrame, pd.DataFrame]:
    """A churn model on attributes only (plan, region, a numeric with missing values) of customers without events."""
    rng = np.random.default_rng(1)
    n = 3000
    plan = rng.choice(["yes", "no"], n, p=[0.3, 0.7])
    region = rng.choice(["north", "south", "east, coast"], n)
    calls = np.where(rng.random(n) < 0.15, np.nan, rng.poisson(2, n).astype(float))
    customers = pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)], "signup_ts": pd.NaT, "consent_email": True,
        "consent_sms": False, "consent_push": False, "consent_call": False,
        "international_plan": plan, "region": region, "service_calls": calls,
    })
    touchpoints = pd.DataFrame(columns=["customer_id", "ts", "channel", "kind", "direction"])
    tables = validate_tables(Tables(customers=customers, touchpoints=touchpoints))[0]
    pipe = FeaturePipeline(n_jobs=1)
    F = pipe.fit_transform(tables, cutoff=CUTOFF)
    logit = -2 + 2.5 * (plan == "yes") + 0.6 * np.nan_to_num(calls, nan=4.0) + 0.5 * (region == "east, coast")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    model = ChurnModel(num_boost_round=200, calibration="none", seed=0)
    model.fit(F, y, feature_labels=feature_labels_from(feature_dictionary(pipe), list(F.columns)),
              attributes=attribute_origins(pipe))
    return model, F, customers.set_index("customer_id")


def test_attribute_reasons_state_the_customers_own_value(fitted):
    model, F, raw = fitted
    reasons = model.reason_codes(F, top=3)
    contrib = model.contributions(F)
    seen = set()
    for cid, row in zip(F.index, reasons, strict=True):
        for r in row:
            attribute = r["attribute"]
            assert attribute in ("international_plan", "region", "service_calls"), r  # no event feature is used
            seen.add(attribute)
            own = raw.loc[cid, attribute]
            # one reason per attribute: the contributions of all its columns, summed
            columns = [c for c in model.feature_names_ if c.startswith(f"attr_{attribute}")]
            assert r["contribution"] == pytest.approx(contrib.loc[cid, columns].sum())
            if attribute == "service_calls" and np.isnan(own):
                assert r["value"] is None and r["label"] == "service_calls is missing"
            elif attribute == "service_calls":
                assert r["value"] == own and r["label"] == f"service_calls = {own:g}"
            else:
                assert r["value"] == own and r["label"] == f"{attribute} = {own}"
                assert F.loc[cid, r["feature"]] == 1  # the column of the customer's own category
    assert seen == {"international_plan", "region", "service_calls"}
    on_plan = [r for cid, row in zip(F.index, reasons, strict=True) if raw.loc[cid, "international_plan"] == "yes"
               for r in row if r["attribute"] == "international_plan"]
    assert on_plan and {r["label"] for r in on_plan} == {"international_plan = yes"}


def test_behavioural_reasons_carry_the_value_and_older_models_keep_their_reasons(fitted):
    model, F, _ = fitted
    rng = np.random.default_rng(2)
    G = F.assign(visits=rng.poisson(3, len(F)).astype(float))
    y = (rng.random(len(G)) < 1 / (1 + np.exp(2 - G["visits"]))).astype(int)
    m = ChurnModel(num_boost_round=50, calibration="none").fit(G, y, feature_labels={"visits": "visits in 30 days"})
    codes = [r for row in m.reason_codes(G.head(300)) for r in row if r["feature"] == "visits"]
    assert codes and all(r["label"] == "visits in 30 days" and r["attribute"] is None for r in codes)
    values = G["visits"].head(300)
    assert {r["value"] for r in codes} <= set(values)
    # a model pickled before reasons carried values (no layout) gives exactly the reasons it gave then
    old = ChurnModel.__new__(ChurnModel)
    old.__dict__.update({k: v for k, v in model.__dict__.items() if k != "reasons_"})
    contrib = model.contributions(F.head(50)).drop(columns="__base__")
    for row, (_, c) in zip(old.reason_codes(F.head(50)), contrib.iterrows(), strict=True):
        assert all(list(r) == ["feature", "label", "contribution"] for r in row)
        top = c[c > 0].sort_values(ascending=False, kind="stable").head(3)
        assert [r["feature"] for r in row] == list(top.index)  # one reason per column, as before
        assert [r["contribution"] for r in row] == pytest.approx(list(top))
