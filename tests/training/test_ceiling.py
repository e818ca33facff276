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
