"""Customer-initiated activity: episodes (visits, sessions, service contacts...) drawn from the day's rates.

The day loop and the label horizon both draw episodes this way; an episode is expanded into its touches
only at the end (:mod:`features.sources.simulation.episodes`).
"""

from __future__ import annotations

import numpy as np

from features.sources.simulation.codes import N_TYPES, STORE
from features.sources.simulation.config import SimConfig
from features.sources.simulation.state import Episodes
from features.sources.simulation.traits import Traits

BUY_BY_STAGE = np.array([0.04, 0.12, 0.35])  # chance a shopping episode buys, by intent stage
COUPON_RATE = 0.1  # × price sensitivity: chance that a purchase outside promotions carries a coupon
COUPON_DEPTH = 0.1  # that coupon's discount
AMOUNT_SIGMA = 0.35  # log-normal spread of a purchase's list price around the customer's order value


def episode_types(rates: np.ndarray, tot: np.ndarray, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The type of each episode of customers ``idx``, drawn in proportion to their rates."""
    cum = np.cumsum(rates[idx], axis=1)
    u = rng.random(len(idx)) * tot[idx]
    return np.minimum((u[:, None] >= cum).sum(axis=1), N_TYPES - 1)


def buy_prob(t: Traits, idx: np.ndarray, stage: np.ndarray, promo: bool, cfg: SimConfig) -> np.ndarray:
    """Chance that a shopping episode of customers ``idx`` at intent ``stage`` ends in a purchase."""
    p = BUY_BY_STAGE[stage] * t.buy_freq[idx]
    if promo:
        p = p * (1.0 + cfg.promo_boost * t.price_sens[idx])
    return np.clip(p, 0.0, 0.9)


def purchase_discount(t: Traits, idx: np.ndarray, promo: bool, rng: np.random.Generator) -> np.ndarray:
    """The discount of each purchase: a sitewide promotion's, or now and then a coupon."""
    if promo:
        return rng.choice(np.array([0.1, 0.2, 0.3]), size=len(idx))
    coupon = rng.random(len(idx)) < COUPON_RATE * t.price_sens[idx]
    return np.where(coupon, COUPON_DEPTH, 0.0)


def shopping_episodes(
    cfg: SimConfig,
    t: Traits,
    idx: np.ndarray,
    etype: np.ndarray,
    sec: np.ndarray,
    stage: np.ndarray,
    troubled: np.ndarray,
    *,
    promo: bool,
    pre: bool,
    rng: np.random.Generator,
) -> Episodes:
    """Episodes of customers ``idx`` (types and start times drawn), with whether a visit or session buys."""
    st = stage[idx]
    bought = (etype <= STORE) & (rng.random(len(idx)) < buy_prob(t, idx, st, promo, cfg))
    disc = np.where(bought, purchase_discount(t, idx, promo, rng), np.nan)
    return Episodes(
        cust=idx,
        sec=sec,
        etype=etype,
        stage=st,
        troubled=troubled[idx],
        bought=bought,
        discount=disc,
        pre=np.full(len(idx), pre),
    )
