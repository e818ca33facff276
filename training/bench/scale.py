"""``engage bench scale``: the whole pipeline on the Dask engine at one or more sizes, each step an ``engage``
subprocess measured over its process tree (:mod:`training.bench.tree_memory`).

Steps: simulate (partitioned), partition, features, train churn, train policy, score; all but simulate and
partition with ``--engine dask``. Beside them, the local engine's ``engage features`` on the same world (the
yardstick of the Dask engine's events/s). MLflow runs go to a store inside the work folder, never the user's.
Where this checkout lacks a command (``engage simulate --partitions``, ``engage partition``), the step falls
back to what it has and the result says so under ``notes``.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from training.bench.tree_memory import run_measured

STEPS: tuple[str, ...] = ("simulate", "partition", "features", "train_churn", "train_policy", "score")
ENGAGE: list[str] = [sys.executable, "-m", "training.cli"]


def default_partitions(customers: int) -> int:
    """About 25,000 customers a partition (a few hundred MB of touchpoints in a worker), at least 2."""
    return max(2, -(-customers // 25_000))


def bench_config(work: Path, train_cutoffs: int | None) -> Path:
    """An MLflow settings file whose store lives in ``work``: the project's settings otherwise."""
    import yaml

    from training.registry import DEFAULT_CONFIG

    spec = yaml.safe_load(DEFAULT_CONFIG.read_text()) if DEFAULT_CONFIG.is_file() else {}
    spec = {k: v for k, v in (spec or {}).items() if k not in ("lock_dir", "unregistered_dir", "retrain")}
    spec.update(tracking_uri=f"sqlite:///{(work / 'mlflow.db').resolve()}",
                artifact_location=str((work / "mlartifacts").resolve()))
    if train_cutoffs is not None:
        spec["churn"] = {**(spec.get("churn") or {}), "max_train_cutoffs": train_cutoffs}
    path = work / "mlflow.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _touchpoints(folder: Path) -> int | None:
    from features.sources.io import read_manifest

    counts = read_manifest(folder).get("counts") or {}
    return counts.get("touchpoints")


def _summary(step: str, result: dict) -> dict:
    """The figures of a step's own JSON output worth keeping (the rest is dropped)."""
    out = result.pop("output", None)
    if not isinstance(out, dict):
        return result
    keep = {"train_churn": ("auc", "sample"), "train_policy": ("chosen_policy", "beats_baselines", "sample"),
            "simulate": ("customers", "touchpoints", "outreach"), "partition": ("partitions",)}.get(step, ())
    result.update({k: out[k] for k in keep if k in out})
    return result


def bench_scale_one(customers: int, *, days: int, partitions: int | None, memory_limit: str | None, work: Path,
                    seed: int = 7, local_features: bool = True, train_cutoffs: int | None = None,
                    progress=None) -> dict:
    """One size: every step measured (see the module docstring); the figures as a dict."""
    say = progress or (lambda _msg: None)
    parts = partitions or default_partitions(customers)
    work.mkdir(parents=True, exist_ok=True)
    data, logs = work / "data", work / "logs"
    logs.mkdir(exist_ok=True)
    config = bench_config(work, train_cutoffs)
    dask = ["--engine", "dask", *(["--memory-limit", memory_limit] if memory_limit else [])]
    notes: list[str] = []
    sim = ["simulate", "--customers", str(customers), "--days", str(days), "--seed", str(seed), "--quiet"]
    plan: list[tuple[str, list[str]]] = [
        ("simulate", [*ENGAGE, *sim, "--partitions", str(parts), "--out", str(data)]),
        ("partition", [*ENGAGE, "partition", "--data", str(data), "--out", str(work / "repartitioned"),
                       "--partitions", str(parts)]),
    ]
    notes.append("partition: the simulated partitioned folder partitioned again (a flat world of this size "
                 "is never written)")
    plan += [
        ("features", [*ENGAGE, "features", "--data", str(data), "--out", str(work / "features"), *dask]),
        ("train_churn", [*ENGAGE, "train", "churn", "--data", str(data), "--config", str(config), *dask, "--quiet"]),
        ("train_policy", [*ENGAGE, "train", "policy", "--data", str(data), "--config", str(config), *dask,
                          "--quiet"]),
        ("score", [*ENGAGE, "score", "--data", str(data), "--out", str(work / "scores"), "--defense-out",
                   str(work / "defense.parquet"), "--config", str(config), *dask]),
    ]
    load_start = list(os.getloadavg())
    steps: dict[str, dict] = {}
    for name, command in plan:
        say(f"{customers:,} customers: {name}")
        steps[name] = _summary(name, run_measured(command, log=logs / f"{name}.log"))
        steps[name]["command"] = " ".join(command[2:] if command[:3] == ENGAGE else command[1:])
        if name == "partition":
            shutil.rmtree(work / "repartitioned", ignore_errors=True)
    events = _touchpoints(data)
    result: dict = {"customers": customers, "days": days, "partitions": parts, "memory_limit": memory_limit,
                    "touchpoints": events, "steps": steps}
    if events and steps["features"]["ok"]:
        steps["features"]["events_per_s"] = round(events / steps["features"]["seconds"])
    if local_features:
        say(f"{customers:,} customers: features on the local engine (yardstick)")
        local = run_measured([*ENGAGE, "features", "--data", str(data), "--out", str(work / "features.parquet")],
                             log=logs / "features_local.log")
        local.pop("output", None)
        if events and local["ok"]:
            local["events_per_s"] = round(events / local["seconds"])
        result["local_engine"] = {"features": local}
        if local.get("events_per_s") and steps["features"].get("events_per_s"):
            result["features_ratio_to_local"] = round(steps["features"]["events_per_s"] / local["events_per_s"], 3)
    result["total_seconds"] = round(sum(s["seconds"] for s in steps.values()), 1)
    result["max_process_mb"] = max(s["peak_process_mb"] for s in steps.values())
    result["all_ok"] = all(s["ok"] for s in steps.values())
    result["notes"] = notes
    result["load_average_start"] = load_start
    result["load_average"] = list(os.getloadavg())
    return result


