"""The real server (``bentoml serve`` on a free loopback port) with a decision system trained on a small
simulated world: its answers equal batch scoring's for the same customers and cutoff."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pandas as pd
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, make_world):
    """A simulated world, its data folder and a decision system trained on it (no MLflow needed)."""
    from features.sources.io import write_tables
    from features.system import save_system
    from training.churn.split import ChurnSettings
    from training.churn.train import train_churn

    root = tmp_path_factory.mktemp("serving_world")
    tables = make_world(1200, 400, seed=11)
    result = train_churn(tables, ChurnSettings(max_train_cutoffs=3, seed=11), np.random.default_rng(11))
    model = save_system(result.system, root / "model")
    write_tables(tables.without_truth(), root / "data")
    return {"root": root, "model": model, "data": root / "data", "cutoff": tables.meta["manifest"]["cutoff"]}


def test_real_server_answers_equal_batch_scoring(world):
    from features.sources.io import read_tables
    from serving.batch import score_data
    from serving.decision_log import read_decision_log
    from serving.server import running_server
    from training.bench.serve import customers_payload

    root = world["root"]
    out = root / "batch.parquet"
    score_data(world["data"], out, cutoff=world["cutoff"], model_path=world["model"])
    batch = pd.read_parquet(out).set_index("customer_id")

    tables = read_tables(world["data"])
    ids = list(tables.customers["customer_id"].astype(str)[::97][:12])
    body = {"customers": customers_payload(tables, ids), "cutoff": world["cutoff"]}
    body["customers"].append({"customer_id": "brand-new", "consent_email": True})  # cold start
    log = root / "decisions.jsonl"
    settings = {"ENGAGE_MODEL_PATH": str(world["model"]), "ENGAGE_DECISION_LOG": str(log)}
    with running_server(settings=settings, log_path=root / "server.log") as url:
        assert url.startswith("http://127.0.0.1:")
        r = httpx.post(f"{url}/score", json=body, timeout=60)
        assert r.status_code == 200, r.text[:500]
        served = r.json()
        bad = httpx.post(
            f"{url}/score",
            json={
                "customers": [
                    {
                        "customer_id": "x",
                        "touchpoints": [
                            {"ts": "2024-01-01", "channel": "fax", "kind": "visit", "direction": "inbound"}
                        ],
                    }
                ]
            },
            timeout=30,
        )
        assert bad.status_code == 400 and "channel" in bad.text
        meta = httpx.post(f"{url}/metadata", json={}, timeout=30).json()
    assert meta["ready"] and meta["features"] and meta["model_version"] == served["model_version"]
    assert meta["runtime"]["timeout_timers_cancelled"] == 1.0  # the worker patched BentoML's middleware
    results = {x["customer_id"]: x for x in served["results"]}
    assert results["brand-new"]["cold_start"] and results["brand-new"]["churn_probability"] is not None
    for cid in ids:
        got, want = results[cid], batch.loc[cid]
        assert got["model_version"] == want["model_version"]
        assert got["churn_probability"] == pytest.approx(want["churn_probability"], rel=1e-9, abs=1e-12)
        assert got["engagement_index"] == pytest.approx(want["engagement_index"], rel=1e-9, abs=1e-12)
        assert got["store_ladder"] == want["store_ladder"]
        reasons = json.loads(want["churn_reasons"])
        assert [x["feature"] for x in got["churn_reasons"]] == [x["feature"] for x in reasons]
        assert [x["contribution"] for x in got["churn_reasons"]] == pytest.approx(
            [x["contribution"] for x in reasons], rel=1e-9
        )
        assert got["cold_start"] == bool(want["cold_start"])
    assert len(read_decision_log(log)) == len(body["customers"])
    server_log = (root / "server.log").read_text()
    for cid in ids:  # no customer ids in the server's log at its default (info) level
        assert cid not in server_log


def test_champion_from_the_mlflow_registry_and_packed_for_a_bento(world, tmp_path, monkeypatch):
    """The service's registry loader finds the champion; package_champion packs it for `bentoml build`."""
    from features.system import load_system_file
    from serving.engine import ScoringEngine
    from serving.loading import ModelSource, load_system, package_champion

    config = _register_champion(load_system_file(world["model"].parent), tmp_path)

    loaded, minfo = load_system(ModelSource("mlflow", str(config)))
    assert minfo.version == "engage-decision-system/1"
    assert minfo.source == "models:/engage-decision-system@champion"

    tag = package_champion(config)
    assert tag.startswith("engage-decision-system:")
    packed, pinfo = load_system(ModelSource("bento", tag))
    assert pinfo.version == minfo.version

    from features.sources.io import read_tables

    tables = read_tables(world["data"]).subset(["C000001", "C000002"])
    cutoff = pd.Timestamp(world["cutoff"])
    a = ScoringEngine(loaded, minfo).score_tables(tables, cutoff)
    b = ScoringEngine(packed, pinfo).score_tables(tables, cutoff)
    np.testing.assert_allclose(a["churn_probability"], b["churn_probability"])


