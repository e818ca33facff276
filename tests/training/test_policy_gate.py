"""The policy gate: a policy worse than its best baseline is neither chosen nor promoted; a tie keeps the champion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.paths import PROJECT, write_registry_config
from tests.training.test_policy_objectives import write_csv_folder
from training.bench.campaign import randomised_campaign
from training.policy.config import PolicyTrainConfig
from training.policy.gate import policy_gate


def est(value: float, half: float = 0.01) -> dict:
    return {"value": value, "low": value - half, "high": value + half}


def report(learned: float, best: float, none: float, half: float = 0.01, champion: dict | None = None) -> dict:
    """A policy report's off-policy section with these DR values (differences from them, same width)."""
    off = {
        "policies": {"learned": {"dr": est(learned)}, "best_single_action": {"dr": est(best)},
                     "no_contact": {"dr": est(none)}},
        "differences": {"best_single_action": est(learned - best, half), "no_contact": est(learned - none, half)},
        "best_single_action": "email:mens",
    }  # fmt: skip
    if champion is not None:
        off["champion"] = champion
    return {"objective": "visit", "off_policy": off}


def test_a_policy_worse_than_its_best_baseline_falls_back_to_it_and_is_not_promoted() -> None:
    gate = policy_gate(report(learned=0.106, best=0.184, none=0.100))
    assert not gate.beats_baselines and not gate.promote
    assert (gate.chosen, gate.fallback) == ("best_single_action", "best_single_action")
    assert gate.fallback_action == "email:mens"
    assert gate.headline.startswith("NOT BETTER THAN ITS BASELINES") and "email:mens" in gate.headline
    # Better than no contact but only level with the best single action: still not better than its baselines.
    level = policy_gate(report(learned=0.185, best=0.184, none=0.100))
    assert not level.beats_baselines and level.fallback == "best_single_action"
    # When every contact loses, the fallback is no contact.
    harmful = policy_gate(report(learned=-0.3, best=-0.2, none=0.0))
    assert (harmful.fallback, harmful.fallback_action) == ("no_contact", "no_contact")


def test_a_policy_that_beats_its_baselines_replaces_only_a_champion_it_beats() -> None:
    first = policy_gate(report(learned=0.25, best=0.184, none=0.1))
    assert first.beats_baselines and first.promote and first.chosen == "learned" and first.fallback is None
    tie = {"version": "engage-decision-system v3", "comparable": True, "learned_minus_champion": est(0.0, 0.02)}
    kept = policy_gate(report(learned=0.25, best=0.184, none=0.1, champion=tie))
    assert kept.beats_baselines and not kept.promote and "tie keeps the champion" in kept.reason
    better = {**tie, "learned_minus_champion": est(0.05, 0.02)}
    assert policy_gate(report(learned=0.25, best=0.184, none=0.1, champion=better)).promote
    other = {"version": "v1", "comparable": False, "reason": "it optimises retention, not visit"}
    assert policy_gate(report(learned=0.25, best=0.184, none=0.1, champion=other)).promote


@pytest.mark.slow
def test_train_policy_registers_a_losing_policy_with_its_fallback_and_never_promotes_it(tmp_path, monkeypatch):
    """A campaign objective needs no churn champion; the learned policy, level with e-mailing everybody the
    better offer, is registered with that fallback and not promoted; its scores name the logged actions."""
    from mlflow import MlflowClient

    from features.sources.io import read_tables
    from training.policy.commands import train_policy_command
    from training.registry import load_config, load_decision_system

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "campaign"
    write_csv_folder(randomised_campaign(2000, np.random.default_rng(11)).tables, data)
    cfg_file = tmp_path / "mlflow.yaml"
    write_registry_config(cfg_file, (PROJECT / "mlflow.yaml").read_text())
    config = load_config(cfg_file)
    train = PolicyTrainConfig(outcome_estimators=60, effect_estimators=30, n_boot=100, seed=1)
    rep = train_policy_command(data, cfg_file, tmp_path / "policy.json", objective="visit", train=train)
    assert rep["churn_model"].startswith("no churn champion") and rep["objective"] == "visit"
    assert not rep["beats_baselines"] and rep["fallback"] == "best_single_action"
    assert rep["mlflow"]["promoted"] is False and rep["mlflow"]["champion_version"] is None
    client = MlflowClient(tracking_uri=config.tracking_uri)
    name = config.registered_models["system"]
    version = client.get_model_version_by_alias(name, config.challenger)
    assert version.tags["promotion_decision"] == "rejected" and version.tags["policy_beats_baselines"] == "false"
    with pytest.raises(Exception, match="alias"):
        client.get_model_version_by_alias(name, config.champion)
    system = load_decision_system(f"models:/{name}/{version.version}")
    assert system.churn_model is None and system.policy.fallback_action == rep["fallback_action"]
    tables = read_tables(data)
    scores = system.score(tables, pd.Timestamp(rep["scenarios"]["configured"]["cutoff"]))
    assert set(scores["nba_channel"]) == {"email"} and set(scores["nba_offer"]) == {rep["fallback_action"][6:]}
    assert scores["no_contact_reason"].isna().all() and scores["churn_probability"].isna().all()
    assert not scores["defense_target"].any()
    # The batch path of the service (`engage score --model-uri`) serves a system without a churn model.
    from typer.testing import CliRunner

    from features.system import save_system
    from training.cli import app

    save_system(system, tmp_path / "system")
    out, folder = tmp_path / "scores.csv", str(tmp_path / "system")
    result = CliRunner().invoke(app, ["score", "--data", str(data), "--out", str(out), "--model-uri", folder])
    assert result.exit_code == 0, result.output
    served = pd.read_csv(out)
    assert len(served) == 2000 and set(served["nba_offer"]) == {rep["fallback_action"][6:]}
    assert served["churn_probability"].isna().all()
