"""The contract as one flat frame: tables -> frame -> tables keeps every record; rows are told apart clearly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.contract.flat import flat_columns, flat_frame, tables_from_flat
from features.contract.validate import validate_tables
from features.system import decision_frame


@pytest.fixture(scope="module")
def world(make_world):
    return make_world(300, 120, seed=5).without_truth()


def test_flat_frame_round_trip_keeps_every_record(world) -> None:
    flat = flat_frame(world)
    assert str(flat["ts"].dt.tz) == "UTC"
    back, _ = validate_tables(tables_from_flat(flat, ["region", "loyalty_member"]))
    assert back.customers["customer_id"].tolist() != [] and set(back.customers["customer_id"]) == set(
        world.customers["customer_id"].astype(str)
    )
    cus = back.customers.set_index("customer_id").sort_index()
    orig = world.customers.assign(customer_id=world.customers["customer_id"].astype(str)).set_index("customer_id")
    orig = orig.sort_index()
    pd.testing.assert_series_equal(cus["consent_email"], orig["consent_email"], check_dtype=False)
    pd.testing.assert_series_equal(cus["signup_ts"], orig["signup_ts"], check_dtype=False)
    assert (cus["region"] == orig["region"]).all()
    assert len(back.touchpoints) == len(world.touchpoints)
    assert len(back.outreach) == len(world.outreach)
    key = ["customer_id", "ts", "channel", "offer"]
    a = back.outreach[key].astype(str).sort_values(key).reset_index(drop=True)
    b = world.outreach[key].astype(str).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_customers_without_history_and_missing_columns() -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b"],
            "ts": ["2024-01-02T10:00:00Z", "2024-01-03T10:00:00Z", None],
            "channel": ["web", "web", None],
            "kind": ["visit", "purchase", ""],
            "direction": ["inbound", "inbound", None],
            "customer.region": [None, "north", "south"],  # the first value given wins
        }
    )
    tables, _ = validate_tables(tables_from_flat(frame, ["region", "plan"]))
    cus = tables.customers.set_index("customer_id")
    assert cus.loc["a", "region"] == "north" and cus.loc["b", "region"] == "south"
    assert not cus["consent_email"].any() and cus["plan"].isna().all()
    assert len(tables.touchpoints) == 2 and tables.outreach is None
    only_customers = tables_from_flat(pd.DataFrame({"customer_id": ["x"], "ts": [pd.NaT]}))
    assert len(validate_tables(only_customers)[0].touchpoints) == 0


def test_a_row_is_a_touchpoint_or_an_outreach_contact_not_both() -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "a"],
            "ts": pd.to_datetime(["2024-01-02", "2024-01-03"], utc=True),
            "channel": ["web", None],
            "kind": ["visit", "visit"],
            "direction": ["inbound", None],
            "outreach.channel": [None, "email"],
            "outreach.offer": [None, "none"],
            "outreach.holdout": [False, False],
        }
    )
    with pytest.raises(ValueError, match="row 1"):
        tables_from_flat(frame)
    frame.loc[1, "kind"] = None
    tables = tables_from_flat(frame)
    assert len(tables.touchpoints) == 1 and tables.outreach[["channel", "offer"]].iloc[0].tolist() == ["email", "none"]


def test_flat_columns_require_only_the_touchpoint_core() -> None:
    cols = {c.name: c for c in flat_columns({"region": "categorical", "vip": "bool"})}
    assert {n for n, c in cols.items() if c.required} == {"customer_id", "ts", "channel", "kind", "direction"}
    assert cols["customer.vip"].kind == "boolean" and cols["customer.region"].kind == "any"
    assert cols["amount"].kind == "double" and cols["ts"].kind == "any"


def test_decision_frame_renames_the_action_and_writes_lists_as_json() -> None:
    scored = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "churn_probability": [0.4, 0.1],
            "churn_reasons": [[{"feature": "recency", "contribution": np.float64(0.3)}], []],
            "nba_action": ["email:none", "no_contact"],
            "nba_channel": ["email", None],
            "nba_offer": ["none", None],
            "nba_expected_incremental_value": [1.5, 0.0],
            "nba_propensity": [1.0, 1.0],
            "alternatives": [[{"action": "sms:none", "expected_incremental_value": float("nan")}], []],
            "defense_target": [True, False],
            "defense_reasons": [["valuable"], []],
            "model_version": "m/1",
        }
    )
    out = decision_frame(scored)
    assert {"action", "channel", "offer", "expected_incremental_value", "propensity"} <= set(out.columns)
    assert not any(c.startswith("nba_") for c in out.columns)
    assert json.loads(out["churn_reasons"][0]) == [{"feature": "recency", "contribution": 0.3}]
    assert json.loads(out["alternatives"][0]) == [{"action": "sms:none", "expected_incremental_value": None}]
    assert json.loads(out["defense_reasons"][1]) == []