def machine() -> dict:
    """Cores, memory and the versions the figures depend on."""
    import importlib.metadata as md

    import psutil

    from training.run_info import git_commit

    def version(name: str) -> str | None:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return None

    found = git_commit()
    return {
        "cores": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "platform": platform.platform(), "python": platform.python_version(),
        "versions": {n: version(n) for n in ("pandas", "numpy", "pyarrow", "dask", "distributed", "lightgbm",
                                             "mlflow", "numba")},
        "commit": found[0] if found else None, "dirty": found[1] if found else None,
    }


def bench_scale(sizes: list[int], *, days: int = 365, partitions: int | None = None, memory_limit: str | None = None,
                work: Path | None = None, keep: bool = False, local_features: bool = True,
                train_cutoffs: int | None = None, seed: int = 7, progress=None, on_size=None) -> dict:
    """Every size in ``sizes`` (one after another, each in its own sub-folder of ``work``); the figures as one
    dict: ``steps`` of the largest size at the top, every size under ``sizes``. A temporary ``work`` folder is
    removed at the end unless ``keep``; a given one is kept. ``on_size(partial)`` gets the sizes finished so far
    after each one (a long run keeps them if it is stopped)."""
    own = work is None
    root = Path(tempfile.mkdtemp(prefix="engage_scale_")) if own else Path(work)
    start = time.perf_counter()
    try:
        runs: list[dict] = []
        for n in sizes:
            runs.append(bench_scale_one(n, days=days, partitions=partitions, memory_limit=memory_limit,
                                        work=root / f"c{n}", seed=seed, local_features=local_features,
                                        train_cutoffs=train_cutoffs, progress=progress))
            if on_size is not None and n != sizes[-1]:
                on_size({"partial": True, "sizes": runs, "machine": machine()})
    finally:
        if own and not keep:
            shutil.rmtree(root, ignore_errors=True)
    top = runs[-1]
    return {**top, "sizes": runs if len(runs) > 1 else None, "machine": machine(),
            "work": str(root) if (keep or not own) else None,
            "bench_seconds": round(time.perf_counter() - start, 1)}


def table(result: dict) -> str:
    """The figures as a human table: one line per size and step."""
    lines = [f"{'customers':>10} {'step':<13} {'seconds':>9} {'tree MB':>9} {'max proc MB':>11} {'events/s':>10}  ok"]
    for run in result.get("sizes") or [result]:
        rows = [*run["steps"].items()]
        if "local_engine" in run:
            rows.append(("features(local)", run["local_engine"]["features"]))
        for name, s in rows:
            eps = f"{s['events_per_s']:,}" if s.get("events_per_s") else ""
            lines.append(f"{run['customers']:>10,} {name:<13} {s['seconds']:>9.1f} {s['peak_memory_mb']:>9,.0f} "
                         f"{s['peak_process_mb']:>11,.0f} {eps:>10}  {'yes' if s['ok'] else 'NO'}")
    return "\n".join(lines)
