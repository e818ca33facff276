"""Starting the service as a user does (``engage serve`` in a real process): an empty registry ends it within seconds
with the reason and exit status 3 and is left untouched; ``--wait`` serves once a champion appears; bad settings
and an open address without a token end it with status 2; the first model-loading error ends it (and the load
test) at once instead of after a time limit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from serving.server import EXIT_NO_MODEL, EXIT_SETTINGS, ModelLoadError, free_port, running_server, server_env
from tests.paths import PROJECT
from tests.serving.standin import TOKEN, register_champion, registry_config, write_model

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`"),
]

NO_CHAMPION = "no champion model in sqlite:///{db}; run `engage demo` or `engage train`"


def engage_serve(*args: str, timeout: float = 60) -> tuple[int, str, float]:
    """Run ``engage serve ARGS`` to its end; its exit status, its error output and how long it took."""
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "training.cli", "serve", "--port", str(free_port()), *args],
        cwd=PROJECT, env=server_env(), capture_output=True, text=True, timeout=timeout,
    )
    return done.returncode, done.stderr, time.monotonic() - t0


@pytest.mark.parametrize("workers", [1, 2])
def test_an_empty_registry_ends_engage_serve_within_seconds(tmp_path, workers):
    config = registry_config(tmp_path)
    status, err, seconds = engage_serve("--config", str(config), "--workers", str(workers))
    assert status == EXIT_NO_MODEL, err
    assert NO_CHAMPION.format(db=tmp_path / "mlflow.db") in err
    assert seconds < 10 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.yaml"]  # nothing created: no db, no lock


def test_a_misspelt_registry_config_ends_engage_serve_naming_the_key(tmp_path):
    config = tmp_path / "mlflow.yaml"
    config.write_text("tracking_uri: sqlite:///mlflow.db\naliases:\n  champoin: prod\n")
    status, err, seconds = engage_serve("--config", str(config))
    assert status == EXIT_SETTINGS and "aliases has unknown keys ['champoin']" in err
    assert seconds < 10 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.yaml"]


def test_a_registry_file_without_tables_is_read_not_migrated(tmp_path):
    config = registry_config(tmp_path)
    (tmp_path / "mlflow.db").write_bytes(b"")
    status, err, _ = engage_serve("--config", str(config), "--workers", "2")
    assert status == EXIT_NO_MODEL and "no champion model" in err
    assert (tmp_path / "mlflow.db").stat().st_size == 0


def test_a_registry_without_a_champion_ends_engage_serve_within_seconds(tmp_path):
    import mlflow

    config = registry_config(tmp_path)
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").search_experiments()  # tables, no model
    status, err, seconds = engage_serve("--config", str(config), "--workers", "2")
    assert status == EXIT_NO_MODEL and NO_CHAMPION.format(db=tmp_path / "mlflow.db") in err
    assert seconds < 10


def _ready_on_every_worker(url: str, workers: int) -> bool:
    for _ in range(6 * workers):
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code != 200:
                return False
        except httpx.TransportError:
            return False
    return True


def test_wait_serves_within_one_retry_interval_of_a_champion_appearing(tmp_path):
    """Two workers wait on a registry that does not exist; the champion registered later is served by both within
    one retry interval (plus the load itself), and neither worker created the registry or raced on its schema."""
    config = registry_config(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = server_env(workers=2, settings={"ENGAGE_LOAD_RETRY_S": "1"})
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "training.cli", "serve", "--wait", "--workers", "2", "--port", str(port),
         "--config", str(config)],
        cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                meta = httpx.post(f"{url}/metadata", json={}, timeout=2).json()
                if meta["load_error"]:
                    break
            except (httpx.TransportError, ValueError):
                pass
            time.sleep(0.2)
        assert "no champion model" in meta["load_error"]
        assert httpx.get(f"{url}/readyz", timeout=2).status_code == 503
        time.sleep(2)
        assert not (tmp_path / "mlflow.db").exists()  # waiting workers only look
        register_champion(tmp_path)
        registered = time.monotonic()
        while not _ready_on_every_worker(url, 2):
            assert time.monotonic() - registered < 30, "not ready 30 s after the champion appeared"
            time.sleep(0.1)
        waited = time.monotonic() - registered
        print(f"\nready on both workers {waited:.1f} s after the champion appeared (retry interval 1 s)")
        meta = httpx.post(f"{url}/metadata", json={}, timeout=5).json()
        assert meta["ready"] and meta["model_version"] == "engage-decision-system/1" and meta["load_error"] is None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()
    text = (tmp_path / "server.log").read_text()
    for race in ("alembic", "CommandError", "duplicate column", "already exists"):
        assert race not in text


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        ("short", "the API token has 8 characters; it must have at least 16 characters"),
        ("directory", "cannot be read (Is a directory)"),
        ("missing", "cannot be read (No such file or directory)"),
    ],
)
def test_a_bad_token_file_refuses_to_start(tmp_path, setup, words):
    token = tmp_path / "token"
    if setup == "short":
        token.write_text("tiny-tok\n")
    elif setup == "directory":
        token.mkdir()
    model = write_model(tmp_path / "system.joblib")
    status, err, seconds = engage_serve("--model-path", str(model), "--token-file", str(token))
    assert status == EXIT_SETTINGS and words in err and "tiny-tok" not in err
    assert seconds < 10 and "Traceback" not in err


def test_an_open_address_needs_a_token_or_insecure(tmp_path):
    config = registry_config(tmp_path)
    status, err, _ = engage_serve("--config", str(config), "--host", "0.0.0.0")
    assert status == EXIT_SETTINGS and "--host 0.0.0.0 accepts connections from other machines" in err
    # past the address check, the empty registry ends it: the check let it through
    assert engage_serve("--config", str(config), "--host", "0.0.0.0", "--insecure")[0] == EXIT_NO_MODEL
    token = tmp_path / "token"
    token.write_text(TOKEN)
    assert engage_serve("--config", str(config), "--host", "0.0.0.0", "--token-file", str(token))[0] == EXIT_NO_MODEL
    assert engage_serve("--config", str(config), "--host", "localhost")[0] == EXIT_NO_MODEL


def test_a_model_that_cannot_be_loaded_ends_engage_serve_with_the_error(tmp_path):
    broken = tmp_path / "system.joblib"
    broken.write_bytes(b"not a pickle")
    status, err, seconds = engage_serve("--model-path", str(broken))
    assert status == EXIT_NO_MODEL and "the server could not load its model" in err
    assert seconds < 30


def test_engage_serve_serves_and_stops_on_sigterm(tmp_path):
    model = write_model(tmp_path / "system.joblib")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "training.cli", "serve", "--model-path", str(model), "--port", str(port)],
        cwd=PROJECT, env=server_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not _ready_on_every_worker(f"http://127.0.0.1:{port}", 1):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(30)
    assert status in (0, 130, -signal.SIGTERM)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/livez", timeout=2)


def test_the_load_test_server_fails_at_the_first_loading_error(tmp_path):
    """What ``engage bench serve`` starts: an empty registry ends the wait with the worker's error in seconds, not
    after the 180 s readiness limit."""
    config = registry_config(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(ModelLoadError, match="no champion model"), running_server(
        settings={"ENGAGE_MLFLOW_CONFIG": str(config), "ENGAGE_MODEL_PATH": None}
    ):
        pass
    assert time.monotonic() - t0 < 30
    assert not (tmp_path / "mlflow.db").exists()


def test_a_worker_refuses_to_start_on_a_bad_setting(monkeypatch, tmp_path):
    """``bentoml serve`` directly: the worker's service does not start (instead of answering 500 everywhere)."""
    from tests.serving.standin import make_client

    model = write_model(tmp_path / "system.joblib")
    for env in ({"ENGAGE_API_TOKEN": "short"}, {"ENGAGE_MAX_BODY_MB": "big"}, {"ENGAGE_LOG_LEVEL": "loud"}):
        (name,) = env
        with pytest.raises(ValueError, match=name), make_client(monkeypatch, model, **env):
            pass
        for key in env:
            monkeypatch.delenv(key)
    assert Path(model).exists()
