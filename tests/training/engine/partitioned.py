"""A test stand-in for ``write_partitioned``: a flat data folder split into the partitioned layout of
:mod:`features.sources.partitions` (each part the customers whose ``partition_of`` is its number, and their
rows of every table), so the engine tests do not depend on how ``engage partition`` writes one."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from features.contract.schema import TABLES, Tables
from features.contract.validate import validate_tables
from features.sources.io import read_frame, read_manifest, table_files
from features.sources.partitions import MANIFEST, part_path, partition_files, partition_of, partitioning


def split_folder(flat: Path, out: Path, count: int) -> Path:
    """Write the partitioned copy of the flat data folder ``flat`` to ``out`` (``count`` partitions)."""
    files = table_files(flat)
    customers = read_frame(files["customers"], "customers")
    parts = pd.Series(partition_of(customers["customer_id"].astype(str), count),
                      index=customers["customer_id"].astype(str))
    for table, file in files.items():
        frame = read_frame(file, table)
        ids = frame["customer_id"].astype(str)
        frame = frame.assign(customer_id=ids.to_numpy())
        where = parts.reindex(ids.to_numpy()).to_numpy()
        for i in range(count):
            path = part_path(out, table, i)
            path.parent.mkdir(parents=True, exist_ok=True)
            frame[where == i].reset_index(drop=True).to_parquet(path, index=False)
    manifest = dict(read_manifest(flat), partitioning=partitioning(count))
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
    return out


def concatenated(folder: Path) -> Tables:
    """The partitioned folder's tables as one validated bundle, parts concatenated in order: what the local
    engine reads from it."""
    files = partition_files(folder)
    frames = {t: pd.concat([read_frame(p, t) for p in ps], ignore_index=True) for t, ps in files.items()
              if t in TABLES and t != "truth"}
    meta = {"manifest": read_manifest(folder)}
    tables, _ = validate_tables(Tables(**frames, meta=meta))
    return tables

