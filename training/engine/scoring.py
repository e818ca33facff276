"""``engage score --engine dask``: every partition scored on the workers with the same code as ``engage score``.

Each worker loads the decision system itself, from a model folder or file every worker can read, once per
worker process (a cache keyed by the path and what is there now), scores its partitions with
:func:`serving.batch.score_all` and writes each as one part file of the output folder; it sends back only
its defense targets, which the client merges into the one defense list. The decision log, when asked for,
is appended on the client from the published parts, one partition at a time (never the whole table).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from training.engine.features import Progress, run_parts
from training.engine.outfolder import PART_TEMPLATE, check_files, check_out_folder, publish, staged_folder
from training.engine.parts import read_part, require_partitioned

_ENGINES: dict[tuple[str, str | None], Any] = {}
_LOCK = threading.Lock()
_LOADS = [0]


def worker_engine(model_path: str):
    """The scoring engine of ``model_path`` in this process: loaded on first use and again only when the
    model there changes (its size and modification time), so a worker loads it once, not once per partition."""
    from serving.batch import load_engine
    from serving.loading import ModelSource, source_marker

    key = (model_path, source_marker(ModelSource("path", model_path)))
    with _LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            _ENGINES.clear()
            engine = _ENGINES[key] = load_engine(model_path=model_path)
            _LOADS[0] += 1
        return engine


def engine_loads() -> int:
    """How many times this process has loaded a model for scoring (for checking the cache)."""
    return _LOADS[0]


def part_scores(data: str, part: int, model_path: str, cutoff: pd.Timestamp, staged: str,
                defense: bool) -> dict[str, Any]:
    """A worker task: one partition scored and written as its part file; its defense targets returned."""
    from serving.batch import defense_list, score_all, table_bytes

    tables = read_part(data, part)
    engine = worker_engine(model_path)
    table = score_all(engine, tables, cutoff)
    path = Path(staged) / PART_TEMPLATE.format(part)
    path.write_bytes(table_bytes(table, path))
    return {"customers": len(table), "version": engine.info.version,
            "defense": defense_list(table) if defense else None}


def merge_defense(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The per-partition defense lists, in part order, as the one list the local engine writes (the same
    stable sort over the same rows in the same order)."""
    from serving.batch import defense_list

    frames = [p for p in parts if p is not None]
    if not frames:
        return pd.DataFrame()
    return defense_list(pd.concat(frames, ignore_index=True).assign(defense_target=True))


def dask_score(client, data: str | Path, out: str | Path, cutoff: pd.Timestamp, *, model_path: str | Path,
               defense_out: str | Path | None = None, decision_log: str | Path | None = None,
               overwrite: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """Score every customer of the partitioned folder ``data`` with the model at ``model_path`` (which every
    worker must be able to read) and write the partitioned scores, and the defense list; returns the summary."""
    count = require_partitioned(data)
    out = check_out_folder(out, "--out", overwrite=overwrite)
    defense_path = None if defense_out is None else Path(defense_out)
    check_files([] if defense_path is None else [(defense_path, "--defense-out")], overwrite=overwrite)
    if defense_path is not None and defense_path.resolve().is_relative_to(out.resolve()):
        raise ValueError(f"--defense-out {defense_path} is inside --out {out}; give it a place of its own")
    data, model = str(Path(data).resolve()), str(Path(model_path).resolve())
    t0 = time.perf_counter()
    with staged_folder(out) as staged:
        parts = run_parts(client, part_scores, count, progress, data=data, model_path=model, cutoff=cutoff,
                          staged=str(staged), defense=defense_path is not None)
        versions = sorted({p["version"] for p in parts})
        if len(versions) != 1:
            raise RuntimeError(f"{model}: the model changed while scoring (versions {', '.join(versions)}); "
                               "score again")
        files = {}
        defense = None
        if defense_path is not None:
            from serving.batch import table_bytes

            defense = merge_defense([p["defense"] for p in parts])
            files[defense_path] = table_bytes(defense, defense_path)
        publish(staged, out, files, overwrite=overwrite)
    customers = sum(p["customers"] for p in parts)
    summary: dict[str, Any] = {"out": str(out), "customers": customers, "partitions": count,
                               "model_version": versions[0], "cutoff": cutoff.isoformat()}
    if defense is not None:
        summary.update(defense_out=str(defense_path), defense_targets=len(defense))
    if decision_log is not None:
        summary["decisions_logged"] = append_decisions(out, count, decision_log, cutoff)
    seconds = time.perf_counter() - t0
    summary.update(seconds=round(seconds, 2), customers_per_s=round(customers / max(seconds, 1e-9), 1))
    return summary


def append_decisions(out: Path, count: int, decision_log: str | Path, cutoff: pd.Timestamp) -> int:
    """Append the published scores to the decision log, one partition at a time, in part order."""
    from serving.batch import decision_records
    from serving.decision_log import DecisionLog

    log = DecisionLog(decision_log)
    written = 0
    for part in range(count):
        table = pd.read_parquet(out / PART_TEMPLATE.format(part))
        written += log.write(decision_records(table), cutoff=cutoff, source="batch")
    return written
