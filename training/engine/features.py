"""``engage features --engine dask``: the feature table of a partitioned folder, partition by partition.

Two passes over the partitions on the cluster, with the builders and point in time of the local engine:

1. each worker computes its partition's fit statistics (:meth:`FeaturePipeline.fit_stats`: a few numbers
   per customer, and the customers table); the client fits the pipeline from all of them in part order
   (:meth:`FeaturePipeline.fit_from_stats`), which is bit for bit the fit of the local engine on the same
   folder (whose customers are the parts concatenated in order);
2. the fitted pipeline is sent once to every worker, and each writes its partition's features as one part
   file of the output folder (staged, then renamed into place with the dictionary inside it).

With a decision system's pipeline (``--model-uri``) the first pass is skipped. No process ever holds more
than one partition's events.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from features.builders.dictionary import feature_dictionary
from features.builders.pipeline import FeaturePipeline, FitStats
from features.sources.io import frame_bytes
from training.engine import partcache
from training.engine.outfolder import PART_TEMPLATE, check_out_folder, publish, staged_folder
from training.engine.parts import read_part, require_partitioned

# The dictionary inside the output folder: the underscore keeps Parquet dataset readers (pyarrow, Dask,
# Spark) from taking it for a part, and one rename publishes table and dictionary together.
DICTIONARY_NAME = "_dictionary.csv"
Progress = Callable[[int, int], None]


def part_stats(data: str, part: int, pipeline: FeaturePipeline, cutoff: pd.Timestamp,
               run: str = "") -> tuple[FitStats, int]:
    """A worker task: one partition's fit statistics and its number of touchpoints; the validated partition
    stays on the worker for the transform pass when it fits (:mod:`training.engine.partcache`)."""
    tables = read_part(data, part)
    stats = pipeline.fit_stats(tables, cutoff=cutoff), len(tables.touchpoints)
    if run:
        partcache.keep(run, part, tables)
    return stats


def part_features(data: str, part: int, pipeline: FeaturePipeline, cutoff: pd.Timestamp, staged: str,
                  run: str = "") -> dict:
    """A worker task: one partition's feature table (with its cutoff column, as the local engine writes it),
    written as its part file into the staging folder."""
    tables = (partcache.take(run, part) if run else None) or read_part(data, part)
    table = pipeline.transform(tables, cutoff=cutoff).reset_index()
    table.insert(1, "cutoff", cutoff)
    name = PART_TEMPLATE.format(part)
    (Path(staged) / name).write_bytes(frame_bytes(table, name))
    return {"customers": len(table), "events": len(tables.touchpoints)}


def run_parts(client, fn, count: int, progress: Progress | None, *, data: str, offset: int = 0,
              total: int | None = None, where: dict[int, list[str]] | None = None,
              placed: dict[int, list[str]] | None = None, **kwargs) -> list:
    """``fn(data, part, **kwargs)`` for every part on the cluster, results in part order. ``where`` prefers a
    worker per part (others may take it if it is gone); ``placed``, when given, is filled with where each
    part ran."""
    from distributed import as_completed

    hints = [{"workers": (where or {}).get(i), "allow_other_workers": True} if (where or {}).get(i) else {}
             for i in range(count)]
    futures = [client.submit(fn, data, i, pure=False, **hints[i], **kwargs) for i in range(count)]
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * count
    for done, (future, result) in enumerate(as_completed(futures, with_results=True), start=1):
        results[index[future.key]] = result
        if progress:
            progress(offset + done, total or count)
    if placed is not None:
        holders = client.who_has(futures)
        placed.update({i: list(holders.get(f.key, ())) for i, f in enumerate(futures)})
    return results


def dask_features(client, data: str | Path, out: str | Path, cutoff: pd.Timestamp, *,
                  pipeline: FeaturePipeline | None = None, overwrite: bool = False,
                  progress: Progress | None = None) -> dict[str, Any]:
    """Build and write the partitioned feature table of ``data`` at ``cutoff``; ``pipeline`` is a fitted one
    (a decision system's), else one is fitted on ``data``. Returns the summary."""
    count = require_partitioned(data)
    out = check_out_folder(out, "--out", overwrite=overwrite)
    data = str(Path(data).resolve())  # workers may run elsewhere: the path they are given must be absolute
    t0 = time.perf_counter()
    passes = 1 if pipeline is not None else 2
    run, placed = uuid.uuid4().hex, {}
    if pipeline is None:
        # one thread per task: the cluster runs the partitions in parallel already
        stats = run_parts(client, part_stats, count, progress, total=passes * count, data=data, placed=placed,
                          pipeline=FeaturePipeline(n_jobs=1), cutoff=cutoff, run=run)
        pipeline = FeaturePipeline().fit_from_stats([s for s, _ in stats], cutoff=cutoff)
        del stats
    fitted = pipeline
    worker_pipeline = _single_threaded(fitted)
    with staged_folder(out) as staged:
        shared = client.scatter(worker_pipeline, broadcast=True)
        parts = run_parts(client, part_features, count, progress, offset=(passes - 1) * count,
                          total=passes * count, data=data, where=placed, pipeline=shared, cutoff=cutoff,
                          staged=str(staged), run=run)
        (staged / DICTIONARY_NAME).write_bytes(frame_bytes(feature_dictionary(fitted), DICTIONARY_NAME))
        publish(staged, out, overwrite=overwrite)
    seconds = time.perf_counter() - t0
    customers = sum(p["customers"] for p in parts)
    events = sum(p["events"] for p in parts)
    return {"out": str(out), "dictionary": str(out / DICTIONARY_NAME), "customers": customers,
            "features": len(fitted.get_feature_names_out()), "partitions": count, "events": events,
            "seconds": round(seconds, 2), "events_per_s": round(events / max(seconds, 1e-9), 1)}


def _single_threaded(pipeline: FeaturePipeline) -> FeaturePipeline:
    """The fitted pipeline as the workers run it: one thread each (the same output for any ``n_jobs``)."""
    worker = copy.copy(pipeline)
    worker.n_jobs = 1
    return worker
