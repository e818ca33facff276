"""Customer attributes with any characters in their names and values become safe, unique, stable feature names."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from features.builders.dictionary import attribute_origins, feature_dictionary
from features.builders.names import safe_part, unique_names
from features.builders.pipeline import FeaturePipeline
from features.builders.static import StaticAttributesBuilder
from features.contract.schema import Tables
from features.contract.validate import validate_tables
from features.models.churn import ChurnModel

SAFE = re.compile(r"^[A-Za-z0-9_]+$")
CUTOFF = pd.Timestamp("2024-01-01", tz="UTC")
HOSTILE = ["7) $1,000 +", "7) $1,000 -", 'a "quoted" {value}: [x]', "Zürich", "東京", "大阪", "", "plain_ok"]


def test_name_parts_are_safe_readable_and_keep_safe_text():
    assert safe_part("7) $1,000 +") == "7_1_000"
    assert safe_part("Bank transfer (automatic)") == "Bank_transfer_automatic"
    assert safe_part("Zürich") == "Zurich"
    assert safe_part("region_east") == "region_east" and safe_part(3) == "3"
    # nothing readable left: a digest of the text, so different values stay apart
    assert SAFE.match(safe_part("東京")) and safe_part("東京") != safe_part("大阪") != safe_part("")
    assert unique_names(["a", "b", "a", "a_2", "a"]) == ["a", "b", "a_3", "a_2", "a_4"]


def hostile_tables(n: int = 400, seed: int = 0) -> Tables:
    rng = np.random.default_rng(seed)
    customers = pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)], "signup_ts": pd.NaT,
        "consent_email": True, "consent_sms": False, "consent_push": False, "consent_call": False,
        "income, bracket": rng.choice(HOSTILE, n),
        "income bracket": rng.choice(["low", "high"], n),  # the same name once made safe
        "plan": rng.choice(["yes", "no"], n),
        "calls (90d)": np.where(rng.random(n) < 0.1, np.nan, rng.poisson(2, n).astype(float)),
    })
    touchpoints = pd.DataFrame(columns=["customer_id", "ts", "channel", "kind", "direction"])
    return validate_tables(Tables(customers=customers, touchpoints=touchpoints))[0]


@pytest.mark.filterwarnings("ignore:The inplace keyword")
def test_hostile_values_become_safe_unique_stable_names_with_the_originals_in_the_dictionary():
    tables = hostile_tables()
    pipe = FeaturePipeline(n_jobs=1)
    F = pipe.fit_transform(tables, cutoff=CUTOFF)
    static = [c for c in F.columns if c.startswith("attr_")]
    assert all(SAFE.match(c) for c in F.columns) and len(set(F.columns)) == F.shape[1]
    assert "attr_income_bracket_7_1_000" in static and "attr_income_bracket_7_1_000_2" in static
    assert "attr_income_bracket_2_low" in static  # the second attribute named "income bracket" once safe
    assert "attr_calls_90d" in static and "attr_calls_90d_na" in static
    # the dictionary keeps each column's attribute and category exactly as in the data
    d = feature_dictionary(pipe).set_index("name")
    originals = d.loc[static].dropna(subset=["category"])
    assert set(originals.loc[originals["attribute"] == "income, bracket", "category"]) == set(HOSTILE)
    assert d.loc["attr_calls_90d", "attribute"] == "calls (90d)"
    # each one-hot column is 1 exactly for the customers holding its original value
    raw = tables.customers.set_index("customer_id")
    for name, (attribute, role, value) in attribute_origins(pipe).items():
        if role == "category":
            np.testing.assert_array_equal(F[name].to_numpy() == 1, (raw[attribute] == value).to_numpy(), name)
    # the names are fixed at fit: another set of customers gets the same columns
    other = hostile_tables(50, seed=1)
    assert list(pipe.transform(other, cutoff=CUTOFF).columns) == list(F.columns)
    # and LightGBM, which refuses JSON special characters in feature names, trains on them
    y = (F["attr_income_bracket_7_1_000"].to_numpy() + np.random.default_rng(0).random(len(F)) > 0.8).astype(int)
    model = ChurnModel(num_boost_round=20, calibration="none").fit(F, y)
    assert set(model.feature_names_) <= set(static)


def test_a_builder_pickled_before_names_were_made_safe_keeps_its_names():
    tables = hostile_tables()
    b = StaticAttributesBuilder().fit(tables, cutoff=CUTOFF)
    old = b.__class__.__new__(b.__class__)
    old.__dict__.update({k: v for k, v in b.__dict__.items() if k != "origins_"})
    legacy = [f"attr_{c}_{v}" if role == "category" else f"attr_{c}" + ("_na" if role == "missing" else "")
              for c, role, v in b.origins().values()]
    old.feature_names_out_ = np.array(legacy, dtype=object)
    assert list(old.origins()) == legacy and [m for _, m in old.describe()] == [m for _, m in b.describe()]
    assert list(old.transform(tables, cutoff=CUTOFF).columns) == legacy