def test_two_workers_share_the_load(world):
    """With two workers each listens on its own SO_REUSEPORT socket (serving/reuseport.py), so sixteen
    connections opened at once reach both workers (the shared socket gave nearly all to one), and both
    give the same answers."""
    import asyncio

    from features.sources.io import read_tables
    from serving.server import running_server
    from training.bench.serve import _Connection, customers_payload, worker_runtimes

    tables = read_tables(world["data"])
    ids = list(tables.customers["customer_id"].astype(str)[:16])
    bodies = [
        json.dumps({"customers": customers_payload(tables, [cid]), "cutoff": world["cutoff"]}).encode()
        for cid in ids
    ]
    settings = {"ENGAGE_MODEL_PATH": str(world["model"])}
    with running_server(workers=2, settings=settings, log_path=world["root"] / "server2.log") as url:
        host, port = url.removeprefix("http://").split(":")

        async def load() -> list[int]:
            conns = [_Connection(host, int(port), {}) for _ in range(16)]
            statuses = await asyncio.gather(*(c.post(b) for c, b in zip(conns, bodies, strict=True)))
            statuses += await asyncio.gather(*(c.post(b) for c, b in zip(conns, bodies, strict=True)))
            for c in conns:
                await c.close()
            return statuses

        assert set(asyncio.run(load())) == {200}
        runtime = worker_runtimes(url, 2)  # fresh connections reach either worker
        first = httpx.post(f"{url}/score", content=bodies[0], timeout=30, headers={"content-type": "application/json"})
    assert len(runtime) == 2
    assert all(m["own_listening_socket"] == 1.0 for m in runtime.values())
    assert all(m["score_requests"] > 0 for m in runtime.values()), runtime
    assert first.status_code == 200 and first.json()["results"][0]["customer_id"] == ids[0]


def _register_champion(system, folder):
    """``system`` registered as the champion of a SQLite registry in ``folder``; returns its mlflow.yaml."""
    import mlflow

    from training.registry import log_decision_system

    config = folder / "mlflow.yaml"
    config.write_text(
        "tracking_uri: sqlite:///mlflow.db\nartifact_location: artifacts\n"
        "registered_models: {system: engage-decision-system}\naliases: {champion: champion}\n"
    )
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    exp = mlflow.create_experiment("bento-test", artifact_location=(folder / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp):
        info = log_decision_system(system, registered_model_name="engage-decision-system")
    mlflow.MlflowClient(tracking_uri=uri).set_registered_model_alias(
        "engage-decision-system", "champion", str(info.registered_model_version)
    )
    return config


def _uv_installed() -> bool:
    import importlib.metadata

    try:
        importlib.metadata.version("uv")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _listening_hosts(port: int) -> set[str]:
    import psutil

    return {c.laddr.ip for c in psutil.net_connections(kind="tcp") if c.status == "LISTEN" and c.laddr.port == port}


def test_the_bento_builds_and_serves_from_its_folder(world, tmp_path):
    """``python -m serving.package --build`` packs the champion and builds the Bento under BENTOML_HOME (a temporary
    one here, and installing nothing), with uvloop and httptools and without the simulator, importers or training
    code, and a Dockerfile that listens on 0.0.0.0; ``bentoml serve`` of
    the Bento's folder (no project on the Python path, no registry) listens on loopback and scores; told to listen on
    0.0.0.0 as its container image is (BENTOML_HOST), it refuses to start without a token."""
    import os
    import subprocess
    import sys
    import time

    from features.sources.io import read_tables
    from features.system import load_system_file
    from serving.server import PROJECT_ROOT, free_port, stop
    from training.bench.serve import customers_payload

    config = _register_champion(load_system_file(world["model"].parent), tmp_path)
    home = tmp_path / "bentoml"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BENTOML_HOST")}
    env.update(BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="true", MLFLOW_DISABLE_TELEMETRY="true")
    had_uv = _uv_installed()
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "serving.package", "--config", str(config), "--build"],
                          cwd=PROJECT_ROOT, env={**env, "PYTHONPATH": str(PROJECT_ROOT)}, capture_output=True,
                          text=True, timeout=600)
    built_s = time.monotonic() - t0
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "built Bento engage:" in done.stdout and _uv_installed() == had_uv  # the build installed nothing
    (bento,) = [p for p in (home / "bentos" / "engage").iterdir() if p.is_dir()]
    src = bento / "src"
    assert (src / "serving" / "service.py").is_file() and (src / "features" / "system.py").is_file()
    for absent in ("features/sources/simulation", "features/sources/importers", "training", "tests"):
        assert not (src / absent).exists(), absent
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "uvloop" in requirements and "httptools" in requirements
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert "ARG BENTOML_HOST=0.0.0.0" in dockerfile and "ENV BENTOML_HOST=$BENTOML_HOST" in dockerfile
    assert "ENV ENGAGE_MODEL_SOURCE=$ENGAGE_MODEL_SOURCE" in dockerfile

    tables = read_tables(world["data"])
    body = {"customers": customers_payload(tables, list(tables.customers["customer_id"].astype(str)[:2])),
            "cutoff": world["cutoff"]}
    port = free_port()
    log = (tmp_path / "bento.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", str(bento), "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        from serving.server import wait_ready

        wait_ready(f"http://127.0.0.1:{port}", proc, 180)
        served = time.monotonic() - t0
        assert _listening_hosts(port) == {"127.0.0.1"}  # the service's own host: loopback
        r = httpx.post(f"http://127.0.0.1:{port}/score", json=body, timeout=60)
        assert r.status_code == 200, r.text[:500]
        assert r.json()["model_version"] == "engage-decision-system/1" and r.json()["n_customers"] == 2
        meta = httpx.post(f"http://127.0.0.1:{port}/metadata", json={}, timeout=10).json()
        assert meta["model_source"].startswith("bento:") and meta["model_versions"]["bento_model"]
    finally:
        stop(proc)
        log.close()
    print(f"\nBento packed and built in {built_s:.0f} s; first customer scored from its folder {served:.0f} s after "
          "packing began")

    port = free_port()
    log = (tmp_path / "bento-open.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", str(bento), "--port", str(port)],
                            cwd=tmp_path, env={**env, "BENTOML_HOST": "0.0.0.0"}, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "no API token is set" not in (tmp_path / "bento-open.log").read_text(errors="replace"):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.5)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).raise_for_status()
    finally:
        stop(proc)
        log.close()
