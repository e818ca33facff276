"""Stop-gap partitioner for ``engage bench scale`` in a checkout without ``engage partition``: reads a flat data
folder into memory and writes it as a partitioned one (DIR/<table>/part-NNNNN.parquet + manifest.json).

Run as ``python -m training.bench.scale_partition --data FLAT --out DIR --partitions N``. Each part holds the
customers whose ``partition_of`` is its number and their rows of every table. To be replaced by
``engage partition`` (which does not hold the world in memory).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from features.contract.schema import TABLES, Tables


def write_partitioned_world(tables: Tables, folder: Path, parts: int) -> Path:
    """Write ``tables`` into ``folder`` as ``parts`` hash partitions by customer id; returns ``folder``."""
    from features.sources.io import write_frame
    from features.sources.partitions import MANIFEST, part_path, partition_of, partitioning

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


def main(argv: list[str] | None = None) -> None:
    """The command line: read ``--data``, write ``--out`` in ``--partitions`` parts, print one JSON line."""
    from features.sources.io import read_tables

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--partitions", type=int, required=True)
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"--out {args.out} exists and is not empty")
    start = time.perf_counter()
    write_partitioned_world(read_tables(args.data), args.out, args.partitions)
    print(json.dumps({"out": str(args.out), "partitions": args.partitions,
                      "seconds": round(time.perf_counter() - start, 2)}))


if __name__ == "__main__":
    main()
