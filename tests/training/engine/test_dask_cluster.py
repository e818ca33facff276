"""A real multi-process Dask cluster: ``dask scheduler`` and two ``dask worker`` processes on loopback, started
here as subprocesses; ``engage features`` and ``engage score`` run through ``--scheduler tcp://127.0.0.1:PORT``
and give what the local engine gives. The processes are always torn down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.sources.io import read_tables

pytestmark = pytest.mark.slow
DASK = Path(sys.executable).with_name("dask")
ROOT = Path(__file__).resolve().parents[3]


def _stop(processes: list[subprocess.Popen]) -> None:
    """End the processes started here (workers first, then the scheduler), each by its own handle."""
    for p in reversed(processes):
        if p.poll() is None:
            p.terminate()
    for p in processes:
        try:
            p.wait(timeout=3)  # a graceful close, else killed: nothing of theirs needs keeping
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory):
    """The address of a scheduler with two single-threaded worker processes, all on loopback."""
    if not DASK.exists():
        pytest.skip(f"no dask command beside {sys.executable}")
    from distributed import Client

    root = tmp_path_factory.mktemp("cluster")
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {**os.environ, "PYTHONPATH": path}
    info = root / "scheduler.json"
    processes: list[subprocess.Popen] = []
    logs = []
    try:
        log = open(root / "scheduler.log", "wb")  # noqa: SIM115 - closed below, after the process ends
        logs.append(log)
        processes.append(subprocess.Popen(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
             str(info)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root))
        deadline = time.monotonic() + 30
        while not info.exists() or not info.read_text().strip():
            if time.monotonic() > deadline or processes[0].poll() is not None:
                raise RuntimeError(f"the scheduler did not start: {(root / 'scheduler.log').read_text()[-2000:]}")
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        for i in range(2):
            log = open(root / f"worker{i}.log", "wb")  # noqa: SIM115
            logs.append(log)
            processes.append(subprocess.Popen(
                [str(DASK), "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name",
                 f"w{i}", "--memory-limit", "2GB"], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root))
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        _stop(processes)
        for log in logs:
            log.close()


def _cli(*args: str) -> dict:
    from training.cli import app

    result = CliRunner().invoke(app, [*args, "-q"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


def test_features_and_scores_on_a_multi_process_cluster(scheduler, engine_world, tmp_path) -> None:
    from distributed import Client

    from features.builders.pipeline import FeaturePipeline
    from serving.batch import score_data
    from training.engine.scoring import engine_loads

    parts, cutoff = engine_world["parts"], engine_world["cutoff"]
    features = _cli("features", "--engine", "dask", "--scheduler", scheduler, "--data", str(parts),
                    "--out", str(tmp_path / "features"))
    assert features["customers"] == 600 and features["engine"] == "dask"
    got = pd.read_parquet(tmp_path / "features").drop(columns="cutoff")
    want = FeaturePipeline().fit_transform(read_tables(parts).without_truth(), cutoff=cutoff).reset_index()
    pd.testing.assert_frame_equal(got.sort_values("customer_id").reset_index(drop=True),
                                  want.sort_values("customer_id").reset_index(drop=True), check_exact=True)

    model = str(engine_world["model"])
    scores = _cli("score", "--engine", "dask", "--scheduler", scheduler, "--data", str(parts), "--model-uri", model,
                  "--out", str(tmp_path / "scores"), "--defense-out", str(tmp_path / "defense.parquet"))
    score_data(engine_world["flat"], tmp_path / "local.parquet", cutoff=cutoff, model_path=model,
               defense_out=tmp_path / "local_defense.parquet")
    for mine, local in (("scores", "local.parquet"), ("defense.parquet", "local_defense.parquet")):
        a, b = pd.read_parquet(tmp_path / mine), pd.read_parquet(tmp_path / local)
        pd.testing.assert_frame_equal(a.sort_values("customer_id").reset_index(drop=True),
                                      b.sort_values("customer_id").reset_index(drop=True), check_exact=True)
    assert scores["customers"] == 600 and scores["partitions"] == 4 and scores["cutoff_source"] == "manifest"
    with Client(scheduler) as client:
        loads = client.run(engine_loads)
    # each worker process loaded the model at most once for its partitions (four partitions, two workers)
    assert set(loads.values()) <= {0, 1} and sum(loads.values()) >= 1, loads
