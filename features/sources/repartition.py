"""Turning any data folder into a partitioned one (what ``engage partition`` runs).

A flat folder is read and validated whole (it is one file per table) and split. A partitioned folder is
re-partitioned one input partition at a time: each is validated on its own and added to the writer as a chunk,
and the checks that span partitions (:func:`features.sources.partition_checks.cross_partitions`) run before the
output is moved into place, so memory holds one input partition plus one output partition, never the folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from features.contract.errors import DataProblemsError
from features.sources.partition_checks import check_part, cross_partitions
from features.sources.partition_writer import PartitionedWriter
from features.sources.partitions import is_partitioned, partition_count


def repartition(data: str | Path, out: str | Path, count: int, *, overwrite: bool = False,
                progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Write the data folder ``data`` (flat or partitioned) as a partitioned folder of ``count`` partitions at
    ``out`` (atomically; a non-empty ``out`` is refused unless ``overwrite``). The manifest is the input's, its
    ``partitioning`` replaced. Returns the rows written per table."""
    from features.sources.io import read_manifest, read_tables

    data, out = Path(data), Path(out)
    if data.resolve() == out.resolve():
        raise ValueError(f"--out {out} is the input folder; write the partitioned copy somewhere else")
    manifest = {k: v for k, v in read_manifest(data).items() if k != "partitioning"}
    with PartitionedWriter(out, count, overwrite=overwrite) as writer:
        if not is_partitioned(data):
            writer.add(read_tables(data))
            if progress is not None:
                progress(1, 1)
        else:
            n = partition_count(data)
            checks, problems = [], []
            for part in range(n):
                check = check_part(data, part, keep=True)
                if check.tables is not None:
                    writer.add(check.tables)
                    check.tables = None
                problems += check.problems
                checks.append(check)
                if progress is not None:
                    progress(part + 1, n)
            problems = cross_partitions(checks).problems + problems
            if problems:
                error = problems[0] if len(problems) == 1 else DataProblemsError(problems[:50])
                raise error.with_source(str(data))
        return writer.finish(manifest)
