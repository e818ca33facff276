"""The decision log's rotation: by size and by UTC period, with retention, safe with several writer processes, and
read back whole in order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving.decision_log import DecisionLog, Rotation, read_decision_log, rotated_files
from serving.settings import SettingsError, read_rotation
from tests.serving.standin import CUTOFF, customer, make_client, wait_ready, write_model


def _results(start: int, n: int) -> list[dict]:
    return [{"customer_id": f"c{i:05d}", "model_version": "v1", "churn_probability": 0.5,
             "next_best_action": {"action": "no_contact", "propensity": 1.0}} for i in range(start, start + n)]


def test_rotates_by_size_and_keeps_the_newest_files(tmp_path):
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(path, Rotation(max_bytes=3_000, every="none", keep=3))
    for k in range(40):
        log.write(_results(5 * k, 5), cutoff=CUTOFF, source="score")
    rotated = rotated_files(path)
    assert len(rotated) == 3  # retention: older rotated files were deleted
    assert all(f.stat().st_size <= 3_000 for f in [*rotated, path])
    ids = [r["customer_id"] for r in read_decision_log(path)]
    assert ids == sorted(ids) and ids[-1] == "c00199"  # the newest decisions, oldest first, none twice
    assert len(ids) == len(set(ids))
    assert [r["customer_id"] for r in read_decision_log(path, rotated=False)][-1] == "c00199"


def test_rotates_when_a_new_utc_day_starts(tmp_path):
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(path, Rotation(max_bytes=None, every="daily", keep=0))
    log.write(_results(0, 2), cutoff=CUTOFF, source="score")
    log.write(_results(2, 2), cutoff=CUTOFF, source="score")
    assert rotated_files(path) == []  # same day: one file
    yesterday = time.time() - 86_400
    os.utime(path, (yesterday, yesterday))
    log.write(_results(4, 2), cutoff=CUTOFF, source="score")
    (old,) = rotated_files(path)
    assert [r["customer_id"] for r in read_decision_log(old, rotated=False)] == ["c00000", "c00001", "c00002", "c00003"]
    assert [r["customer_id"] for r in read_decision_log(path, rotated=False)] == ["c00004", "c00005"]
    hourly = Rotation(every="hourly")
    assert hourly.period(3_600 * 10) != hourly.period(3_600 * 11)


WRITER = """
import sys
from serving.decision_log import DecisionLog, Rotation
log = DecisionLog(sys.argv[1], Rotation(max_bytes=4_000, every="none", keep=0))
for k in range(150):
    log.write([{"customer_id": f"{sys.argv[2]}-{k:04d}-{j}"} for j in range(3)], cutoff="c", source="score")
"""


def test_several_processes_share_one_rotating_log_without_losing_or_mixing_lines(tmp_path):
    path = tmp_path / "decisions.jsonl"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name], env=env) for name in ("a", "b", "c")]
    assert [p.wait(120) for p in procs] == [0, 0, 0]
    files = [*rotated_files(path), path]
    assert len(files) > 10
    lines = [line for f in files for line in f.read_text().splitlines()]
    records = [json.loads(line) for line in lines]  # every line whole: writes never interleave
    ids = [r["customer_id"] for r in records]
    assert len(ids) == len(set(ids)) == 3 * 150 * 3
    for name in ("a", "b", "c"):
        mine = [i for i in ids if i.startswith(f"{name}-")]
        assert mine == sorted(mine)  # each writer's decisions in its order across the rotated files
    assert all(f.stat().st_size <= 4_000 for f in files)


def test_rotation_settings_from_the_environment():
    rot = read_rotation({"ENGAGE_DECISION_LOG_MAX_MB": "0.5", "ENGAGE_DECISION_LOG_ROTATE": "hourly",
                         "ENGAGE_DECISION_LOG_KEEP": "7"})
    assert rot == Rotation(max_bytes=2**19, every="hourly", keep=7)
    assert read_rotation({"ENGAGE_DECISION_LOG_MAX_MB": "0"}).max_bytes is None
    assert read_rotation({}) == Rotation()
    for env, words in (({"ENGAGE_DECISION_LOG_ROTATE": "weekly"}, "ENGAGE_DECISION_LOG_ROTATE"),
                       ({"ENGAGE_DECISION_LOG_MAX_MB": "lots"}, "ENGAGE_DECISION_LOG_MAX_MB"),
                       ({"ENGAGE_DECISION_LOG_KEEP": "-1"}, "ENGAGE_DECISION_LOG_KEEP")):
        with pytest.raises(SettingsError, match=words):
            read_rotation(env)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_the_service_rotates_its_decision_log(monkeypatch, tmp_path):
    path = tmp_path / "log" / "decisions.jsonl"
    model = write_model(tmp_path / "system.joblib")
    env = {"ENGAGE_DECISION_LOG": str(path), "ENGAGE_DECISION_LOG_MAX_MB": "0.002", "ENGAGE_DECISION_LOG_KEEP": "2"}
    with make_client(monkeypatch, model, **env) as c:
        wait_ready(c)
        for k in range(12):
            body = {"customers": [customer(f"s{k:02d}-{j}", 2) for j in range(4)], "cutoff": CUTOFF}
            assert c.post("/score", json=body).status_code == 200
    assert len(rotated_files(path)) == 2
    ids = [r["customer_id"] for r in read_decision_log(path)]
    assert ids[-1] == "s11-3" and len(ids) == len(set(ids)) < 48
