"""Policy training: train and evaluate on a small simulated world, register the system as a challenger."""

from __future__ import annotations

import json

import pandas as pd

from features.builders.pipeline import build_features
from features.contract.catalogue import load_catalogue
from features.contract.schema import OUTREACH_CHANNELS
from features.decision.config import load_policy_config
from tests.training.registered import register_churn_and_policy
from training.policy.ceiling import effect_value_decomposition
from training.policy.config import PolicyTrainConfig
from training.policy.train import train_and_evaluate

CAT = load_catalogue()


def test_train_and_evaluate_on_a_small_simulated_world(make_world) -> None:
    tables = make_world(800, 200, seed=3)
    cfg = load_policy_config()
    budget = cfg.with_limits(budget=30.0, per_channel={"call": 2})
    train = PolicyTrainConfig(max_campaigns=3, outcome_estimators=40, effect_estimators=30, n_boot=50, seed=1)
    model, report = train_and_evaluate(tables, CAT, cfg, train, scenarios={"configured": cfg, "budget": budget})
    for name in ("configured", "budget"):
        rep = report["scenarios"][name]
        assert rep["constraint_violations"] == {"consent": 0, "caps": 0, "limits": 0}
        truth = rep["truth"]
        assert truth["policy_value"] <= truth["oracle_value"] + 1e-9
        assert {"random", "top_churn_most_opened", "best_single_action"} <= set(truth["baselines"])
        assert "contains_true_value" in truth["ope_check"]
    assert report["scenarios"]["budget"]["limits"]["budget"]["used"] <= 30.0 + 1e-9
    assert next(iter(report)) == "headline" and report["objective"] == "retention" and report["horizon_days"] == 90
    # opens are tracked in the simulated world: the reach stage is a candidate beside plugin and dr
    assert set(report["chosen_effect_model"]["candidates"]) == {"plugin", "dr", "reach"}
    assert report["chosen_policy"] == ("learned" if report["beats_baselines"] else report["fallback"])
    off = report["off_policy"]["policies"]
    assert {"ips", "snips", "dr", "dr_incremental"} <= set(off["learned"])
    # The fitted policy decides from a feature frame alone (how DecisionSystem.score_features calls it).
    F = build_features(tables, pd.Timestamp(tables.meta["manifest"]["cutoff"]))
    out = model.decide(F.head(50), None)
    assert len(out) == 50 and out.index.tolist() == F.index[:50].astype(str).tolist()
    consent = F.head(50)[[f"chan_{c}_consent" for c in OUTREACH_CHANNELS]].to_numpy() > 0
    chan = out["nba_channel"].to_numpy()
    for j, c in enumerate(OUTREACH_CHANNELS):
        assert not ((chan == c) & ~consent[:, j]).any()
    # The defense targets' "valuable" bar is fixed at training time: a customer scored alone gets its batch flag.
    assert model.defense_min_value is not None
    batch = model.decide(F)
    for i in range(0, len(F), max(1, len(F) // 15)):
        alone = model.decide(F.iloc[[i]])
        assert bool(alone["defense_target"].iloc[0]) == bool(batch["defense_target"].iloc[i])
        assert list(alone["defense_reasons"].iloc[0]) == list(batch["defense_reasons"].iloc[i])
    # Which estimate limits the policy: the truth swapped in for the value, then for the effect.
    dec = effect_value_decomposition(model, tables, pd.Timestamp(tables.meta["manifest"]["cutoff"]), F)
    for key in ("captured_estimated", "captured_true_value_estimated_effect", "captured_estimated_value_true_effect"):
        assert dec[key] <= 1 + 1e-9
    assert set(dec["effect_by_action"]) == set(CAT.ids[1:]) and -1 <= dec["value_correlation"] <= 1


def test_policy_training_registers_a_challenger_version_with_its_uplift_curve(
    tmp_path, monkeypatch, make_world
) -> None:
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory
    done = register_churn_and_policy(tmp_path, make_world(800, 390, seed=4), "policy-registry-test",
                                     tmp_path / "policy.json")
    assert done.churn["promoted"]
    config, report = done.config, done.report
    name = config.registered_models["system"]
    client = MlflowClient(tracking_uri=config.tracking_uri)
    version = client.get_model_version_by_alias(name, config.challenger)
    assert str(version.version) == str(report["mlflow"]["version"])
    assert report["churn_model"].startswith("churn champion") and "(same data)" in report["churn_model"]
    assert report["mlflow"]["promoted"] == report["beats_baselines"]  # no system champion yet: the gate decides
    assert version.tags["policy_beats_baselines"] == str(report["beats_baselines"]).lower()
    arts = {a.path for a in client.list_artifacts(version.run_id)}
    assert {"uplift_curve.png", "uplift_curve.json", "policy_report.json"} <= arts
    curve = report["uplift_curve"]
    assert curve["share"][0] == 0.0 and curve["gain"][0] == 0.0 and len(curve["gain"]) == len(curve["share"])
    assert json.loads((tmp_path / "policy.json").read_text())["uplift_curve"]["rows"] == curve["rows"]
    assert not (tmp_path / "mlruns").exists()
    # the registered system carries the customer-value model and the personas (value.source ltv by default)
    from training.registry import load_decision_system

    assert report["value_source"] == "ltv" and report["by_persona"]
    system = load_decision_system(f"models:/{name}@{config.challenger}")
    world = make_world(800, 390, seed=4)
    scored = system.score(world.without_truth(), pd.Timestamp(world.meta["manifest"]["cutoff"]))
    assert {"customer_value", "value_decile", "persona"} <= set(scored.columns)
    assert set(scored["persona"]) <= set(system.personas.names_)


def test_the_tables_are_let_go_while_the_models_fit_and_read_again_to_decide(make_world, monkeypatch) -> None:
    import copy
    import gc
    import weakref

    import training.policy.train as train_module
    from training.policy.source import TablesSource

    world = make_world(800, 200, seed=3)
    alive: dict[str, bool] = {}
    handed: list[weakref.ref] = []

    def read():
        tables = copy.deepcopy(world)  # a fresh read each time, as from a folder
        handed.append(weakref.ref(tables.touchpoints))
        return tables

    fit = train_module.select_final

    def select_final(*args, **kwargs):
        gc.collect()
        alive["while fitting"] = handed[0]() is not None
        return fit(*args, **kwargs)

    monkeypatch.setattr(train_module, "select_final", select_final)
    source = TablesSource(read)
    cfg = load_policy_config()
    train = PolicyTrainConfig(max_campaigns=2, outcome_estimators=20, effect_estimators=10, n_boot=20, seed=1,
                              final="plugin")  # fmt: skip
    _, report = train_and_evaluate(source, CAT, cfg, train)
    assert alive == {"while fitting": False}
    assert source.reads == 2 and "configured" in report["scenarios"]
    # Tables handed over in memory are held: the same object throughout, never read.
    held = TablesSource.of(world)
    assert held.release() is False and held.get() is world and held.reads == 0
