"""The policy layer on a user's own campaign data: objective and window flags, dropped decisions, the effect
model's choice and the catalogue from the log, on a small randomised e-mail campaign without opens."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.contract.catalogue import catalogue_from_log, load_catalogue
from features.contract.validate import validate_tables
from features.decision.config import policy_config_from_dict
from training.bench.campaign import CAMPAIGN_DAY, randomised_campaign
from training.cli import app
from training.policy.config import PolicyTrainConfig
from training.policy.inputs import choose_catalogue
from training.policy.outcomes import INACTIVE_BEFORE, SIGNED_UP_AFTER, WINDOW_INCOMPLETE
from training.policy.rows import training_rows
from training.policy.train import dropped_summary, effect_candidates

N = 3000


@pytest.fixture(scope="module")
def campaign():
    return randomised_campaign(N, np.random.default_rng(5))


def write_csv_folder(tables, folder) -> None:
    """The tables as the CSV files a CRM export gives."""
    folder.mkdir(parents=True)
    for name in ("customers", "touchpoints", "outreach"):
        getattr(tables, name).to_csv(folder / f"{name}.csv", index=False)


def run_cli(args: list[str]):
    return CliRunner().invoke(app, args)


def test_objective_and_horizon_flags_end_to_end_without_opens(campaign, tmp_path) -> None:
    data = tmp_path / "campaign"
    write_csv_folder(campaign.tables, data)
    # Today's retention defaults: a 90-day window that the two weeks of outcomes cannot fill (exit status 2).
    failed = run_cli(["evaluate", "policy", "--data", str(data)])
    assert failed.exit_code == 2 and "90-day outcome window" in failed.output and "--horizon-days" in failed.output
    # The policy file sets conversion over 30 days; the flags win.
    settings = tmp_path / "policy.yaml"
    settings.write_text("objective: conversion\nhorizon_days: 30\n")
    out = tmp_path / "visit.json"
    result = run_cli(["evaluate", "policy", "--data", str(data), "--policy-config", str(settings),
                      "--objective", "visit", "--horizon-days", "14", "--report", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.splitlines()[1].lstrip().startswith('"headline"')  # the verdict is the report's first line
    report = json.loads(text)
    assert (report["objective"], report["horizon_days"]) == ("visit", 14)
    assert report["policy_config"]["max_days_inactive"] is None  # retention's exclusion does not apply
    assert report["logged_decisions"] == N and report["dropped_decisions"] == {}  # everybody is labelled
    assert report["training_rows"] + report["heldout_rows"] == N
    chosen = report["chosen_effect_model"]
    assert set(chosen["candidates"]) == {"plugin", "dr"} and "reach" in chosen["not_candidates"]
    gains = {k: v["out_of_fold_dr_gain_per_row"] for k, v in chosen["candidates"].items()}
    assert chosen["name"] == max(gains, key=gains.get)
    assert report["catalogue"]["source"] == "log"
    assert set(report["catalogue"]["actions"]) == {"no_contact", "email:mens", "email:womens"}
    assert any("contact costs are 0" in w for w in report["warnings"])
    assert isinstance(report["beats_baselines"], bool)
    if not report["beats_baselines"]:
        assert report["fallback"] in ("best_single_action", "no_contact")
        assert report["headline"].startswith("NOT BETTER THAN ITS BASELINES")
    # Without the window flag the policy file's 30 days apply, and the two weeks of outcomes cannot fill them.
    longer = run_cli(["evaluate", "policy", "--data", str(data), "--policy-config", str(settings)])
    assert longer.exit_code == 2 and "30-day outcome window" in longer.output


def _with_changes(campaign):
    """The campaign with 40 customers signed up after it and a second campaign 10 days later."""
    t = campaign.tables
    customers = t.customers.copy()
    late = customers.index[:40]
    customers.loc[late, "signup_ts"] = CAMPAIGN_DAY + pd.Timedelta(days=1)
    again = t.outreach.head(500).assign(ts=CAMPAIGN_DAY + pd.Timedelta(days=10), campaign_id="follow_up")
    tables, _ = validate_tables(
        replace(t, customers=customers, outreach=pd.concat([t.outreach, again], ignore_index=True)), source="test"
    )
    return tables, set(customers.loc[late, "customer_id"])


def test_every_dropped_decision_is_counted_by_reason(campaign) -> None:
    tables, late = _with_changes(campaign)
    catalogue = catalogue_from_log(tables.outreach)
    until = CAMPAIGN_DAY + pd.Timedelta(days=14)
    retention = policy_config_from_dict({"objective": "retention", "horizon_days": 14})
    rows = training_rows(tables, [CAMPAIGN_DAY], catalogue, config=retention, until=until)
    # Independently: customers with no touch in the 90 days before the campaign (every touch here is active).
    tp = tables.touchpoints
    recent = tp[(tp["ts"] < CAMPAIGN_DAY) & (tp["ts"] >= CAMPAIGN_DAY - pd.Timedelta(days=90))]
    inactive = set(tables.customers["customer_id"]) - set(recent["customer_id"]) - late
    assert rows.dropped == {INACTIVE_BEFORE: len(inactive), SIGNED_UP_AFTER: 40, WINDOW_INCOMPLETE: 500}
    assert len(rows.rows) == N - len(inactive) - 40 and rows.logged == N + 500
    assert not set(rows.rows["customer_id"]) & (inactive | late)
    summary = dropped_summary(rows, progress=None)
    assert summary["dropped_decisions"] == rows.dropped and summary["logged_decisions"] == N + 500
    assert len(summary["warnings"]) == 1 and "left out of training" in summary["warnings"][0]  # > 10 % left out
    # A campaign objective labels every logged customer; only the late signups and the open window remain.
    visit = policy_config_from_dict({"objective": "visit", "horizon_days": 14})
    rows = training_rows(tables, [CAMPAIGN_DAY], catalogue, config=visit, until=until)
    assert rows.dropped == {SIGNED_UP_AFTER: 40, WINDOW_INCOMPLETE: 500}
    assert rows.rows["outcome"].isin([0.0, 1.0]).all()
    spend = training_rows(tables, [CAMPAIGN_DAY], catalogue, config=replace(visit, objective="spend"), until=until)
    assert spend.rows["outcome"].max() > 1 and (spend.rows["outcome"] >= 0).all()


def test_reach_is_a_candidate_only_when_opens_are_tracked(campaign, make_world) -> None:
    auto = PolicyTrainConfig()
    assert effect_candidates(campaign.tables, auto)[0] == ["plugin", "dr"]
    assert effect_candidates(make_world(300, 120, seed=2), auto)[0] == ["plugin", "dr", "reach"]
    with pytest.raises(ValueError, match="needs tracked opens"):
        effect_candidates(campaign.tables, PolicyTrainConfig(final="reach"))
    assert effect_candidates(campaign.tables, PolicyTrainConfig(final="dr")) == (["dr"], {})


def test_the_catalogue_comes_from_the_log_only_when_the_packaged_one_lacks_its_actions(campaign, make_world) -> None:
    from_log = choose_catalogue(None, campaign.tables, progress=None)
    assert from_log.source == "log" and len(from_log.warnings) == 2
    assert from_log.catalogue.ids == ["no_contact", "email:mens", "email:womens"]
    world = make_world(300, 120, seed=2)
    packaged = choose_catalogue(None, world, progress=None)
    assert packaged.source == "packaged" and packaged.catalogue.ids == load_catalogue().ids


def test_a_churn_champion_trained_on_other_data_is_refused_for_retention_and_skipped_for_campaigns(
    campaign, tmp_path, monkeypatch
) -> None:
    import mlflow
    from mlflow import MlflowClient

    from tests.paths import PROJECT, write_registry_config
    from training.policy.inputs import foundation
    from training.registry import experiment_id, load_config

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "campaign"
    write_csv_folder(campaign.tables, data)
    cfg_file = tmp_path / "mlflow.yaml"
    write_registry_config(cfg_file, (PROJECT / "mlflow.yaml").read_text())
    config = load_config(cfg_file)
    mlflow.set_tracking_uri(config.tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id(config, "churn")) as run:
        mlflow.set_tags({"data.sha256": "0" * 64, "data.dataset": "telco", "data.customers": "7043"})
    client = MlflowClient(tracking_uri=config.tracking_uri)
    client.create_registered_model("engage-churn")
    version = client.create_model_version("engage-churn", source=tmp_path.as_uri(), run_id=run.info.run_id)
    client.set_registered_model_alias("engage-churn", "champion", version.version)
    refused = run_cli(["train", "policy", "--data", str(data), "--config", str(cfg_file)])
    assert refused.exit_code == 2
    assert "engage-churn v1 was trained on other data: 'telco' (7043 customers)" in refused.output
    base = foundation(config, policy_config_from_dict({"objective": "visit"}), campaign.tables, str(data))
    assert base.churn_model is None and base.pipeline is None and "not used" in base.note


def test_each_objective_reads_its_outcome_from_touchpoint_kinds_in_the_window() -> None:
    from features.contract.schema import Tables
    from training.policy.outcomes import TouchArrays, outcomes_at

    s = CAMPAIGN_DAY
    day = pd.Timedelta(days=1)
    customers = pd.DataFrame({"customer_id": list("abcd"), "signup_ts": pd.NaT})
    touch = pd.DataFrame(
        [
            ("a", s + day, "page_view", "inbound", np.nan),
            ("b", s + 2 * day, "purchase", "inbound", 50.0),
            ("b", s + 3 * day, "return", "inbound", -10.0),
            ("c", s + day, "impression", "inbound", np.nan),  # passive: not a visit
            ("c", s + 20 * day, "visit", "inbound", np.nan),  # after the 14-day window
            ("d", s - day, "visit", "inbound", np.nan),  # before the decision
            ("d", s + day, "visit", "outbound", np.nan),  # not the customer's own visit
        ],
        columns=["customer_id", "ts", "kind", "direction", "amount"],
    )
    tables = Tables(customers=customers, touchpoints=touch.assign(channel="web"))
    arrays = TouchArrays.of(tables)
    expected = {
        "visit": [1, 1, 0, 0],
        "conversion": [0, 1, 0, 0],
        "spend": [0, 40, 0, 0],
        "margin": [0, 40, 0, 0],  # the outcome is spend; the margin applies in the reward
    }
    for objective, values in expected.items():
        config = policy_config_from_dict({"objective": objective, "horizon_days": 14})
        res = outcomes_at(arrays, s, config)
        np.testing.assert_allclose(res.outcome, values, err_msg=objective)
        np.testing.assert_allclose(res.spend_per_day, [0, 50 / 14, 0, 0])
    # A lookback leaves out customers without their own activity in it, and says why.
    config = policy_config_from_dict({"objective": "visit", "labels": {"active_within_days": 30}})
    res = outcomes_at(arrays, s + 4 * day, config)
    assert list(res.reason) == [None, None, INACTIVE_BEFORE, None] and np.isnan(res.outcome[2])
