"""A trained model is never lost to a failing registry: saved locally, registered later with ``engage register``.

Training takes minutes to hours; registering takes a registry that may be locked by another process or
unreachable. :func:`keep_on_failure` wraps the registering step of ``engage train churn|policy``: when it fails
(after the retries of a locked registry), the trained decision system is saved with what its registration
needs (kind, data folder and its fingerprint, report, metrics) in ``unregistered_dir`` (``mlflow.yaml``), and
the error names the command that registers it. :func:`register_pending` is that command: it logs a run,
registers the saved system and promotes it under the same compare-and-set rules as training.
:func:`prepare_registry` is what every training command does first: fail the runs of killed processes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shlex
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from features.contract.errors import (
    InfrastructureError,
    RegistryBusyError,
    RegistryError,
    error_line,
    is_registry_busy,
    retry_while_busy,
)
from training.registry import MlflowConfig
from training.report import write_json

log = logging.getLogger("engage.registry")

REGISTRATION_FILE = "registration.json"
REGISTERED_FILE = "registered.json"
SYSTEM_FOLDER = "system"


def prepare_registry(config: MlflowConfig) -> list[str]:
    """Before training: mark FAILED the runs whose process died (retried while the registry is locked)."""
    from training.runs import fail_abandoned_runs

    return retry_while_busy(lambda: fail_abandoned_runs(config), seconds=config.busy_retry_seconds,
                            what="checking the registry before training", where=config.tracking_uri)


def save_pending(config: MlflowConfig, system, pending: dict[str, Any], error: str) -> Path:
    """Save ``system`` and its registration details in a new folder of ``unregistered_dir``; returns it."""
    from features.system import save_system

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = Path(config.unregistered_dir) / f"{pending['kind']}-{stamp}-{uuid.uuid4().hex[:6]}"
    save_system(system, folder / SYSTEM_FOLDER)
    write_json(folder / REGISTRATION_FILE, {**pending, "error": error, "saved_at": stamp})
    return folder


def register_command(folder: Path, config_path: Path | None) -> str:
    """The ``engage register`` command line that registers a saved model."""
    words = ["engage", "register", "--model-uri", str(folder)]
    if config_path is not None:
        words += ["--config", str(config_path)]
    return shlex.join(words)


def _is_registry_failure(exc: BaseException) -> bool:
    """A failure of the registry or its storage (as opposed to a bug in engage)."""
    module = type(exc).__module__.split(".")[0]
    return is_registry_busy(exc) or isinstance(exc, OSError | InfrastructureError) or module in {
        "mlflow", "sqlalchemy", "requests", "urllib3", "botocore", "google", "azure"
    }


@contextlib.contextmanager
def keep_on_failure(config: MlflowConfig, system, pending: dict[str, Any], config_path: Path | None) -> Iterator[None]:
    """Run the registering block; if it fails, save ``system`` locally and raise an error naming the folder and
    the command that registers it (:class:`RegistryBusyError` when the registry stayed locked, else
    :class:`RegistryError`)."""
    try:
        yield
    except Exception as exc:
        if not _is_registry_failure(exc):
            log.exception("registering failed with an unexpected error")
        folder = save_pending(config, system, pending, error_line(exc))
        command = register_command(folder, config_path)
        kind = RegistryBusyError if is_registry_busy(exc) else RegistryError
        raise kind(
            f"registering the trained model failed ({error_line(exc)[:300]}); the model is saved in {folder}: "
            f"register it with `{command}` once the registry is available"
        ) from exc


def _read_pending(folder: Path) -> dict[str, Any]:
    spec_file = folder / REGISTRATION_FILE
    if not spec_file.is_file():
        raise FileNotFoundError(f"{folder}: not a saved model ({REGISTRATION_FILE} missing)")
    done = folder / REGISTERED_FILE
    if done.is_file():
        raise FileExistsError(f"{folder}: already registered ({done.read_text().strip()})")
    return json.loads(spec_file.read_text())


def _comparison_rows(spec: dict[str, Any], data: Path | None):
    """The rows a saved churn model and the champion are compared on: ``(tables, keys, holdout)``.

    A separate test folder is measured again; derived labels need the training folder itself (checked by its
    fingerprint); given labels compare recorded figures and need no data.
    """
    from features.contract.cutoffs import utc_timestamp
    from features.sources.io import read_tables
    from training.churn.experiments import measure_on_folder, without_attributes
    from training.churn.split import ChurnSettings, derived_labels
    from training.churn.tracking import data_fingerprint

    report, settings = spec["report"], ChurnSettings.from_dict(spec["settings"])
    if spec.get("test_data"):
        test = Path(spec["test_data"])
        return None, None, measure_on_folder(system_of(spec), read_tables(test), settings, dataset=test.name)
    if report["mode"] != "temporal":
        return None, None, None
    folder = Path(data or spec["data"])
    tables = without_attributes(read_tables(folder), tuple(spec.get("exclude_attributes") or ()))
    found = data_fingerprint(tables, folder.name, report["cutoffs"])["sha256"]
    if found != spec["data_sha256"]:
        raise ValueError(f"{folder}: not the data the model was trained on (fingerprint {found[:12]}… instead "
                         f"of {spec['data_sha256'][:12]}…); the champion must be measured on the same rows")
    test = utc_timestamp(report["cutoffs"]["test"])
    return tables, derived_labels(tables, [test], settings).reset_index(drop=True), None


def system_of(spec: dict[str, Any]):
    """The saved decision system of a pending registration (checked against the digest saved beside it)."""
    from features.system import load_system_file

    return load_system_file(Path(spec["folder"]) / SYSTEM_FOLDER)


def _register_churn(config: MlflowConfig, system, spec: dict[str, Any], data: Path | None) -> dict[str, Any]:
    """Log a run for a saved churn model, register it and promote it (champion re-measured on its test rows)."""
    import mlflow

    from features.contract.cutoffs import utc_timestamp
    from training.churn.tracking import promote_churn, run_metrics, version_description
    from training.registry import log_decision_system
    from training.run_info import describe_version
    from training.runs import tracked_run

    report = spec["report"]
    tables, keys, holdout = _comparison_rows(spec, data)
    name = config.registered_models.get("churn", "engage-churn")
    with tracked_run(config, "churn", f"register-churn-{Path(spec['data']).name}") as run:
        mlflow.set_tags({"engage.registered_from": spec["folder"], "data.sha256": spec["data_sha256"]})
        mlflow.log_metrics(run_metrics(report))
        system.metadata["run_id"] = run.info.run_id
        logged = log_decision_system(system, cutoff=utc_timestamp(report["cutoffs"]["test"]),
                                     registered_model_name=name)
        out = {"run_id": run.info.run_id, **promote_churn(config, logged, report, tables, keys, holdout)}
        describe_version(config, "churn", out["version"], version_description(report, spec["fingerprint"], out))
        return out


def _register_system(config: MlflowConfig, system, spec: dict[str, Any]) -> dict[str, Any]:
    """Log a run for a saved decision system, register it and promote it under the churn model's rules."""
    import mlflow

    from training.policy.registration import log_report, register_system
    from training.runs import tracked_run

    with tracked_run(config, "policy", "register-policy") as run:
        mlflow.set_tags({"engage.registered_from": spec["folder"]})
        log_report(spec["report"])
        registered = register_system(config, system, spec["report"], spec["churn_uri"], spec.get("fingerprint"))
        return {"run_id": run.info.run_id, **registered}


def register_pending(folder: str | Path, config_path: Path | None = None, *, data: Path | None = None) -> dict:
    """``engage register --model-uri DIR``: register a model saved by a training run whose registration failed."""
    import mlflow

    from training.registry import load_config

    folder = Path(folder)
    spec = {**_read_pending(folder), "folder": str(folder)}
    system = system_of(spec)
    config = load_config(config_path)
    mlflow.set_tracking_uri(config.tracking_uri)
    prepare_registry(config)

    def attempt() -> dict[str, Any]:
        if spec["kind"] == "churn":
            return _register_churn(config, system, spec, data)
        return _register_system(config, system, spec)

    out = retry_while_busy(attempt, seconds=config.busy_retry_seconds, what=f"registering {folder}",
                           where=config.tracking_uri)
    write_json(folder / REGISTERED_FILE, {k: out.get(k) for k in ("registered_model", "version", "run_id")})
    return out
