"""Reading a training sample from a partitioned data folder on Dask.

Each worker reads its partitions, keeps the sampled customers' rows of every table and adds the partition's
share of the base's fingerprint; the client concatenates the rows in customer-id order (so the sample does not
depend on the partition count) and validates them as ``read_tables`` validates a folder. The returned
``Tables`` carry ``meta["sample"]`` (what was drawn) and ``meta["base_fingerprint"]`` (the whole base: the data
the model is said to be trained on, so that a policy trained on another sample of the same base finds its churn
champion).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract.schema import TABLES, Tables
from training.engine.options import EngineSettings
from training.engine.sampling import in_sample, sample_fraction

MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class SampleRequest:
    """How ``engage train churn|policy --engine dask`` samples: the engine, the trainer whose footprint sizes the
    sample, an explicit size (``--sample-customers``) and the seed (``--sample-seed``)."""

    engine: EngineSettings
    trainer: str
    customers: int | None = None
    seed: int = 0


def row_sum(frame: pd.DataFrame) -> int:
    """The sum (mod 2**64) of the rows' hashes: a fingerprint share that does not depend on row order."""
    if not len(frame):
        return 0
    return int(pd.util.hash_pandas_object(frame, index=False).to_numpy().sum(dtype=np.uint64)) & MASK64


def fingerprint_share(table: str, frame: pd.DataFrame) -> tuple[int, int]:
    """``(rows, hash sum)`` of one table's part, over the columns the local fingerprint covers."""
    if table == "customers":
        cols = frame[["customer_id"]].astype(str)
    elif table == "touchpoints":
        cols = frame[["customer_id", "ts", "kind"]].astype({"customer_id": str, "kind": str})
        cols["ts"] = pd.DatetimeIndex(pd.to_datetime(cols["ts"], utc=True)).as_unit("ns").asi8
    elif table == "labels":
        cols = frame.astype(str)
    else:
        return len(frame), 0
    return len(frame), row_sum(cols)


def sample_part(folder: str, part: int, fraction: float, seed: int) -> tuple[int, dict[str, pd.DataFrame], dict]:
    """One partition's sampled rows of every table and its fingerprint shares (runs on a worker)."""
    from features.sources.io import read_frame
    from features.sources.partitions import partition_files

    files = partition_files(folder)
    customers = read_frame(files["customers"][part], "customers")
    keep = in_sample(customers["customer_id"], fraction, seed)
    chosen = pd.Index(customers["customer_id"].astype(str)[keep])
    frames = {"customers": customers[keep].reset_index(drop=True)}
    shares = {"customers": fingerprint_share("customers", customers)}
    del customers
    for table, parts in files.items():
        if table == "customers":
            continue
        frame = read_frame(parts[part], table)
        shares[table] = fingerprint_share(table, frame)
        frames[table] = frame[frame["customer_id"].astype(str).isin(chosen).to_numpy()].reset_index(drop=True)
    return part, frames, shares


def base_fingerprint(shares: list[dict], folder: Path) -> dict:
    """The whole base's counts and a content hash combined from the partitions' order-free shares."""
    totals: dict[str, list[int]] = {}
    for share in shares:
        for table, (rows, hashed) in share.items():
            t = totals.setdefault(table, [0, 0])
            t[0] += rows
            t[1] = (t[1] + hashed) & MASK64
    digest = hashlib.sha256(json.dumps({t: totals[t] for t in sorted(totals)}).encode()).hexdigest()
    count = {t: totals.get(t, [0, 0])[0] for t in ("customers", "touchpoints", "outreach", "labels")}
    return {**count, "sha256": digest, "partitioned": str(folder)}


def customer_count(folder: Path) -> int:
    """The customers of a partitioned folder, from the Parquet footers (no rows read)."""
    import pyarrow.parquet as pq

    from features.sources.partitions import partition_files

    return sum(pq.ParquetFile(f).metadata.num_rows for f in partition_files(folder)["customers"])


def sampled_tables(folder: Path, request: SampleRequest, budget: int, client) -> Tables:
    """The validated sample of a partitioned folder, drawn on ``client``'s workers (see the module docstring)."""
    from distributed import as_completed

    from features.contract.validate import validate_tables
    from features.sources.io import read_manifest
    from features.sources.partitions import partition_count

    base = customer_count(folder)
    fraction = sample_fraction(base, request.trainer, budget, request.customers)
    futures = client.map(sample_part, [str(folder)] * partition_count(folder), range(partition_count(folder)),
                         fraction=fraction, seed=request.seed, pure=False)
    found: dict[int, dict[str, pd.DataFrame]] = {}
    shares: list[dict] = []
    for future in as_completed(futures):
        part, frames, share = future.result()
        found[part] = frames
        shares.append(share)
        future.release()
    frames = {t: pd.concat([found[p][t] for p in sorted(found)], ignore_index=True)
              for t in TABLES if t in found[0]}
    del found
    order = frames["customers"]["customer_id"].astype(str).argsort(kind="stable")
    frames["customers"] = frames["customers"].iloc[order].reset_index(drop=True)
    sample = {"base_customers": base, "customers": len(frames["customers"]), "fraction": round(fraction, 6),
              "seed": request.seed, "memory_budget_bytes": int(budget), "trainer": request.trainer,
              "requested_customers": request.customers, "partitions": partition_count(folder)}
    meta = {"source": str(folder), "sample": sample, "base_fingerprint": base_fingerprint(shares, folder)}
    manifest = read_manifest(folder)
    if manifest:
        meta["manifest"] = manifest
    tables, _ = validate_tables(Tables(**frames, meta=meta), source=f"{folder} (sample of {fraction:.4g})")
    return tables


def training_tables(data: Path, request: SampleRequest | None) -> Tables:
    """The tables a trainer runs on: the whole folder (local engine), or a customer sample drawn on Dask sized by
    the memory budget (``--engine dask``; the folder must be partitioned)."""
    from features.sources.io import read_tables
    from features.sources.partitions import is_partitioned
    from training.engine.options import dask_client, default_memory_budget

    if request is None or not request.engine.is_dask:
        return read_tables(Path(data))
    if not is_partitioned(data):
        raise ValueError(f"--engine dask: {data} is not a partitioned data folder (no customers/ folder of parts); "
                         f"write one with `engage partition --data {data} --out DIR --partitions N`")
    # The trainer runs in this process, so the sample is sized by this process's budget: --memory-limit, else
    # the memory available here. The cluster is closed before training starts.
    budget = request.engine.memory_limit or default_memory_budget()
    with dask_client(request.engine) as client:
        return sampled_tables(Path(data), request, budget, client)
