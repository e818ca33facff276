"""One small world for the engine tests: its flat data folder, a partitioned copy and a decision system trained
on it (no MLflow: a model folder the workers load), built once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.sources.io import read_tables
from features.sources.partition_writer import write_partitioned

PARTS = 4


@pytest.fixture(scope="session")
def engine_world(tmp_path_factory: pytest.TempPathFactory, make_world) -> dict:
    from features.sources.io import write_tables
    from features.system import save_system
    from training.churn.split import ChurnSettings
    from training.churn.train import train_churn

    root = tmp_path_factory.mktemp("engine_world")
    tables = make_world(600, 400, seed=3)
    write_tables(tables.without_truth(), root / "flat")
    write_partitioned(read_tables(root / "flat"), root / "parts", PARTS)
    result = train_churn(tables, ChurnSettings(max_train_cutoffs=2, seed=3), np.random.default_rng(3))
    model = save_system(result.system, root / "model")
    return {"root": root, "flat": root / "flat", "parts": root / "parts", "model": Path(model).parent,
            "system": result.system, "cutoff": pd.Timestamp(tables.meta["manifest"]["cutoff"])}


@pytest.fixture(scope="module")
def threads_client():
    """An in-process Dask cluster (two single-threaded workers): the engine's code path without process
    start-up; the real multi-process cluster is tests/training/engine/test_dask_cluster.py."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        yield client
