"""No customer data in the registry: a scan of everything a freshly trained system stored finds no customer id
and no identifying attribute value of the training data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.paths import quick_config, write_registry_config

pytestmark = pytest.mark.slow


def _with_identifying_attributes(world):
    """The world with random customer ids (no literal in any source file can match them by chance) and an
    e-mail address per customer: values that would identify a customer wherever they turned up."""
    rng = np.random.default_rng(5)
    ids = {cid: f"K{rng.integers(16**10):010x}" for cid in world.customers["customer_id"].astype(str)}

    def renamed(frame):
        return None if frame is None else frame.assign(customer_id=frame["customer_id"].astype(str).map(ids))

    customers = renamed(world.customers)
    customers["email"] = [f"{cid.lower()}.{rng.integers(10**8)}@mail.example" for cid in customers["customer_id"]]
    return world.with_(customers=customers, touchpoints=renamed(world.touchpoints), outreach=renamed(world.outreach),
                       truth=renamed(world.truth))


def test_a_freshly_trained_registry_holds_no_customer_data(make_world, tmp_path, monkeypatch):
    from features.sources.io import write_tables
    from training.churn.commands import train_churn_command
    from training.input_example import EXAMPLE_IDS
    from training.policy.commands import train_policy_command
    from training.policy.config import PolicyTrainConfig

    monkeypatch.chdir(tmp_path)
    world = _with_identifying_attributes(make_world(1000, 365, seed=3))
    write_tables(world, tmp_path / "data")
    write_registry_config(tmp_path / "mlflow.yaml", quick_config())
    train_churn_command(tmp_path / "data", tmp_path / "mlflow.yaml")
    policy = train_policy_command(
        tmp_path / "data", tmp_path / "mlflow.yaml",
        train=PolicyTrainConfig(max_campaigns=3, n_boot=20, outcome_estimators=30, effect_estimators=20,
                              report_customer_ids=True),
    )
    ids = set(world.customers["customer_id"].astype(str))
    # asked for, the report names customers; the copy MLflow keeps does not
    named = [ex["customer_id"] for ex in policy["scenarios"]["configured"]["defense_examples"]]
    assert named and set(named) <= ids

    secrets = [v.encode() for v in ids | set(world.customers["email"])]
    files = [p for p in (tmp_path / "work").rglob("*") if p.is_file()]
    assert len(files) > 20 and any(p.name == "mlflow.db" for p in files)
    leaks = {}
    for path in files:
        content = path.read_bytes()  # once per file: thousands of secrets are looked for in it
        leaks[str(path.relative_to(tmp_path))] = [s for s in secrets if s in content][:3]
    assert not {p: hits for p, hits in leaks.items() if hits}

    examples = [p for p in files if p.name == "input_example.json"]
    assert len(examples) == 2  # the churn model's and the decision system's
    for path in examples:
        example = json.loads(path.read_text())
        column = example["columns"].index("customer_id")
        assert {row[column] for row in example["data"]} == set(EXAMPLE_IDS)
