"""A simulated world written as a partitioned data folder (DIR/<table>/part-NNNNN.parquet + manifest.json).

Kept apart so that it can give way to ``features.sources`` writing partitioned folders itself: each part holds
the customers whose ``partition_of`` is its number, and their rows of every table.
"""

from __future__ import annotations

import json
from pathlib import Path

from features.contract.schema import TABLES, Tables
from features.sources.io import write_frame
from features.sources.partitions import MANIFEST, part_path, partition_of, partitioning


def write_partitioned_world(tables: Tables, folder: Path, parts: int) -> Path:
    """Write ``tables`` into ``folder`` as ``parts`` hash partitions by customer id; returns ``folder``."""
    ids = tables.customers["customer_id"].astype(str)
    where = partition_of(ids, parts)
    for part in range(parts):
        piece = tables.subset(ids[where == part])
        for table in TABLES:
            frame = getattr(piece, table)
            if frame is not None:
                write_frame(frame, part_path(folder, table, part))
    manifest = {**tables.meta.get("manifest", {}), "partitioning": partitioning(parts)}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return folder
