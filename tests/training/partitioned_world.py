"""A simulated world written as a partitioned data folder, for the tests of training at scale."""

from __future__ import annotations

from pathlib import Path

from features.contract.schema import Tables
from features.sources.partition_writer import write_partitioned


def write_partitioned_world(tables: Tables, folder: Path, parts: int) -> Path:
    """``tables`` as a partitioned data folder of ``parts`` partitions at ``folder``."""
    write_partitioned(tables, folder, parts)
    return folder
