"""The observable ceiling diagnostic (training/policy/ceiling.py) on a small simulated world."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract.catalogue import load_catalogue
from features.decision.config import load_policy_config
from training.policy.ceiling import observable_ceiling


def test_truth_supervised_assignment_is_valued_against_the_oracle(make_world):
    tables = make_world(1500, 400, seed=3)
    cutoff = pd.Timestamp(tables.meta["manifest"]["cutoff"])
    out = observable_ceiling(
        tables, cutoff, load_catalogue(), load_policy_config(), np.random.default_rng(0), n_estimators=60
    )
    assert 0 < out["held_out"] < out["customers"] and out["oracle_value"] > 0
    for name in ("all_eligible", "active_only"):
        ratio = out[name]["captured_uplift_ratio"]
        # the oracle is the best assignment under the same limits, so nothing beats it
        assert ratio is not None and ratio <= 1 + 1e-9
    assert set(out["r2_true_value_by_action"]) == set(load_catalogue().ids[1:])
    with pytest.raises(ValueError, match="truth"):
        observable_ceiling(
            tables.without_truth(), cutoff, load_catalogue(), load_policy_config(), np.random.default_rng(0)
        )


def test_truth_values_for_campaign_objectives():
    """The visit / spend / margin objectives read the scenario's campaign outcomes against no contact."""
    from features.sources.simulation.scenarios import scenario_config
    from features.sources.simulation.world import simulate_world
    from training.policy.truth import truth_ev

    cat = load_catalogue()
    w = simulate_world(scenario_config("spend_offers", n_customers=400, seed=1), np.random.default_rng(1))
    customers = w.customers.iloc[::-1]  # rows follow the customers given, not the truth's order
    truth = w.truth.set_index("customer_id").loc[customers["customer_id"]]
    visit = truth_ev(w.truth, customers, cat, "visit")
    np.testing.assert_allclose(visit[:, 3], truth[f"p_visit__{cat.ids[3]}"] - truth["p_visit__no_contact"])
    spend = truth_ev(w.truth, customers, cat, "spend")
    margin = truth_ev(w.truth, customers, cat, "margin", margin=0.3)
    cost = np.array([a.cost for a in cat.actions])
    np.testing.assert_allclose(margin[:, 1:], 0.3 * spend[:, 1:] - cost[1:])
    assert (margin[:, 0] == 0).all() and (visit[:, 0] == 0).all()
    np.testing.assert_allclose(truth_ev(w.truth, customers, cat), truth[[f"ev__{a}" for a in cat.ids]])
    with pytest.raises(ValueError, match="objective_days"):
        truth_ev(w.truth.drop(columns=[c for c in w.truth if c.startswith("p_visit__")]), customers, cat, "visit")
    with pytest.raises(ValueError, match="objective 'clicks'"):
        truth_ev(w.truth, customers, cat, "clicks")
