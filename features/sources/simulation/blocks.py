"""Worlds larger than one block: customers simulated in fixed blocks, chunks as groups of whole blocks.

A world's customers are cut into blocks of ``config.block_customers`` (the last one shorter). Each block is a
small world of its own, simulated with the world-level draws shared: the campaign schedule and the promotion
days are drawn once (from the world's Generator, after the first block's traits, exactly where a one-block
world draws them). The first block draws from the world's Generator itself, so a world of up to one block is
the world the simulator has always produced, byte for byte; block ``k >= 1`` draws from its own Generator,
derived from the world's seed sequence and ``k`` (:func:`block_generator`). A block depends on nothing but
the seed, the configuration and its number, so grouping blocks into chunks (:func:`world_chunks`) changes
only how many customers are in memory at once, never the world: the same seed gives the same world chunked
or not.

What couples customers: nothing but the shared schedule and promotion days and one population statistic,
the mean starting engagement that centres a customer's loyalty (:func:`draw_traits`); there are no campaign
budgets or targeting quotas (every reachable customer gets a logged decision). In a world of several blocks
that mean is the block's (50,000 customers by default: within about 0.003 of the population's), so loyalty
is centred per block; everything else is per customer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from features.contract.catalogue import Catalogue, load_catalogue
from features.contract.schema import Tables
from features.sources.simulation.campaigns import CampaignSchedule, OutreachOptions
from features.sources.simulation.config import SIM_VERSION, SimConfig
from features.sources.simulation.history import simulate_block
from features.sources.simulation.traits import draw_traits

_BLOCK_TAG = 0xB10C  # keeps block generators apart from Generator.spawn()'s children of the same seed
_EVENT_TABLES = ("touchpoints", "outreach")


@dataclass(frozen=True)
class WorldChunk:
    """Some consecutive blocks of a world: their tables (ids ``C000001``... over the whole world; no
    manifest), their counts (sums over the blocks; :func:`world_manifest` turns them into the manifest's)
    and the number of campaigns."""

    tables: Tables
    counts: dict
    n_campaigns: int


def block_ranges(cfg: SimConfig) -> list[tuple[int, int]]:
    """The customer rows ``[start, stop)`` of each block."""
    size = cfg.block_customers
    return [(lo, min(lo + size, cfg.n_customers)) for lo in range(0, cfg.n_customers, size)]


def block_generator(rng: np.random.Generator, block: int) -> np.random.Generator:
    """Block ``block``'s Generator (``block >= 1``): from the world Generator's seed sequence and the block
    number only, so it is the same in every process and whatever the world Generator has drawn."""
    seq = rng.bit_generator.seed_seq
    if not isinstance(seq, np.random.SeedSequence):
        raise TypeError("a world of several blocks needs a Generator built from a seed "
                        "(numpy.random.default_rng(seed)): block generators derive from its SeedSequence")
    child = np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, _BLOCK_TAG, block),
                                   pool_size=seq.pool_size)
    return np.random.Generator(type(rng.bit_generator)(child))


def world_chunks(
    config: SimConfig,
    rng: np.random.Generator,
    *,
    chunk_customers: int | None = None,
    catalogue: Catalogue | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[WorldChunk]:
    """The world in chunks of whole blocks (``chunk_customers`` rounded down to whole blocks, at least one;
    ``None``: one chunk). ``progress(done, total)`` counts simulated days over all blocks."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError("simulate_world needs a numpy.random.Generator (e.g. numpy.random.default_rng(seed))")
    options = OutreachOptions.from_catalogue(catalogue if catalogue is not None else load_catalogue())
    ranges = block_ranges(config)
    first = draw_traits(replace(config, n_customers=ranges[0][1]), rng)
    schedule = CampaignSchedule.draw(config, rng)
    promo_days = rng.random(config.days) < config.promo_day_share
    per_chunk = len(ranges) if chunk_customers is None else max(1, chunk_customers // config.block_customers)
    total = config.days * len(ranges)
    for start in range(0, len(ranges), per_chunk):
        blocks = []
        for k in range(start, min(start + per_chunk, len(ranges))):
            lo, hi = ranges[k]
            cfg = replace(config, n_customers=hi - lo)
            g = rng if k == 0 else block_generator(rng, k)
            traits = first if k == 0 else draw_traits(cfg, g)
            done = k * config.days
            step = None if progress is None else (lambda d, _n, done=done: progress(done + d, total))
            blocks.append(simulate_block(cfg, options, traits, schedule, promo_days, g, offset=lo, progress=step))
        out = [combine_blocks(blocks, len(schedule.days))]
        del blocks
        yield out.pop()  # held by the caller only: a chunk the caller lets go is freed before the next one


def combine_blocks(blocks: list[tuple[Tables, dict]], n_campaigns: int) -> WorldChunk:
    """Consecutive blocks as one chunk: tables concatenated (event ids re-coded over all their customers),
    counts summed. One block is returned as it is."""
    if len(blocks) == 1:
        return WorldChunk(blocks[0][0], blocks[0][1], n_campaigns)
    parts = [b[0] for b in blocks]
    customers = pd.concat([p.customers for p in parts], ignore_index=True)
    ids = pd.Index(customers["customer_id"], dtype="str", name="customer_id")
    offsets = np.cumsum([0] + [len(p.customers) for p in parts])
    frames: dict[str, pd.DataFrame] = {"customers": customers}
    for table in _EVENT_TABLES:
        pieces = [getattr(p, table) for p in parts]
        codes = np.concatenate([f["customer_id"].cat.codes.to_numpy().astype(np.int64) + offsets[i]
                                for i, f in enumerate(pieces)])
        frame = pd.concat([f.assign(customer_id=0) for f in pieces], ignore_index=True)
        frame["customer_id"] = pd.Categorical.from_codes(codes, categories=ids)
        frames[table] = frame
    frames["truth"] = pd.concat([p.truth for p in parts], ignore_index=True)
    return WorldChunk(Tables(**frames), sum_counts([b[1] for b in blocks]), n_campaigns)


def sum_counts(counts: list[dict]) -> dict:
    """Block counts added up (the segment counts too)."""
    out: dict = {}
    for c in counts:
        for k, v in c.items():
            if isinstance(v, dict):
                inner = out.setdefault(k, {})
                for s, n in v.items():
                    inner[s] = inner.get(s, 0) + n
            else:
                out[k] = out.get(k, 0) + v
    return out


def world_manifest(cfg: SimConfig, n_campaigns: int, counts: dict) -> dict:
    """What the world is: simulator version, seed, time span, parameters and counts (totals over blocks;
    ``churned_alive`` becomes the label rate among the customers alive at the cutoff)."""
    shown = {k: v for k, v in counts.items() if k not in ("churned_alive", "segments")}
    alive = counts["alive_at_cutoff"]
    shown["churn_label_rate_alive"] = counts["churned_alive"] / alive if alive else None
    shown["segments"] = counts["segments"]
    manifest = {
        "simulator_version": SIM_VERSION,
        "seed": cfg.seed,
        "start": cfg.start_ts.isoformat(),
        "cutoff": cfg.cutoff_ts.isoformat(),
        "horizon_days": cfg.horizon_days,
        "end": (cfg.cutoff_ts + pd.Timedelta(days=cfg.horizon_days)).isoformat(),
        "params": cfg.manifest_params(),
        "campaigns": n_campaigns,
        "counts": shown,
    }
    n_blocks = len(block_ranges(cfg))
    if n_blocks > 1:
        manifest["blocks"] = {"count": n_blocks, "customers": cfg.block_customers}
    return manifest
