"""Start and stop the real BentoML server (``bentoml serve``) for ``engage serve``, the load test and
the integration test. Loopback (127.0.0.1) by default; BentoML state stays out of the home folder.

``engage serve`` checks before it starts any worker (:func:`preflight`): every setting (a bad one, a token file
that cannot be read or a token under 16 characters: exit status 2), a listening address other than loopback
without a token (refused unless ``--insecure``: exit 2), and, unless ``--wait``, that there is a model to serve
(no champion in the registry, or no model file: exit 3, within seconds). It then watches the start: the first
model-loading error a worker reports stops the server with that error and exit status 3. With ``--wait`` it
serves from the start and becomes ready once a model can be loaded (the workers retry). :func:`wait_ready`
(load test, tests) fails at the first loading error the same way instead of waiting out its time limit.
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

from serving.binding import is_loopback
from serving.champion import NO_CHAMPION
from serving.settings import ServiceSettings, read_settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SERVICE = "serving.service:EngageScoring"
SERVICE_NAME = "engage"
EXIT_SETTINGS = 2  # a bad setting or option
EXIT_NO_MODEL = 3  # nothing to serve: no champion, no model file, or the model could not be loaded
WATCH_START_S = 600.0  # how long engage serve watches for a loading error before it only waits


class StartupError(RuntimeError):
    """The server must not start (or was stopped at start); ``status`` is the exit status to end with."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class ModelLoadError(RuntimeError):
    """The server runs but could not load its model; the message is the worker's first error."""


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


def _check_model(env: Mapping[str, str]) -> None:
    """Raise :class:`StartupError` (exit 3) when there is no model to serve; reads the registry only."""
    from serving.champion import NoChampionError, RegistryUnreadableError, sqlite_champion, sqlite_file
    from serving.loading import _champion, read_registry_config, source_from_env

    source = source_from_env(env)
    if source.kind == "path":
        if not Path(source.location).exists():
            raise StartupError(f"{source.location}: model file not found", EXIT_NO_MODEL)
        return
    if source.kind != "mlflow":
        return  # a Bento's own model: checked when the worker loads it
    try:
        cfg = read_registry_config(source.location)
    except (OSError, ValueError) as exc:
        raise StartupError(str(exc), EXIT_SETTINGS) from None
    try:
        if sqlite_file(cfg["tracking_uri"]) is not None:
            sqlite_champion(cfg)  # seconds faster than opening the store through MLflow
        else:
            import mlflow

            _champion(mlflow.MlflowClient(tracking_uri=cfg["tracking_uri"]), cfg)
    except NoChampionError as exc:
        raise StartupError(str(exc), EXIT_NO_MODEL) from None
    except LookupError:
        raise StartupError(NO_CHAMPION.format(registry=cfg["tracking_uri"]), EXIT_NO_MODEL) from None
    except RegistryUnreadableError as exc:
        raise StartupError(str(exc), EXIT_NO_MODEL) from None


