"""``engage retrain``: one command for a scheduler, with exit statuses it can alert on.

0 finished (promoted, or unchanged); 2 bad input; 3 a data gate refused (nothing trained, champion untouched);
4 the challenger was rejected (the champion keeps serving); 5 another retrain holds the lock. The job holds an
exclusive lock (``retrain.lock`` in the registry's lock folder) for its whole life: the operating system
releases it when the process dies, even by SIGKILL or out of memory, so a stale lock never blocks the next run;
the PID and start time written beside it let that run say which one died.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from features.contract.errors import RegistryBusyError
from training.report import write_json
from training.retrain.job import JobContext, Scorer, run_job

log = logging.getLogger("engage.retrain")

class RetrainLockedError(RegistryBusyError):
    """Another retrain holds the job's lock."""


def _previous_holder(info: Path) -> str | None:
    """What the last holder wrote beside the lock, when it died without cleaning up."""
    if not info.exists():
        return None
    try:
        held = json.loads(info.read_text())
    except (OSError, ValueError):
        return None
    age = time.time() - float(held.get("started", time.time()))
    return f"a previous retrain (pid {held.get('pid')}, started {age / 3600:.1f} h ago) ended without finishing"


def _job_lock(config):
    """Take the job's lock without waiting (``RetrainLockedError`` when held); returns (fd, info file, note)."""
    from training.locks import try_lock

    path = Path(config.lock_dir) / "retrain.lock"
    fd = try_lock(path)
    info = path.with_suffix(".json")
    if fd is None:
        held = info.read_text() if info.exists() else "{}"
        raise RetrainLockedError(f"another engage retrain holds the lock {path} ({held.strip()}); this run exits")
    note = _previous_holder(info)
    info.write_text(json.dumps({"pid": os.getpid(), "started": time.time()}))
    return fd, info, note


def retrain_command(data: Path, config_path: Path, *, as_of: str | None, report_path: Path | None,
                    scorer: Scorer) -> tuple[dict, int]:
    """Run the job under its lock; the report and the exit status."""
    from training.locks import release
    from training.registry import load_config
    from training.retrain.reference import current_champion
    from training.retrain.settings import retrain_settings
    from training.retrain.summary import log_summary, summary_report
    from training.unregistered import prepare_registry

    config = load_config(config_path)
    ctx = JobContext(config, Path(config_path), retrain_settings(config_path), Path(data), as_of, scorer)
    t0 = time.perf_counter()
    fd, info, note = _job_lock(config)
    try:
        prepare_registry(config)  # runs of killed jobs marked FAILED, their versions tagged: a clean start
        outcome, seen, before = run_job(ctx)
        if note:
            outcome.warnings.insert(0, note)
        after = current_champion(config)
        report = summary_report(ctx, outcome, seen, before, after, time.perf_counter() - t0)
        try:
            report["mlflow_run_id"] = log_summary(config, report)
        except Exception as exc:  # the decision stands; the summary run is a record, not a step
            report["warnings"].append(f"the summary could not be logged to MLflow: {exc}")
        if report_path is not None:
            write_json(report_path, report)
        info.unlink(missing_ok=True)
    finally:
        release(fd)
    return report, outcome.exit_status
