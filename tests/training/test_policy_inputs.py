"""A folder without logged outreach cannot train a policy: a clear error before any work, in every path."""

from __future__ import annotations

import dataclasses

import pytest

from features.contract.catalogue import load_catalogue
from features.decision.config import load_policy_config
from training.policy.config import PolicyTrainConfig
from training.policy.inputs import require_outreach
from training.policy.train import train_and_evaluate


@pytest.mark.parametrize("outreach", ["missing", "empty"])
def test_no_outreach_is_named_before_training(make_world, outreach) -> None:
    world = make_world(300, 200, 1)
    tables = dataclasses.replace(world, outreach=None if outreach == "missing" else world.outreach.iloc[:0])
    with pytest.raises(ValueError, match="no logged outreach"):
        require_outreach(tables, "here")
    with pytest.raises(ValueError, match="policy training: no logged outreach"):
        train_and_evaluate(tables, load_catalogue(), load_policy_config(), PolicyTrainConfig())
    require_outreach(world, "here")  # a world with its log passes
