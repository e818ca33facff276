"""One block of the simulated world: the day loop over its customers, the cutoff, the horizon, and its tables.

:func:`simulate_block` walks day by day (vectorised over the block's customers) through ``cfg.days`` days of
history: engagement trends, a latent "troubled" state, intent stages, promotions, campaigns chosen by a
randomised logging policy (propensities recorded), reactions to them, and churn as a daily hazard; then freezes
the state at the cutoff and simulates the horizon (see :mod:`features.sources.simulation.world`). The campaign
schedule and the promotion days come from the world (:mod:`features.sources.simulation.blocks`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from features.contract.schema import Tables
from features.sources.simulation.activity import episode_types, shopping_episodes
from features.sources.simulation.at_cutoff import freeze_at_cutoff
from features.sources.simulation.campaigns import CampaignSchedule, OutreachOptions, run_campaign
from features.sources.simulation.codes import DAY
from features.sources.simulation.config import SimConfig
from features.sources.simulation.episodes import decorate, passive_touches
from features.sources.simulation.frames import (
    customer_ids,
    customers_frame,
    outreach_frame,
    touch_frame,
    truth_frame,
)
from features.sources.simulation.horizon import simulate_horizon
from features.sources.simulation.response import use_coupons
from features.sources.simulation.rows import TouchRows, assemble_touchpoints, cancel_rows
from features.sources.simulation.state import Episodes, WorldLog, WorldState
from features.sources.simulation.traits import Traits, log_hazard, loglam, rates
from features.sources.simulation.truth import SEGMENTS


def simulate_block(
    cfg: SimConfig,
    options: OutreachOptions,
    t: Traits,
    schedule: CampaignSchedule,
    promo_days: np.ndarray,
    rng: np.random.Generator,
    *,
    offset: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Tables, dict]:
    """One block of customers (``cfg.n_customers`` of them, rows ``offset`` on, traits ``t`` drawn): the day
    loop, the cutoff, the horizon and the tables, with the block's counts (summable over blocks)."""
    state = WorldState.initial(cfg, t, rng)
    log = WorldLog()
    campaign_of_day = schedule.index
    for d in range(cfg.days):
        signed = t.signup_day <= d
        if d in campaign_of_day:
            run_campaign(d, campaign_of_day[d], signed, cfg, options, t, state, log, rng)
        live = _churn(d, signed, cfg, t, state, log, rng)
        _trouble(t, state, rng)
        episodes = _activity(d, live, bool(promo_days[d]), cfg, t, state, log, rng)
        _advance_intent(d, episodes, t, state, rng)
        if progress is not None:
            progress(d + 1, cfg.days)
    _drop_unsubscribes_after_churn_or_cutoff(cfg, state, log)
    frozen = freeze_at_cutoff(cfg, options, t, state)
    label = simulate_horizon(cfg, t, state, frozen, log, rng)
    tp = _touchpoints(cfg, t, state, log, rng)

    ids = customer_ids(cfg.n_customers, start=offset)
    start_ns = cfg.start_ts.value
    end_sec = np.int64(cfg.days + cfg.horizon_days) * DAY
    loyalty_member = rng.random(cfg.n_customers) < 0.2 + 0.6 * t.loyalty
    customers = customers_frame(ids, start_ns, t, state.consent, loyalty_member)
    touchpoints = touch_frame(tp, ids, start_ns, options.offers, schedule.ids)
    outreach = outreach_frame(log.outreach, ids, start_ns, options.offers, schedule.ids)
    truth = truth_frame(ids, t, state, frozen, label, end_sec, options.catalogue)
    counts = {
        "customers": cfg.n_customers,
        "touchpoints": len(touchpoints),
        "touchpoints_before_cutoff": int((tp.sec < np.int64(cfg.days) * DAY).sum()),
        "outreach": len(outreach),
        "outreach_contacts": int((~outreach["holdout"]).sum()),
        "truth": len(truth),
        "alive_at_cutoff": int(frozen.alive.sum()),
        "churned_alive": int(label[frozen.alive].sum()),
        "segments": {s: int((t.segment == i).sum()) for i, s in enumerate(SEGMENTS)},
    }
    return Tables(customers=customers, touchpoints=touchpoints, outreach=outreach, truth=truth), counts


