"""Objectives as configuration: their arithmetic, their defaults, the fallback decision and a system without churn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract.catalogue import catalogue_from_dict, catalogue_from_log
from features.decision.config import load_policy_config, policy_config_from_dict
from features.decision.objective import Objective
from features.decision.rule import FALLBACK, decide_columns

CAT = catalogue_from_dict(
    {
        "channels": {"email": {"cost": 0.5}},
        "offers": {"mens": {"cost": 1.0}, "womens": {}},
        "allowed": {"email": ["mens", "womens"]},
    }
)
COSTS = np.array([a.cost for a in CAT.actions])  # 0, 1.5, 0.5


def test_each_objective_values_an_action_in_its_own_units() -> None:
    mu0 = np.array([0.2, 10.0])
    mu = np.array([[0.2, 0.3, 0.1], [10.0, 14.0, 12.0]])
    value = np.array([100.0, 50.0])
    visit = Objective("visit").incremental_value(mu0, mu, value, COSTS)
    np.testing.assert_allclose(visit, [[0, 0.1, -0.1], [0, 4.0, 2.0]])  # the rise in the outcome, no cost
    margin = Objective("margin", margin=0.5).incremental_value(mu0, mu, value, COSTS)
    np.testing.assert_allclose(margin, [[0, 0.05 - 1.5, -0.05 - 0.5], [0, 2.0 - 1.5, 1.0 - 0.5]])
    # retention: value x churn reduction - cost (mu is a churn probability: a rise is a loss)
    retention = Objective("retention").incremental_value(mu0, mu, value, COSTS)
    np.testing.assert_allclose(retention, [[0, -10 - 1.5, 10 - 0.5], [0, -200 - 1.5, -100 - 0.5]])
    y, cost = np.array([1.0, 0.0]), np.array([1.5, 0.0])
    np.testing.assert_allclose(Objective("spend").reward(y, value, cost), y)
    np.testing.assert_allclose(Objective("margin", margin=0.5).reward(y, value, cost), [0.5 - 1.5, 0.0])
    np.testing.assert_allclose(Objective("retention").reward(y, value, cost), [-100 - 1.5, 0.0])


def test_campaign_objectives_drop_the_retention_defaults_unless_set() -> None:
    retention = load_policy_config()
    assert (retention.objective, retention.horizon_days, retention.max_days_inactive) == ("retention", 90, 90.0)
    assert retention.labels.active_within_days == 90
    visit = load_policy_config(overrides={"objective": "visit"})
    assert (visit.horizon_days, visit.max_days_inactive, visit.labels.active_within_days) == (14, None, None)
    kept = policy_config_from_dict(
        {"objective": "spend", "horizon_days": 30, "max_days_inactive": 60, "labels": {"active_within_days": 45}}
    )
    assert (kept.horizon_days, kept.max_days_inactive, kept.labels.active_within_days) == (30, 60, 45)


def test_command_line_values_win_over_the_policy_file(tmp_path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("objective: conversion\nhorizon_days: 30\n")
    assert (load_policy_config(path).objective, load_policy_config(path).horizon_days) == ("conversion", 30)
    flags = load_policy_config(path, overrides={"objective": "margin", "horizon_days": 7})
    assert (flags.objective, flags.horizon_days) == ("margin", 7)
    assert load_policy_config(path, overrides={"objective": None, "horizon_days": None}).objective == "conversion"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"objective": "revenue"}, "objective 'revenue' is unknown"),
        ({"horizon_days": 0}, "horizon_days must be"),
        ({"labels": {"active_within_days": -3}}, "active_within_days"),
        ({"labels": {"lookback": 3}}, "unknown key"),
    ],
)
def test_bad_objective_settings_are_named(spec, message) -> None:
    with pytest.raises(ValueError, match=message):
        policy_config_from_dict(spec)


def test_a_fallback_decides_one_action_for_every_eligible_customer_within_the_limits() -> None:
    n = 6
    ev = np.tile([0.0, -1.0, 2.0], (n, 1))  # the model prefers womens; the fallback is mens
    consent = {"email": np.array([True, True, True, True, True, False])}
    cfg = load_policy_config(overrides={"objective": "visit"}).with_limits(max_contacts=4)
    out = decide_columns(ev, consent, CAT, cfg, fixed_action=CAT.ids.index("email:mens"))
    contacted = out["nba_action"] == "email:mens"
    assert contacted.sum() == 4 and not contacted[5] and set(out["nba_action"][~contacted]) == {"no_contact"}
    assert set(out["decision_reason"][contacted]) == {FALLBACK}
    assert sorted(out["no_contact_reason"][~contacted]) == ["budget", "no_consent"]
    assert out["alternatives"][0][0]["action"] == "email:womens"  # runner-ups still come from the model
    # A binding budget (2 contacts of cost 1.5): the customers with the highest estimated value of it first.
    ev[:, 1] = [0.1, 0.5, 0.3, 0.9, 0.2, 0.8]
    budget = cfg.with_limits(max_contacts=None, budget=3.0)
    out = decide_columns(ev, consent, CAT, budget, fixed_action=CAT.ids.index("email:mens"))
    assert list(np.flatnonzero(out["nba_action"] == "email:mens")) == [1, 3]  # 5 has the most but no consent
    nobody = decide_columns(ev, consent, CAT, cfg, fixed_action=0)
    assert set(nobody["nba_action"]) == {"no_contact"}
    assert list(nobody["no_contact_reason"]) == [FALLBACK] * 5 + ["no_consent"]


def test_the_catalogue_of_a_log_names_its_actions_and_their_costs() -> None:
    log = pd.DataFrame(
        {
            "customer_id": list("abcdef"),
            "channel": ["email", "email", "email", "sms", "email", "email"],
            "offer": ["mens", "mens", None, "coupon", None, "womens"],
            "holdout": [False, False, False, False, True, True],
            "cost": [0.2, 0.4, 0.1, 0.3, 9.0, 9.0],
        }
    )
    cat = catalogue_from_log(log)
    # holdout rows are not actions taken; an empty offer is a value contact
    assert cat.ids == ["no_contact", "email:mens", "email:none", "sms:coupon"]
    assert [a.cost for a in cat.actions] == pytest.approx([0.0, 0.3, 0.1, 0.3])
    free = catalogue_from_log(log.drop(columns="cost"))
    assert {a.cost for a in free.actions} == {0.0}
    with pytest.raises(ValueError, match="only holdouts"):
        catalogue_from_log(log.assign(holdout=True))
