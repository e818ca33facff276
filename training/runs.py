"""Training runs that cannot stay RUNNING: each run proves it is alive, and the next start fails those that died.

MLflow marks a run finished only when its process says so; a process killed mid-way (SIGKILL, a lost
machine) leaves its run RUNNING forever, and the model version it may have registered without an evaluation.
Every engage run therefore holds a lock for its whole life (:func:`training.locks.held_for_life`) and names
it in the run's ``engage.run_token`` tag. At the start of the next training command,
:func:`fail_abandoned_runs` takes the lock of each RUNNING engage run: a lock nobody holds means the process
is gone, so the run is marked FAILED and its versions that were never evaluated are tagged as such (no alias
ever points at them: aliases move only after an evaluation). Runs without the tag (logged by older versions
of engage) are failed once they have been RUNNING for a day.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from training.locks import held_for_life, release, try_lock
from training.registry import MlflowConfig, experiment_id

log = logging.getLogger("engage.runs")

TOKEN_TAG = "engage.run_token"
LEGACY_STALE_SECONDS = 24 * 3600
NOT_EVALUATED = "not evaluated"


def _lock_path(config: MlflowConfig, token: str) -> Path:
    return Path(config.lock_dir) / "runs" / f"{token}.lock"


@contextlib.contextmanager
def tracked_run(config: MlflowConfig, key: str, run_name: str) -> Iterator:
    """An MLflow run in the ``key`` experiment whose liveness the next training command can check."""
    import mlflow

    token = uuid.uuid4().hex
    with held_for_life(_lock_path(config, token)):
        tags = {TOKEN_TAG: token, "engage.host": socket.gethostname(), "engage.pid": str(os.getpid())}
        with mlflow.start_run(experiment_id=experiment_id(config, key), run_name=run_name, tags=tags) as run:
            yield run


def _owner_gone(config: MlflowConfig, run) -> bool:
    """Whether the process of a RUNNING run has ended (its life lock is free, or it predates the lock)."""
    token = run.data.tags.get(TOKEN_TAG)
    if not token:
        return time.time() - run.info.start_time / 1000 > LEGACY_STALE_SECONDS
    fd = try_lock(_lock_path(config, token))
    if fd is None:
        return False
    release(fd)
    with contextlib.suppress(FileNotFoundError):
        _lock_path(config, token).unlink()
    return True


def _tag_unevaluated_versions(client, run_id: str) -> None:
    for mv in client.search_model_versions(f"run_id = '{run_id}'"):
        if "promotion_decision" not in (mv.tags or {}):
            client.set_model_version_tag(mv.name, mv.version, "promotion_decision", NOT_EVALUATED)
            client.set_model_version_tag(
                mv.name, mv.version, "promotion_reason", "its training run ended before the evaluation"
            )


def fail_abandoned_runs(config: MlflowConfig, keys: tuple[str, ...] = ("churn", "policy")) -> list[str]:
    """Mark FAILED every RUNNING run of engage's experiments whose process has ended; returns their ids."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=config.tracking_uri)
    found = [client.get_experiment_by_name(config.experiments.get(key, f"engage-{key}")) for key in keys]
    ids = [exp.experiment_id for exp in found if exp is not None]
    if not ids:
        return []
    failed = []
    for run in client.search_runs(ids, filter_string="attributes.status = 'RUNNING'", max_results=1000):
        if not _owner_gone(config, run):
            continue
        if client.get_run(run.info.run_id).info.status != "RUNNING":
            continue  # finished meanwhile
        client.set_tag(run.info.run_id, "engage.failure", "the process ended before the run finished (killed?)")
        client.set_terminated(run.info.run_id, status="FAILED")
        _tag_unevaluated_versions(client, run.info.run_id)
        failed.append(run.info.run_id)
        log.warning("run %s (%s) was left RUNNING by a process that ended: marked FAILED", run.info.run_id,
                    run.info.run_name)
    return failed
