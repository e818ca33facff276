"""MLflow: config, logging, registration, champion/challenger promotion and loading without a server."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.models.churn import ChurnModel
from features.system import DecisionSystem
from tests.paths import PROJECT, write_registry_config
from training.churn.split import ChurnSettings
from training.churn.tracking import log_churn_run, score_registered
from training.churn.train import train_churn
from training.registry import (
    Promotion,
    load_config,
    load_decision_system,
    log_decision_system,
    promotion_decision,
    register_and_promote,
)

SETTINGS = ChurnSettings(max_train_cutoffs=3)


def test_promotion_decision_rules():
    rules = Promotion(metric="auc", min_improvement=0.01, max_brier_increase=0.002, max_ece=0.05)
    champ = {"auc": 0.80, "brier": 0.10, "ece": 0.01}
    assert promotion_decision({"auc": 0.75, "brier": 0.09, "ece": 0.01}, champ, rules)[0] is False
    assert promotion_decision({"auc": 0.805, "brier": 0.09, "ece": 0.01}, champ, rules)[0] is False
    assert promotion_decision({"auc": 0.82, "brier": 0.11, "ece": 0.01}, champ, rules)[0] is False
    assert promotion_decision({"auc": 0.82, "brier": 0.10, "ece": 0.08}, champ, rules)[0] is False
    ok, why = promotion_decision({"auc": 0.82, "brier": 0.1005, "ece": 0.01}, champ, rules)
    assert ok and "0.8200" in why
    assert promotion_decision({"auc": 0.6, "brier": 0.2, "ece": 0.01}, None, rules)[0] is True


def test_config_resolves_sqlite_relative_to_the_file(tmp_path):
    cfg_file = tmp_path / "conf" / "mlflow.yaml"
    cfg_file.parent.mkdir()
    write_registry_config(cfg_file, (PROJECT / "mlflow.yaml").read_text())
    cfg = load_config(cfg_file)
    assert cfg.tracking_uri == f"sqlite:///{(tmp_path / 'conf' / 'work' / 'mlflow.db').resolve()}"
    assert cfg.champion == "champion" and cfg.challenger == "challenger"
    assert cfg.registered_models["churn"]
    assert load_config(cfg_file, tracking_uri="http://mlflow:5000").tracking_uri == "http://mlflow:5000"
    bad = tmp_path / "bad.yaml"
    bad.write_text("promotion:\n  min_auc: 0.1\n")
    with pytest.raises(ValueError, match="unknown keys"):
        load_config(bad)


@pytest.fixture(scope="module")
def trained(make_world):
    world = make_world(1000, 390, seed=8)
    return world, train_churn(world, SETTINGS, np.random.default_rng(1), dataset="registry-test")


def test_register_promote_and_load_champion_without_server(tmp_path, trained, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory
    world, result = trained
    cfg_file = tmp_path / "mlflow.yaml"
    write_registry_config(cfg_file, (PROJECT / "mlflow.yaml").read_text())
    config = load_config(cfg_file)
    first = log_churn_run(result, world, config, SETTINGS, dataset="registry-test")
    assert first["promoted"] and first["version"] == "1"
    assert (tmp_path / "work" / "mlflow.db").exists()

    name = config.registered_models["churn"]
    mlflow.set_tracking_uri(config.tracking_uri)
    system = load_decision_system(f"models:/{name}@champion")
    assert isinstance(system, DecisionSystem)
    test = pd.Timestamp(result.report["cutoffs"]["test"])
    fresh = system.score(world, test).set_index("customer_id")["churn_probability"]
    mine = result.system.score(world, test).set_index("customer_id")["churn_probability"]
    np.testing.assert_allclose(fresh.to_numpy(), mine.to_numpy())

    # the pyfunc interface scores a raw touchpoint log
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert pyfunc.metadata.signature is not None
    ids = world.customers["customer_id"].astype(str).head(3).tolist()
    tp = world.touchpoints[
        world.touchpoints["customer_id"].astype(str).isin(ids) & (world.touchpoints["ts"] < test)
    ].copy()
    for c in ("customer_id", "channel", "kind", "direction", "referrer"):
        tp[c] = tp[c].astype(str)
    tp["ts"] = tp["ts"].dt.tz_localize(None)
    cus = world.customers.set_index("customer_id").loc[ids].reset_index()
    cus["signup_ts"] = cus["signup_ts"].dt.tz_localize(None)
    frame = tp.merge(
        cus.rename(columns={c: f"customer.{c}" for c in cus.columns if c != "customer_id"}), on="customer_id"
    )
    keep = [c for c in pyfunc.metadata.get_input_schema().input_names() if c in frame.columns]
    out = pyfunc.predict(frame[keep], params={"cutoff": str(test)})
    # same data through score(): the pyfunc form carries touchpoints and customer attributes, not outreach
    sub = world.subset(ids)
    given = [c for c in keep if not c.startswith("customer.")]
    sub = sub.with_(outreach=None, touchpoints=sub.touchpoints[given])
    expect = result.system.score(sub, test).set_index("customer_id")["churn_probability"]
    np.testing.assert_allclose(
        out.set_index("customer_id")["churn_probability"].loc[ids].to_numpy(),
        expect.loc[ids].to_numpy(),
        rtol=1e-6,
    )

    # evaluating the champion on simulated data puts it beside its ceiling and the oracle, on the same rows
    from features.sources.io import write_tables
    from training.churn.commands import evaluate_churn_command

    write_tables(world, tmp_path / "data")
    evaluated = evaluate_churn_command(tmp_path / "data", cfg_file)
    assert evaluated["cutoff"] == str(test) and evaluated["auc"] > 0.5
    assert 0.5 < evaluated["ceiling_auc"] <= evaluated["oracle_auc"] + 0.02

    # a worse challenger (trained on shuffled labels) is registered but refused
    bad_model = ChurnModel(seed=0)
    F = result.test_features
    y = result.test_keys["label"].to_numpy()
    bad_model.fit(F, np.random.default_rng(0).permutation(y), F, np.random.default_rng(1).permutation(y))
    bad = DecisionSystem(result.system.pipeline, bad_model)
    with mlflow.start_run(
        experiment_id=mlflow.get_experiment_by_name(config.experiments["churn"]).experiment_id
    ):
        info = log_decision_system(bad, registered_model_name=name)
    bad_metrics = score_registered(
        f"models:/{name}/{info.registered_model_version}", world, result.test_keys, test
    )
    outcome = register_and_promote(
        config,
        info,
        challenger_metrics=bad_metrics,
        champion_metrics_fn=lambda uri: score_registered(uri, world, result.test_keys, test),
    )
    assert outcome["promoted"] is False
    client = MlflowClient(tracking_uri=config.tracking_uri)
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(name, "challenger").version) == "2"
    tags = client.get_model_version(name, "2").tags
    assert tags["promotion_decision"] == "rejected" and "champion" in tags["promotion_reason"]
    assert tags["compared_with_version"] == "1"

    run = client.get_run(first["run_id"])
    assert run.data.tags["data.sha256"] and run.data.metrics["auc"] > 0.5
    arts = {a.path for a in client.list_artifacts(first["run_id"], "evaluation")}
    assert {
        "evaluation/calibration_curve.png",
        "evaluation/gains_chart.png",
        "evaluation/feature_dictionary.csv",
    } <= arts
    assert not (tmp_path / "mlruns").exists()
