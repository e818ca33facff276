"""Every exit status of the command line, each with its one-line message (and what it leaves behind)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.system import CHECKSUM_SUFFIX
from tests.paths import PROJECT
from training.cli import app
from training.cli_common import EXIT_STATUSES


def engage(*args) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stderr


def one_line(stderr: str) -> str:
    """The one error line (MLflow may log its own INFO lines around it), and no traceback."""
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture(scope="module")
def data(make_world, tmp_path_factory) -> Path:
    from features.sources.io import write_tables

    folder = tmp_path_factory.mktemp("exit") / "data"
    write_tables(make_world(1000, 365, seed=3), folder)
    return folder


@pytest.fixture
def config(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "mlflow.yaml"
    # no database yet: the commands meet a registry that does not exist (tests/paths.py's empty copy is not wanted)
    path.write_text((PROJECT / "mlflow.yaml").read_text() + "busy_retry_seconds: 1\n")
    return path


def test_help_lists_every_exit_status():
    result = CliRunner().invoke(app, ["score", "--help"])
    assert all(re.search(rf"\b{code}\s+{re.escape(text[:20])}", result.output) for code, text in EXIT_STATUSES.items())


def test_bad_input_is_status_2_and_writes_nothing(data, tmp_path):
    code, err = engage("score", "--data", tmp_path / "missing", "--out", tmp_path / "s.parquet", "--model-uri", "m")
    assert code == 2 and "does not exist" in one_line(err)
    (tmp_path / "file").write_text("x")
    code, err = engage("score", "--data", data, "--out", tmp_path / "s.parquet", "--model-uri", "m",
                       "--defense-out", tmp_path / "file" / "defense.csv")
    assert code == 2 and "--defense-out" in one_line(err) and "is a file" in err
    assert not (tmp_path / "s.parquet").exists()
    scores = ("score", "--data", data, "--out", tmp_path / "s.parquet", "--model-uri", "m")
    code, err = engage(*scores, "--reasons", "some")
    assert code == 2 and "'some' is not one of all, at-risk, none" in one_line(err)
    code, err = engage(*scores, "--reasons", "none", "--engine", "dask")
    assert code == 2 and "--reasons runs on the local engine" in one_line(err)
    assert not (tmp_path / "s.parquet").exists()


def test_features_refuses_to_overwrite_without_the_option(data, tmp_path):
    out = tmp_path / "features.parquet"
    out.write_bytes(b"keep me")
    code, err = engage("features", "--data", data, "--cutoff", "2025-10-01", "--out", out)
    assert code == 2 and "exists; pass --overwrite" in one_line(err)
    assert out.read_bytes() == b"keep me" and not (tmp_path / "features.dictionary.csv").exists()
    code, _ = engage("features", "--data", data, "--cutoff", "2025-10-01", "--out", out, "--overwrite")
    assert code == 0 and out.read_bytes()[:4] == b"PAR1" and (tmp_path / "features.dictionary.csv").exists()


def test_no_champion_is_status_3(data, config, tmp_path):
    code, err = engage("score", "--data", data, "--out", tmp_path / "s.parquet", "--config", config)
    assert code == 3 and "no champion model in sqlite:///" in one_line(err)
    assert "run `engage demo` or `engage train`" in err
    code, err = engage("train", "policy", "--data", data, "--config", config)
    assert code == 3 and "no churn champion" in one_line(err) and "engage train churn" in err


def test_corrupt_or_changed_model_file_is_status_4(data, tmp_path):
    garbage = tmp_path / "model.pkl"
    garbage.write_bytes(b"not a pickle at all")
    code, err = engage("score", "--data", data, "--out", tmp_path / "s.parquet", "--model-uri", garbage)
    assert code == 4 and "is corrupt, truncated or not a pickle" in one_line(err)
    changed = tmp_path / "changed.pkl"
    changed.write_bytes(b"whatever")
    changed.with_name(changed.name + CHECKSUM_SUFFIX).write_text("0" * 64 + "  changed.pkl\n")
    code, err = engage("score", "--data", data, "--out", tmp_path / "s.parquet", "--model-uri", changed)
    assert code == 4 and "does not match the recorded" in one_line(err)


def _hold_lock(db: Path, seconds: float) -> subprocess.Popen:
    code = ("import sqlite3, sys, time\n"
            "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "con.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\ntime.sleep(float(sys.argv[2]))\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_locked_registry_is_retried_then_status_5(data, config, tmp_path):
    db = tmp_path / "work" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    # a registry that exists (scoring never creates one: it only reads)
    import mlflow

    mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    holder = _hold_lock(db, 60)
    try:
        t0 = time.monotonic()
        code, err = engage("score", "--data", data, "--out", tmp_path / "s.parquet", "--config", config)
        assert code == 5 and "locked by another process" in one_line(err)
        assert time.monotonic() - t0 >= 1
    finally:
        holder.kill()
        holder.wait()
    # a lock released within the retry budget is waited for: the command gets through (to "no champion")
    config.write_text(config.read_text().replace("busy_retry_seconds: 1", "busy_retry_seconds: 60"))
    holder = _hold_lock(db, 2)
    code, err = engage("score", "--data", data, "--out", tmp_path / "s.parquet", "--config", config)
    holder.wait()
    assert code == 3, err


@pytest.mark.slow
@pytest.mark.parametrize("test_data", [False, True], ids=["own-test-rows", "separate-test-folder"])
def test_a_failed_registration_keeps_the_model_for_engage_register_status_6(data, config, tmp_path, test_data):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the artifact store should be")
    config.write_text(config.read_text().replace("artifact_location: work/mlartifacts",
                                                 "artifact_location: blocked/mlartifacts"))
    extra = ["--test-data", data] if test_data else []
    code, err = engage("train", "churn", "--data", data, "--config", config, *extra)
    line = one_line(err)
    assert code == 6 and "registering the trained model failed" in line, err
    folder = Path(re.search(r"the model is saved in (\S+):", line).group(1))
    assert f"engage register --model-uri {folder} --config {config}" in line
    assert (folder / "system" / "decision_system.pkl").is_file()

    blocked.unlink()  # the store is back
    result = CliRunner().invoke(app, ["register", "--model-uri", str(folder), "--config", str(config)])
    assert result.exit_code == 0, result.output
    registered = json.loads(result.stdout)
    assert registered["version"] == "1" and registered["promoted"]
    spec = json.loads((folder / "registration.json").read_text())
    assert (spec["test_data"] is not None) == test_data
    code, err = engage("register", "--model-path", folder, "--config", config)
    assert code == 2 and "already registered" in one_line(err)
