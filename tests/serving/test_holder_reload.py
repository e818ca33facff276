"""Reloading in one process (fast): the holder swaps a newer model in and keeps the old one when the new one fails
to load; the watcher reloads only when the source moved and backs off a version that failed; a sliced request is
scored by one model from its first slice to its last; the workers' reload signal; ``POST /admin/reload`` and the
``/readyz`` body in-process; the address rule a worker applies to its socket; the metrics' bulk histogram update."""

from __future__ import annotations

import os
import socket
import time

import numpy as np
import pandas as pd
import pytest

from serving.binding import check_exposure, exposure_problem
from serving.coalesce import CoalescingScorer
from serving.engine import ModelInfo, ScoringEngine
from serving.holder import ModelHolder
from serving.loading import ModelSource
from serving.reload import ReloadSignal, ReloadWatcher
from serving.requests import tables_from_request
from serving.responses import frame_to_results
from serving.schemas import ScoreRequest
from serving.settings import SettingsError, read_settings
from tests.serving.standin import CUTOFF, CountingSystem, customer, make_client, wait_ready, write_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _touch_later(path) -> None:
    """Give ``path`` a newer modification time (file systems with coarse clocks would keep the marker equal)."""
    later = time.time() + 5
    os.utime(path, (later, later))


def test_the_holder_swaps_a_new_model_in_and_keeps_the_old_when_loading_fails(tmp_path):
    model = write_model(tmp_path / "system.joblib")
    holder = ModelHolder(ModelSource("path", str(model)), freeze_heap=False)
    assert holder.reload().status == "not-ready"  # nothing loaded yet: the first load's retries do it
    assert holder.load()
    first = holder.engine
    model.write_bytes(b"garbage, not a pickle")
    failed = holder.reload()
    assert failed.status == "failed" and failed.error and failed.version == "counting-1"
    assert holder.engine is first and holder.ready and holder.reload_error == failed.error
    assert holder.reload_failures == 1 and holder.reloads == 0
    write_model(model)
    swapped = holder.reload()
    assert swapped.status == "swapped" and holder.engine is not first and holder.reload_error is None
    assert holder.reloads == 1


def test_the_watcher_reloads_only_when_the_source_moved_and_backs_off_a_failed_version(tmp_path):
    model = write_model(tmp_path / "system.joblib")
    holder = ModelHolder(ModelSource("path", str(model)), freeze_heap=False)
    watcher = ReloadWatcher(holder, period_s=1.0)
    assert watcher.check().status == "not-ready"
    assert holder.load()
    loads = []
    real_build = holder._build
    holder._build = lambda: (loads.append(1), real_build())[1]  # count the loads the watcher starts
    assert watcher.check().status == "unchanged" and loads == []  # same file: nothing loaded
    model.write_bytes(b"broken")
    _touch_later(model)
    assert watcher.check().status == "failed" and len(loads) == 1
    assert watcher.check().status == "failed" and len(loads) == 1  # backing off the same broken file
    assert watcher.check(forced=True).status == "failed" and len(loads) == 2  # /admin/reload tries at once
    write_model(model)
    _touch_later(model)
    assert watcher.check().status == "swapped" and len(loads) == 3  # a new file is tried at once
    assert holder.reload_error is None and watcher.check().status == "unchanged"


def test_a_request_is_scored_by_one_model_from_its_first_slice_to_its_last():
    """A model swapped in while a large request is being scored in slices serves the next request, not the rest of
    this one: every row of an answer comes from the same model."""
    old = ScoringEngine(CountingSystem(), ModelInfo("v1"))
    new = ScoringEngine(CountingSystem(), ModelInfo("v2"))
    current = {"engine": old}

    class Swapping(CountingSystem):
        def score(self, tables, cutoff):
            current["engine"] = new  # swapped in while the first slice is scored
            return super().score(tables, cutoff)

    old.system = Swapping()
    scorer = CoalescingScorer(lambda: current["engine"], slice_touchpoints=20, linger_s=0)
    customers = ScoreRequest.model_validate({"customers": [customer(f"c{i}", 5) for i in range(12)]}).customers
    cut = pd.Timestamp(CUTOFF)
    at, rows, engine = scorer.submit(customers, cut).result(30)
    assert at == cut and scorer.slices > 1 and engine is old and {r["model_version"] for r in rows} == {"v1"}
    assert rows == frame_to_results(old.score_tables(tables_from_request(customers), cut))
    _, rows, engine = scorer.submit(customers[:1], cut).result(30)
    assert engine is new and {r["model_version"] for r in rows} == {"v2"}


def test_the_reload_signal_reaches_the_other_workers_once(tmp_path):
    path = tmp_path / "server-1"
    a, b = ReloadSignal(path), ReloadSignal(path)
    assert not a.changed() and not b.changed()
    a.send()
    assert b.changed() and not b.changed()  # once
    assert not a.changed()  # its own stamp
    ReloadSignal(None).send()  # signalling off: nothing happens