def preflight(env: Mapping[str, str], *, host: str, insecure: bool = False, wait: bool = False) -> ServiceSettings:
    """Check everything ``engage serve`` can check before a worker starts (see the module docstring)."""
    from features.contract.catalogue import load_catalogue

    try:
        settings = read_settings(env)
        load_catalogue(settings.actions)
    except (ValueError, OSError) as exc:
        raise StartupError(str(exc), EXIT_SETTINGS) from None
    if not is_loopback(host) and settings.token is None and not (insecure or settings.insecure):
        raise StartupError(
            f"--host {host} accepts connections from other machines but no API token is set: give --token-file "
            "(or ENGAGE_API_TOKEN / ENGAGE_API_TOKEN_FILE), or pass --insecure to serve without authentication",
            EXIT_SETTINGS,
        )
    if not wait:
        _check_model(env)
    return settings


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 3000,
    workers: int = 1,
    model_path: str | Path | None = None,
    mlflow_config: str | Path | None = None,
    token_file: str | Path | None = None,
    decision_log: str | Path | None = None,
    wait: bool = False,
    insecure: bool = False,
) -> int:
    """Run the service in the foreground until interrupted (``engage serve``); returns the exit status.

    Serves ``model_path`` if given, else the champion named in ``mlflow_config`` (default
    ``./mlflow.yaml``). ``token_file`` turns on bearer-token authentication; ``ENGAGE_API_TOKEN`` in the
    environment works too. Problems found before or while starting are printed as one ``error:`` line.
    """
    settings = {
        "ENGAGE_MODEL_PATH": None if model_path is None else str(Path(model_path).resolve()),
        "ENGAGE_MLFLOW_CONFIG": str(Path(mlflow_config or "mlflow.yaml").resolve()),
    }
    if token_file is not None:
        settings["ENGAGE_API_TOKEN_FILE"] = str(Path(token_file).resolve())
    if decision_log is not None:
        settings["ENGAGE_DECISION_LOG"] = str(Path(decision_log).resolve())
    if insecure:
        settings["ENGAGE_INSECURE"] = "1"  # the workers apply the address rule too (serving/binding.py)
    env = server_env(workers=workers, settings=settings)
    try:
        service = preflight(env, host=host, insecure=insecure, wait=wait)
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.status
    Path(env["BENTOML_HOME"]).mkdir(parents=True, exist_ok=True)
    # A session of its own, so stopping the server stops its workers; signals to this process are forwarded.
    proc = subprocess.Popen(serve_command(host, port), env=env, cwd=PROJECT_ROOT, start_new_session=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if not wait:
            headers = {"Authorization": f"Bearer {service.token}"} if service.token else None
            try:
                wait_ready(_local_url(host, port), proc, WATCH_START_S, headers, workers)
            except ModelLoadError as exc:
                print(f"error: {exc}", file=sys.stderr)
                stop(proc)
                return EXIT_NO_MODEL
            except (TimeoutError, RuntimeError):
                pass  # slow to load, or the server ended: its own status says how
        return proc.wait()
    except KeyboardInterrupt:
        stop(proc)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _local_url(host: str, port: int) -> str:
    """Where this machine reaches a server listening on ``host``."""
    if host in ("0.0.0.0", "", "::", "[::]"):
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _load_error(url: str, headers: Mapping[str, str] | None) -> str | None:
    """The model-loading error a worker reports in /metadata, if any."""
    try:
        meta = httpx.post(f"{url}/metadata", json={}, timeout=2.0, headers=dict(headers or {})).json()
    except (httpx.HTTPError, ValueError):
        return None
    return meta.get("load_error") if isinstance(meta, dict) else None


def wait_ready(
    url: str,
    proc: subprocess.Popen | None = None,
    timeout_s: float = 120.0,
    headers: Mapping[str, str] | None = None,
    workers: int = 1,
) -> None:
    """Poll ``/readyz`` until it answers 200; raise if the process dies, a worker reports a model-loading error
    (:class:`ModelLoadError`, at once) or time runs out.

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
        if not ok and (error := _load_error(url, headers)):
            raise ModelLoadError(f"the server could not load its model: {error}")
        time.sleep(0.02 if ok else 0.2)
    raise TimeoutError(f"the server at {url} was not ready within {timeout_s:.0f} s")


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


class ServerURL(str):
    """The URL of a server started by :func:`running_server`; ``pid`` is its supervisor process (the workers are
    its children)."""

    pid: int


@contextmanager
def running_server(
    *,
    workers: int = 1,
    settings: Mapping[str, str | None] | None = None,
    host: str = "127.0.0.1",
    ready_timeout_s: float = 180.0,
    log_path: Path | None = None,
) -> Iterator[ServerURL]:
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
    url = ServerURL(f"http://{host}:{port}")
    url.pid = proc.pid
    try:
        token = env.get("ENGAGE_API_TOKEN")
        wait_ready(url, proc, ready_timeout_s, {"Authorization": f"Bearer {token}"} if token else None, workers)
        yield url
    finally:
        stop(proc)
        if log_path:
            log.close()