# ------------------------------------------------------------------------------- one day of history
def _churn(
    d: int,
    signed: np.ndarray,
    cfg: SimConfig,
    t: Traits,
    state: WorldState,
    log: WorldLog,
    rng: np.random.Generator,
) -> np.ndarray:
    """Churn at a random second of the day (a churner does nothing else that day); returns who lives on."""
    live = state.alive & signed
    effects = (state.eff * (state.eff_until > d)).sum(axis=1)
    p_die = 1.0 - np.exp(-np.exp(log_hazard(t, d, state.troubled) + effects))
    die = live & (rng.random(cfg.n_customers) < p_die)
    k = int(die.sum())
    if k:
        state.churn_sec[die] = d * DAY + rng.integers(0, DAY, k)
        state.alive[die] = False
        canc = np.flatnonzero(die)[rng.random(k) < cfg.cancel_probability]
        state.cancelled[canc] = True
        log.rows.append(cancel_rows(canc, state.churn_sec, pre=True))
    return live & ~die


def _trouble(t: Traits, state: WorldState, rng: np.random.Generator) -> None:
    """The latent troubled state: entered at the customer's rate, left after a month on average."""
    u = rng.random(len(state.troubled))
    state.troubled = np.where(state.troubled, u >= 1 / 30, u < t.trouble_in)


def _activity(
    d: int,
    live: np.ndarray,
    promo: bool,
    cfg: SimConfig,
    t: Traits,
    state: WorldState,
    log: WorldLog,
    rng: np.random.Generator,
) -> Episodes:
    """The day's active episodes of living customers, each at a random time before 22:00 UTC."""
    day_rates = rates(t, d, state.troubled, promo, cfg, state.running_lift(d) if cfg.responds else None)
    tot = day_rates.sum(axis=1)
    cnt = np.where(live, rng.poisson(tot), 0)
    idx = np.repeat(np.arange(cfg.n_customers), cnt)
    etype = episode_types(day_rates, tot, idx, rng)
    sec = d * DAY + rng.integers(0, 79_200, len(idx))
    episodes = shopping_episodes(
        cfg, t, idx, etype, sec, state.stage, state.troubled, promo=promo, pre=True, rng=rng
    )
    if cfg.real_discounts:
        use_coupons(d, episodes, state)
    log.episodes.append(episodes)
    state.last_active[idx] = d
    return episodes


def _advance_intent(d: int, episodes: Episodes, t: Traits, state: WorldState, rng: np.random.Generator) -> None:
    """Intent stage: know → go/do → buy, faster for engaged customers; a purchase starts a new cycle."""
    stage = state.stage
    adv = rng.random(len(stage))
    p_adv = np.where(stage == 0, 0.04, 0.05) * np.minimum(np.exp(loglam(t, d) - t.loglam_mu), 3.0)
    state.stage = np.where((stage < 2) & (adv < p_adv), stage + 1, stage)
    state.stage[episodes.cust[episodes.bought]] = 0


# ------------------------------------------------------------------------------------- after the loop
def _drop_unsubscribes_after_churn_or_cutoff(cfg: SimConfig, state: WorldState, log: WorldLog) -> None:
    """An unsubscribe that would fall after the customer's churn or after the cutoff never happened:
    the consent at the cutoff is exactly what the recorded log implies."""
    cutoff_sec = np.int64(cfg.days) * DAY
    for u in log.unsubs:
        lost = (u.sec >= cutoff_sec) | (u.sec > state.churn_sec[u.cust])
        state.consent[u.cust[lost], u.chan[lost]] = True


def _touchpoints(
    cfg: SimConfig, t: Traits, state: WorldState, log: WorldLog, rng: np.random.Generator
) -> TouchRows:
    """Every touch: the rows written so far, the episodes' touches and the passive ones, under the world's rules."""
    cutoff_sec = np.int64(cfg.days) * DAY
    end_sec = np.int64(cfg.days + cfg.horizon_days) * DAY
    rows = list(log.rows)
    rows.extend(decorate(Episodes.concat(log.episodes), t, rng, cutoff_sec, cfg.return_probability))
    rows.extend(passive_touches(t, cfg, rng, end_sec))
    return assemble_touchpoints(rows, t.signup_sec, state.churn_sec, state.cancelled, cutoff_sec, end_sec)


__all__ = ["simulate_block"]
