"""Promotion as compare-and-set under a lock; a tie keeps the champion; runs of dead processes end FAILED."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from features.contract.errors import RegistryBusyError
from tests.paths import PROJECT, write_registry_config
from training.churn.split import ChurnSettings
from training.churn.train import train_churn
from training.registry import Promotion, load_config, log_decision_system, promotion_decision, register_and_promote

METRICS = {"auc": 0.8, "brier": 0.10, "ece": 0.01}


def test_a_tie_keeps_the_champion():
    promote, reason = promotion_decision(METRICS, dict(METRICS), Promotion(min_improvement=0.0))
    assert not promote and "not above" in reason
    assert promotion_decision({**METRICS, "auc": 0.8001}, METRICS, Promotion(min_improvement=0.0))[0]


@pytest.fixture(scope="module")
def system(make_world):
    return train_churn(make_world(1000, 390, seed=8), ChurnSettings(max_train_cutoffs=2),
                       np.random.default_rng(1)).system


@pytest.fixture
def registry(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "mlflow.yaml"
    write_registry_config(cfg, (PROJECT / "mlflow.yaml").read_text() + "lock_timeout_seconds: 0.3\n")
    config = load_config(cfg)
    mlflow.set_tracking_uri(config.tracking_uri)
    return config


def _register(config, system):
    import mlflow

    from training.registry import experiment_id

    with mlflow.start_run(experiment_id=experiment_id(config, "churn")):
        return log_decision_system(system, registered_model_name="engage-churn")


def _aliases(client, version: str) -> list[str]:
    return list(client.get_model_version("engage-churn", version).aliases)


def test_a_champion_that_moved_meanwhile_is_measured_again_and_aliases_move_last(registry, system):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registry.tracking_uri)
    v1 = _register(registry, system)
    register_and_promote(registry, v1, challenger_metrics=METRICS, champion_metrics_fn=lambda uri: {})
    v2, v3 = _register(registry, system), _register(registry, system)
    measured = []

    def champion_metrics(uri: str) -> dict:
        measured.append(uri)
        assert _aliases(client, "3") == []  # not an alias on the challenger before its evaluation
        if len(measured) == 1:  # another process promotes v2 while v1 is being measured
            client.set_registered_model_alias("engage-churn", "champion", "2")
            return {**METRICS, "auc": 0.6}
        return {**METRICS, "auc": 0.9}

    out = register_and_promote(registry, v3, challenger_metrics=METRICS, champion_metrics_fn=champion_metrics)
    assert measured == ["models:/engage-churn/1", "models:/engage-churn/2"]
    assert not out["promoted"] and out["compared_with_version"] == "2"
    tags = client.get_model_version("engage-churn", "3").tags
    assert tags["compared_with_version"] == "2" and tags["promotion_decision"] == "rejected"
    assert tags["champion_test_auc"] == "0.900000"
    assert _aliases(client, "2") == ["champion"] and _aliases(client, "3") == ["challenger"]
    assert v2.registered_model_version == "2"


def test_a_promotion_lock_held_too_long_is_registry_busy_and_changes_nothing(registry, system):
    from mlflow import MlflowClient

    from training.locks import release, try_lock

    logged = _register(registry, system)
    fd = try_lock(Path(registry.lock_dir) / "promote-engage-churn.lock")
    try:
        with pytest.raises(RegistryBusyError, match=r"held the lock .* for more than 0.3 s"):
            register_and_promote(registry, logged, challenger_metrics=METRICS, champion_metrics_fn=lambda uri: {})
    finally:
        release(fd)
    mv = MlflowClient(tracking_uri=registry.tracking_uri).get_model_version("engage-churn", "1")
    assert "promotion_decision" not in mv.tags and not mv.aliases


def test_runs_of_ended_processes_are_failed_and_live_ones_kept(registry, system):
    from mlflow import MlflowClient

    from training.locks import held_for_life
    from training.registry import experiment_id
    from training.runs import NOT_EVALUATED, TOKEN_TAG, fail_abandoned_runs

    client = MlflowClient(tracking_uri=registry.tracking_uri)
    exp = experiment_id(registry, "churn")
    logged = _register(registry, system)
    dead = client.create_run(exp, tags={TOKEN_TAG: "dead"}).info.run_id
    alive = client.create_run(exp, tags={TOKEN_TAG: "alive"}).info.run_id
    legacy = client.create_run(exp).info.run_id  # no token, started just now: cannot tell, left alone
    source = client.get_model_version("engage-churn", logged.registered_model_version).source
    orphan = client.create_model_version("engage-churn", source, run_id=dead)
    with held_for_life(Path(registry.lock_dir) / "runs" / "alive.lock"):
        assert fail_abandoned_runs(registry) == [dead]
    assert client.get_run(dead).info.status == "FAILED"
    assert "killed" in client.get_run(dead).data.tags["engage.failure"]
    assert client.get_run(alive).info.status == client.get_run(legacy).info.status == "RUNNING"
    assert client.get_model_version("engage-churn", orphan.version).tags["promotion_decision"] == NOT_EVALUATED
    assert fail_abandoned_runs(registry) == [alive]  # its process (this lock's holder) has ended now
