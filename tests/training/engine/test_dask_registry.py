"""``engage score --engine dask`` with a registered model: the champion and a pinned version are downloaded once
for the workers, and the scores, defense list and model version equal ``engage score`` on the local engine."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _run(*args: str) -> dict:
    from training.cli import app

    result = CliRunner().invoke(app, [*args, "-q"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


def _by_customer(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("customer_id", kind="stable").reset_index(drop=True)


def test_registered_models_scored_on_dask_equal_engage_score(tmp_path, make_world, engine_world, threads_client,
                                                             monkeypatch) -> None:
    import numpy as np
    from mlflow import MlflowClient

    from features.sources.io import read_tables
    from tests.paths import PROJECT, write_registry_config
    from training.churn.split import ChurnSettings
    from training.churn.tracking import log_churn_run
    from training.churn.train import train_churn
    from training.registry import load_config

    config_file = tmp_path / "mlflow.yaml"
    write_registry_config(config_file, (PROJECT / "mlflow.yaml").read_text())
    registry = load_config(config_file)
    data = engine_world["flat"]
    settings = ChurnSettings(max_train_cutoffs=2, seed=3)
    world = make_world(600, 400, seed=3)
    churn = train_churn(world, settings, np.random.default_rng(3), dataset="dask-engine-test")
    logged = log_churn_run(churn, read_tables(data), registry, settings, dataset="dask-engine-test")
    name, version = registry.registered_models.get("churn", "engage-churn"), str(logged["version"])
    MlflowClient(tracking_uri=registry.tracking_uri).set_registered_model_alias(name, "champion", version)
    parts = engine_world["parts"]
    monkeypatch.chdir(tmp_path)  # registered versions are downloaded to ./work/models
    config = str(config_file)
    address = threads_client.scheduler.address
    for uri in ("champion", f"models:/{name}/{version}"):
        out = tmp_path / uri.replace("/", "_").replace(":", "")
        mine = _run("score", "--engine", "dask", "--scheduler", address, "--data", str(parts), "--config", config,
                    "--model-uri", uri, "--out", str(out / "scores"), "--defense-out", str(out / "defense.csv"))
        local = _run("score", "--data", str(data), "--config", config, "--model-uri", uri,
                     "--out", str(out / "local.parquet"), "--defense-out", str(out / "local_defense.csv"))
        assert mine["model_version"] == local["model_version"] == f"{name}/{version}"
        assert mine["defense_targets"] == local["defense_targets"]  # the merge with targets: test_dask_engine
        pd.testing.assert_frame_equal(_by_customer(pd.read_parquet(out / "scores")),
                                      _by_customer(pd.read_parquet(out / "local.parquet")), check_exact=True)
        pd.testing.assert_frame_equal(pd.read_csv(out / "defense.csv"), pd.read_csv(out / "local_defense.csv"),
                                      check_exact=False, rtol=0, atol=0)
    assert (tmp_path / "work" / "models" / name / version / "MLmodel").exists()
