"""A simulated world written straight to a partitioned data folder, a chunk of customers at a time.

The world is simulated in chunks of whole blocks (:func:`features.sources.simulation.blocks.world_chunks`);
each chunk is validated and handed to a :class:`~features.sources.partition_writer.PartitionedWriter`, so the
whole world is never in memory (peak: one chunk while simulating, one partition while combining). The world
is the one :func:`~features.sources.simulation.world.simulate_world` gives for the same seed, and the folder
has the bytes :func:`~features.sources.partition_writer.write_partitioned` writes for it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from features.contract.catalogue import Catalogue
from features.contract.validate import validate_tables
from features.sources.partition_writer import PartitionedWriter
from features.sources.simulation.blocks import sum_counts, world_chunks, world_manifest
from features.sources.simulation.config import SimConfig


def simulate_partitioned(
    config: SimConfig,
    rng: np.random.Generator,
    out: str | Path,
    partitions: int,
    *,
    chunk_customers: int | None = None,
    overwrite: bool = False,
    catalogue: Catalogue | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Simulate the world of ``config`` into the partitioned folder ``out`` in chunks of ``chunk_customers``
    (rounded down to whole blocks of ``config.block_customers``, at least one; default: one block). Returns the
    manifest written (counts are totals over the chunks)."""
    chunk = chunk_customers if chunk_customers is not None else config.block_customers
    counts, n_campaigns = [], 0
    with PartitionedWriter(out, partitions, overwrite=overwrite) as writer:
        for part in world_chunks(config, rng, chunk_customers=chunk, catalogue=catalogue, progress=progress):
            counts.append(part.counts)
            n_campaigns = part.n_campaigns
            valid, _ = validate_tables(part.tables, source="simulated chunk")
            del part  # the raw chunk goes before it is split: peak memory is the chunk once validated plus pieces
            writer.add(valid)
            del valid
        manifest = world_manifest(config, n_campaigns, sum_counts(counts))
        writer.finish(manifest)
    return manifest
