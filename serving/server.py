"""Start and stop the real BentoML server (``bentoml serve``) for ``engage serve``, the load test and
the integration test. Loopback (127.0.0.1) by default; BentoML state stays out of the home folder.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SERVICE = "serving.service:EngageScoring"
SERVICE_NAME = "engage"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def default_workers() -> int:
    """One worker process per usable CPU core, so every core scores requests (each worker loads the model)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def server_env(
    base: Mapping[str, str] | None = None,
    *,
    workers: int = 1,
    settings: Mapping[str, str | None] | None = None,
) -> dict[str, str]:
    """The environment of a server process: tool state under ``work/``, telemetry off, our settings."""
    env = dict(os.environ if base is None else base)
    env.setdefault("BENTOML_HOME", str(PROJECT_ROOT / "work" / "bentoml"))
    env.setdefault("BENTOML_DO_NOT_TRACK", "true")
    env.setdefault("DO_NOT_TRACK", "true")
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env["BENTOML_CONFIG_OVERRIDES"] = json.dumps({"services": {SERVICE_NAME: {"workers": int(workers)}}})
    if int(workers) > 1:
        # each worker listens on its own SO_REUSEPORT socket (serving/reuseport.py): even load
        env.setdefault("ENGAGE_REUSEPORT", "1")
    for key, value in (settings or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def serve_command(host: str, port: int) -> list[str]:
    """The ``bentoml serve`` command line for the engage service."""
    return [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        SERVICE,
        "--host",
        host,
        "--port",
        str(port),
        "--working-dir",
        str(PROJECT_ROOT),
    ]


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 3000,
    workers: int = 1,
    model_path: str | Path | None = None,
    mlflow_config: str | Path | None = None,
    token_file: str | Path | None = None,
    decision_log: str | Path | None = None,
) -> int:
    """Run the service in the foreground until interrupted (``engage serve``); returns the exit status.

    Serves ``model_path`` if given, else the champion named in ``mlflow_config`` (default
    ``./mlflow.yaml``). ``token_file`` turns on bearer-token authentication; ``ENGAGE_API_TOKEN`` in the
    environment works too.
    """
    settings = {
        "ENGAGE_MODEL_PATH": None if model_path is None else str(Path(model_path).resolve()),
        "ENGAGE_MLFLOW_CONFIG": str(Path(mlflow_config or "mlflow.yaml").resolve()),
    }
    if token_file is not None:
        settings["ENGAGE_API_TOKEN_FILE"] = str(Path(token_file).resolve())
    if decision_log is not None:
        settings["ENGAGE_DECISION_LOG"] = str(Path(decision_log).resolve())
    env = server_env(workers=workers, settings=settings)
    Path(env["BENTOML_HOME"]).mkdir(parents=True, exist_ok=True)
    return subprocess.call(serve_command(host, port), env=env, cwd=PROJECT_ROOT)


def wait_ready(
    url: str,
    proc: subprocess.Popen | None = None,
    timeout_s: float = 120.0,
    headers: Mapping[str, str] | None = None,
    workers: int = 1,
) -> None:
    """Poll ``/readyz`` until it answers 200; raise if the process dies or time runs out.

    With several workers each new connection reaches one of them (the kernel's choice), so readiness
    must hold on ``6 x workers`` fresh connections in a row: then every worker has almost surely loaded
    (a worker missed by all of them: probability ~2**-12 for two workers).
    """
    deadline = time.monotonic() + timeout_s
    needed = 1 if workers <= 1 else 6 * workers
    streak = 0
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode} before it was ready")
        try:
            with httpx.Client(timeout=2.0) as client:
                ok = client.get(f"{url}/readyz").status_code == 200
        except httpx.TransportError:
            ok = False
        streak = streak + 1 if ok else 0
        if streak >= needed:
            return
        time.sleep(0.02 if ok else 0.2)
    detail = ""
    try:
        meta = httpx.post(f"{url}/metadata", json={}, timeout=2.0, headers=dict(headers or {})).json()
        detail = f" (load_error: {meta.get('load_error')})"
    except (httpx.HTTPError, ValueError):
        pass
    raise TimeoutError(f"the server at {url} was not ready within {timeout_s:.0f} s{detail}")


def stop(proc: subprocess.Popen, grace_s: float = 15.0) -> None:
    """Stop a server started by :func:`running_server` and its worker processes."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


@contextmanager
def running_server(
    *,
    workers: int = 1,
    settings: Mapping[str, str | None] | None = None,
    host: str = "127.0.0.1",
    ready_timeout_s: float = 180.0,
    log_path: Path | None = None,
) -> Iterator[str]:
    """Start ``bentoml serve`` on a free loopback port, wait until ready, yield its URL, then stop it."""
    port = free_port(host)
    env = server_env(workers=workers, settings=settings)
    Path(env["BENTOML_HOME"]).mkdir(parents=True, exist_ok=True)
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
    # A new session, so stopping the server also stops its worker processes and nothing else.
    proc = subprocess.Popen(
        serve_command(host, port),
        env=env,
        cwd=PROJECT_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://{host}:{port}"
    try:
        token = env.get("ENGAGE_API_TOKEN")
        wait_ready(url, proc, ready_timeout_s, {"Authorization": f"Bearer {token}"} if token else None, workers)
        yield url
    finally:
        stop(proc)
        if log_path:
            log.close()
