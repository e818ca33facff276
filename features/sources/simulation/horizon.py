"""The label horizon: ``horizon_days`` after the cutoff, simulated in continuous time with no outreach.

Churn times are drawn by inverting the same piecewise hazard the truth integrates (logged contacts' effects
still switch off on schedule), so realised labels are draws from exactly the probabilities the truth reports.
"""

from __future__ import annotations

import numpy as np

from features.sources.simulation.activity import episode_types, shopping_episodes
from features.sources.simulation.at_cutoff import CutoffTruth
from features.sources.simulation.codes import DAY
from features.sources.simulation.config import SimConfig
from features.sources.simulation.rows import cancel_rows
from features.sources.simulation.state import WorldLog, WorldState
from features.sources.simulation.traits import Traits
from features.sources.simulation.truth import piecewise_churn_time


def simulate_horizon(
    cfg: SimConfig,
    t: Traits,
    state: WorldState,
    frozen: CutoffTruth,
    log: WorldLog,
    rng: np.random.Generator,
) -> np.ndarray:
    """Churn and activity after the cutoff (written to ``state`` and ``log``); returns the churn labels.

    Label 1: churned with an explicit cancel, or no active episode before the churn or the horizon's end
    (customers already gone at the cutoff count as churned).
    """
    horizon = cfg.horizon_days
    cutoff_sec = np.int64(cfg.days) * DAY
    ac = np.flatnonzero(frozen.alive)
    churn_at = piecewise_churn_time(
        frozen.ends[ac], state.eff[ac], frozen.h0[ac], rng.exponential(1.0, len(ac)), horizon
    )
    dies = churn_at < horizon
    span = np.minimum(churn_at, horizon)
    cnt = rng.poisson(frozen.lam[ac] * span)
    idx = np.repeat(ac, cnt)
    when = rng.random(len(idx)) * np.repeat(span, cnt)
    etype = episode_types(frozen.rates, frozen.lam, idx, rng)
    sec = cutoff_sec + np.floor(when * DAY).astype(np.int64)
    log.episodes.append(
        shopping_episodes(cfg, t, idx, etype, sec, state.stage, state.troubled, promo=False, pre=False, rng=rng)
    )
    state.churn_sec[ac[dies]] = cutoff_sec + np.floor(churn_at[dies] * DAY).astype(np.int64)
    cancelled = ac[dies][rng.random(int(dies.sum())) < cfg.cancel_probability]
    state.cancelled[cancelled] = True
    log.rows.append(cancel_rows(cancelled, state.churn_sec, pre=False))
    label = np.ones(cfg.n_customers, np.int8)
    label[ac] = ((cnt == 0) | np.isin(ac, cancelled)).astype(np.int8)
    return label
