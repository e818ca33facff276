"""A simulated customer base that knows its own truth: traits, touchpoints, outreach, churn and exact effects.

``simulate_world(config, rng)`` draws latent traits per customer, then walks day by day (vectorised
over customers) through ``config.days`` days of history: engagement trends, a latent "troubled" state,
intent stages, promotions, campaigns chosen by a randomised logging policy (propensities recorded),
reactions to them, and churn as a daily hazard. At the evaluation cutoff (start + days) the state is
frozen and ``horizon_days`` more days are simulated in continuous time with NO outreach, so realised
labels exist and the truth is exact: ``truth`` holds, for every customer and catalogue action, the
closed-form probability of the churn label (:func:`features.sources.simulation.truth.piecewise_label_probability`)
and the expected value net of cost. Feature code never reads ``truth``.

The draws of the random Generator keep one fixed order (traits, campaign days, promotion days, the days
in order, the horizon, then touches), so the same seed always gives the same bytes. A world larger than
``config.block_customers`` is simulated in blocks of customers that share the campaign and promotion days
(:mod:`features.sources.simulation.blocks`), so it can also be produced a chunk of blocks at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from features.contract.catalogue import Catalogue
from features.contract.schema import Tables
from features.sources.simulation.blocks import world_chunks, world_manifest
from features.sources.simulation.config import SimConfig
from features.sources.simulation.history import simulate_block


def simulate_world(
    config: SimConfig,
    rng: np.random.Generator,
    *,
    catalogue: Catalogue | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Tables:
    """Simulate customers, touchpoints, outreach and the exact truth at ``config.cutoff_ts``.

    ``catalogue`` (default: the packaged one) defines the outreach actions of the logging policy and
    the truth's columns. Deterministic given the Generator's state. ``progress(done, total)``, when given,
    is called after each simulated day (the days before the cutoff are nearly all of the time). Worlds larger
    than ``config.block_customers`` are simulated block by block (:mod:`features.sources.simulation.blocks`).
    """
    (chunk,) = world_chunks(config, rng, catalogue=catalogue, progress=progress)
    return chunk.tables.with_(meta={"manifest": world_manifest(config, chunk.n_campaigns, chunk.counts)})


__all__ = ["simulate_block", "simulate_world"]
