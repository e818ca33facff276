"""Partitioned data folders: each table a folder of Parquet files, hash-partitioned by ``customer_id``.

Layout of a partitioned data folder::

    DIR/manifest.json                  the world's manifest plus "partitioning": {key, count, hash}
    DIR/customers/part-00000.parquet   customers whose partition is 0
    DIR/touchpoints/part-00000.parquet their touchpoints (and likewise outreach, labels, truth)
    ...

A customer's rows are all in one partition (the same part number in every table), so each partition is a
complete small data folder: it validates, builds features and scores on its own. The partition of a
customer is a stable hash of its id (pandas' ``hash_pandas_object``: SipHash with a fixed key), so the same id
lands in the same partition on every machine and in every run.

Written by :mod:`features.sources.partition_writer` (``write_partitioned``; ``engage partition`` through
:mod:`features.sources.repartition`; ``engage simulate --partitions`` through
:mod:`features.sources.simulated_partitions`), validated and read by :mod:`features.sources.partition_checks`
(``validate_partitioned``; ``read_tables`` reads either kind of folder).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.contract.errors import DataError
from features.contract.schema import REQUIRED_TABLES, TABLES, Tables
from features.sources.files import read_frame, read_manifest

MANIFEST = "manifest.json"
PART_TEMPLATE = "part-{:05d}.parquet"
PART_GLOB = "part-*.parquet"
HASH_NAME = "siphash24(customer_id) mod count"


def partition_of(ids: pd.Index | pd.Series | np.ndarray, count: int) -> np.ndarray:
    """The partition (0 .. count-1) of each customer id: stable across machines, processes and runs."""
    if count < 1:
        raise ValueError(f"a partition count must be at least 1, got {count}")
    values = pd.Series(np.asarray(ids, dtype=object)).astype("str")
    hashed = pd.util.hash_pandas_object(values, index=False).to_numpy()
    return (hashed % np.uint64(count)).astype(np.int64)


def partitioning(count: int) -> dict:
    """The manifest entry that marks a folder as partitioned."""
    return {"key": "customer_id", "count": int(count), "hash": HASH_NAME, "file": PART_TEMPLATE.format(0)}


def is_partitioned(path: str | Path) -> bool:
    """Whether ``path`` is a partitioned data folder (its customers table is a folder of parts)."""
    return (Path(path) / "customers").is_dir()


def part_path(folder: str | Path, table: str, part: int) -> Path:
    """Where part ``part`` of ``table`` lives."""
    return Path(folder) / table / PART_TEMPLATE.format(part)


def partition_files(path: str | Path) -> dict[str, list[Path]]:
    """The part files of each table of a partitioned folder, in part order; the required tables must exist,
    and every table present must have one file per partition (a missing part is an error naming it)."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder {folder} does not exist")
    found: dict[str, list[Path]] = {}
    for table in TABLES:
        sub = folder / table
        if sub.is_dir():
            found[table] = sorted(sub.glob(PART_GLOB))
    for table in REQUIRED_TABLES:
        if table not in found:
            raise DataError(table, None, f"required table missing: expected a folder {table}/ of {PART_GLOB} files",
                            source=str(folder))
    count = len(found["customers"])
    if count == 0:
        raise DataError("customers", None, f"customers/ holds no {PART_GLOB} files", source=str(folder))
    for table, files in found.items():
        expected = [folder / table / PART_TEMPLATE.format(i) for i in range(count)]
        missing = sorted(set(expected) - set(files))
        extra = sorted(set(files) - set(expected))
        if missing or extra:
            what = (f"missing {', '.join(p.name for p in missing[:5])}" if missing
                    else f"unexpected {', '.join(p.name for p in extra[:5])}")
            raise DataError(table, None, f"{table}/ must hold exactly the {count} parts customers/ has "
                                         f"(part-00000 .. part-{count - 1:05d}); {what}", source=str(folder))
        found[table] = expected
    return found


def partition_count(path: str | Path) -> int:
    """How many partitions a partitioned folder has."""
    return len(partition_files(path)["customers"])


def read_part_frames(path: str | Path, part: int, files: dict[str, list[Path]] | None = None) -> Tables:
    """The raw (unvalidated) tables of one partition, with the folder's manifest in ``meta``."""
    files = files if files is not None else partition_files(path)
    frames = {table: read_frame(parts[part], table) for table, parts in files.items()}
    meta = {"source": f"{path} (partition {part})", "partition": part}
    manifest = read_manifest(path)
    if manifest:
        meta["manifest"] = manifest
    return Tables(**frames, meta=meta)