def test_admin_reload_and_readiness_in_process(monkeypatch, tmp_path):
    model = write_model(tmp_path / "system.joblib")
    token = "s3cret-token-for-tests-0123456789"
    auth = {"authorization": f"Bearer {token}"}
    with make_client(monkeypatch, model, ENGAGE_RELOAD_S="0", ENGAGE_API_TOKEN=token) as client:
        wait_ready(client)
        version = "counting-1"
        assert client.get("/readyz").json() == {"ready": True, "model_version": version, "reload_error": None}
        assert client.post("/admin/reload").status_code == 401
        unchanged = client.post("/admin/reload", headers=auth)
        assert unchanged.status_code == 200 and unchanged.json()["status"] == "unchanged"
        model.write_bytes(b"broken")
        _touch_later(model)
        failed = client.post("/admin/reload", headers=auth)
        assert failed.status_code == 500 and failed.json()["status"] == "failed"
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["reload_error"] == failed.json()["error"]
        meta = client.post("/metadata", json={}, headers=auth).json()
        assert meta["reload_error"] == failed.json()["error"] and meta["runtime"]["reload_failures"] == 1
        assert client.head("/readyz").status_code == 200
        write_model(model)
        _touch_later(model)
        swapped = client.post("/admin/reload", headers=auth, content=b"")  # no body is an empty request
        assert swapped.status_code == 200 and swapped.json()["status"] == "swapped"
        assert client.get("/readyz").json()["reload_error"] is None


def test_readyz_without_a_model_is_503_with_the_reason(monkeypatch, tmp_path):
    with make_client(monkeypatch, tmp_path / "missing.joblib") as client:
        time.sleep(0.5)
        answer = client.get("/readyz")
        assert answer.status_code == 503 and answer.json()["error"] == "model not ready"


def test_the_reload_interval_setting():
    assert read_settings({}).reload_s == 30.0
    assert read_settings({"ENGAGE_RELOAD_S": "0"}).reload_s == 0.0
    with pytest.raises(SettingsError, match="ENGAGE_RELOAD_S"):
        read_settings({"ENGAGE_RELOAD_S": "-1"})


@pytest.mark.parametrize(("host", "allowed"), [("127.0.0.1", True), ("0.0.0.0", False)])
def test_a_worker_refuses_an_open_socket_without_a_token(host, allowed):
    with socket.socket() as sock:
        sock.bind((host, 0))
        sock.listen()
        problem = check_exposure(sock.fileno(), token=None, insecure=False)
        assert (problem is None) == allowed
        if not allowed:
            assert "0.0.0.0" in problem and "ENGAGE_API_TOKEN" in problem and "ENGAGE_INSECURE=1" in problem
        assert check_exposure(sock.fileno(), token="x" * 16, insecure=False) is None
        assert check_exposure(sock.fileno(), token=None, insecure=True) is None
    assert check_exposure(None, token=None, insecure=False) is None  # in-process: no socket to look at
    assert exposure_problem("localhost", token=None, insecure=False) is None


def test_many_values_land_in_the_histogram_buckets_as_one_by_one():
    import prometheus_client as prom

    from serving.metrics import CHURN_BUCKETS, observe_many

    registry = prom.CollectorRegistry()
    bulk = prom.Histogram("bulk", "b", buckets=CHURN_BUCKETS, registry=registry)
    single = prom.Histogram("single", "s", buckets=CHURN_BUCKETS, registry=registry)
    values = np.random.default_rng(3).random(500)
    values[:5] = [0.0, 0.05, 0.1, 1.0, 0.95]  # on the bounds
    observe_many(bulk, values)
    for v in values:
        single.observe(float(v))
    samples = {m.name: [(s.name.split("_", 1)[1], s.labels, s.value) for s in m.samples if "created" not in s.name]
               for m in registry.collect()}
    exact = [s for s in samples["bulk"] if s[0] != "sum"]
    assert exact == [s for s in samples["single"] if s[0] != "sum"] and len(exact) == len(CHURN_BUCKETS) + 2
    sums = [s[2] for m in ("bulk", "single") for s in samples[m] if s[0] == "sum"]
    assert sums[0] == pytest.approx(sums[1], rel=1e-12)  # summed in another order


def test_a_reload_asked_of_one_worker_reaches_the_others(tmp_path):
    """Two watchers (two workers) share the server's signal, neither checks on an interval: asking one to reload
    makes the other check too, and both swap the new model in."""
    model = write_model(tmp_path / "system.joblib")
    holders = [ModelHolder(ModelSource("path", str(model)), freeze_heap=False) for _ in range(2)]
    assert all(h.load() for h in holders)
    first = [h.engine for h in holders]
    watchers = [ReloadWatcher(h, period_s=0, signal=ReloadSignal(tmp_path / "server-1"), poll_s=0.05)
                for h in holders]
    for w in watchers:
        w.start()
    try:
        write_model(model)
        _touch_later(model)
        assert watchers[0].request().result(30).status == "swapped"
        deadline = time.monotonic() + 10
        while holders[1].engine is first[1]:
            assert time.monotonic() < deadline, "the other worker did not follow"
            time.sleep(0.05)
        assert holders[0].engine is not first[0] and holders[1].reloads == 1
    finally:
        for w in watchers:
            w.stop()
