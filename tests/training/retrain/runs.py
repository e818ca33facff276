"""``engage retrain`` as a scheduler runs it: real subprocesses on one simulated world and one registry, and the
state a run must not change (champion aliases, model files, published scores)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tests.paths import PROJECT, write_registry_config

# Small, fast training: the job's steps are what these tests check, not the models' quality.
CONFIG_TAIL = """retrain:
  churn: {max_train_cutoffs: 2}
  policy_train: {max_campaigns: 3, outcome_estimators: 30, effect_estimators: 20, n_boot: 30, seed: 1}
"""


@dataclass(frozen=True)
class Home:
    """A project folder: its ``mlflow.yaml``, registry and scores; the data folder; the weekly as-of dates."""

    folder: Path
    data: Path
    weeks: tuple[str, ...]

    @property
    def config(self) -> Path:
        return self.folder / "mlflow.yaml"

    @property
    def published(self) -> Path:
        return self.folder / "work" / "scores" / "scores.parquet"


def write_config(folder: Path, extra: str = "", name: str = "mlflow.yaml") -> Path:
    """The project's config with fast training settings (and ``extra`` YAML, whose keys win) in ``folder``."""
    text = (PROJECT / "mlflow.yaml").read_text().split("\nretrain:")[0]
    for key in re.findall(r"^(\w+):", extra, flags=re.MULTILINE):  # a key may not be given twice: drop the project's
        text = re.sub(rf"^{key}:\n(?:[ #].*\n)*", "", text, flags=re.MULTILINE)
    return write_registry_config(folder / name, text.rstrip() + "\n" + CONFIG_TAIL + extra)


def environment() -> dict[str, str]:
    # one OpenMP thread: on a shared CI machine KMeans' thread pool otherwise oversubscribes the cores
    return {**os.environ, "PYTHONPATH": str(PROJECT), "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}


def command(home: Home, as_of: str | None, data: Path | None = None, report: str = "report.json",
            config: Path | None = None) -> list[str]:
    args = ["retrain", "--data", str(data or home.data), "--config", str(config or home.config),
            "--report", str(home.folder / report)]
    return args + (["--as-of", as_of] if as_of else [])


def retrain(home: Home, as_of: str | None, **kw) -> tuple[int, dict | None, str]:
    """Run ``engage retrain`` to the end: exit status, report (if written) and stderr."""
    report = home.folder / kw.get("report", "report.json")
    report.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-m", "training.cli", *command(home, as_of, **kw)], cwd=home.folder,
                          env=environment(), capture_output=True, text=True, timeout=600)
    out = json.loads(report.read_text()) if report.exists() else None
    return proc.returncode, out, proc.stderr


def start_paused(home: Home, target: str, markers: Path, as_of: str, **kw) -> subprocess.Popen:
    """Start ``engage retrain`` stopping at ``module:function`` (tests.faultpoints) until ``markers/go``."""
    return subprocess.Popen([sys.executable, "-m", "tests.faultpoints", target, str(markers),
                             *command(home, as_of, **kw)], cwd=home.folder, env=environment(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_reached(proc: subprocess.Popen, markers: Path, count: int = 1, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while len(list(markers.glob("reached.*"))) < count:
        if proc.poll() is not None:
            raise AssertionError(f"ended ({proc.returncode}) before its pause point: {proc.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"did not reach its pause point in {timeout} s")
        time.sleep(0.1)


def kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def aliases(home: Home) -> dict[tuple[str, str], int]:
    db = home.folder / "work" / "mlflow.db"
    with sqlite3.connect(db) as con:
        return {(n, a): int(v) for n, a, v in con.execute("SELECT name, alias, version FROM registered_model_aliases")}


def versions(home: Home) -> int:
    with sqlite3.connect(home.folder / "work" / "mlflow.db") as con:
        return con.execute("SELECT COUNT(*) FROM model_versions").fetchone()[0]


def version_tags(home: Home, name: str, version: str | int) -> dict[str, str]:
    with sqlite3.connect(home.folder / "work" / "mlflow.db") as con:
        rows = con.execute("SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?",
                           (name, int(version)))
        return dict(rows.fetchall())


def champion_state(home: Home) -> dict:
    """Champion aliases, every file of the artifact store (SHA-256) and the published scores' bytes."""
    files = {str(p.relative_to(home.folder)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted((home.folder / "work" / "mlartifacts").rglob("*")) if p.is_file()}
    return {
        "champions": {k: v for k, v in aliases(home).items() if k[1] == "champion"},
        "files": files,
        "scores": hashlib.sha256(home.published.read_bytes()).hexdigest() if home.published.exists() else None,
    }


def assert_untouched(before: dict, after: dict) -> None:
    assert after["champions"] == before["champions"]
    changed = [f for f, digest in before["files"].items() if after["files"].get(f) != digest]
    assert not changed, f"files of the registry changed: {changed[:5]}"
    assert after["scores"] == before["scores"]


def broken_export(tables, as_of: str, window_days: int, *, drop_channel: str | None = None,
                  keep_every: int | None = None, blank: str | None = None, stopped: bool = False):
    """The world with its newest ``window_days`` before ``as_of`` broken the way a bad export breaks
    (``stopped``: the export has nothing from ``as_of`` on)."""
    tp = tables.touchpoints
    ts = pd.to_datetime(tp["ts"], utc=True)
    at = pd.Timestamp(as_of, tz="UTC")
    if stopped:
        return tables.with_(touchpoints=tp[(ts < at).to_numpy()].reset_index(drop=True))
    inside = ((ts >= at - pd.Timedelta(days=window_days)) & (ts < at)).to_numpy()
    if drop_channel is not None:
        tp = tp[~(inside & (tp["channel"] == drop_channel).to_numpy())]
    if keep_every is not None:
        tp = tp[~inside | (pd.RangeIndex(len(tp)).to_numpy() % keep_every == 0)]
    if blank is not None:
        tp = tp.copy()
        tp.loc[inside, blank] = pd.NA
    return tables.with_(touchpoints=tp.reset_index(drop=True))
