"""Customers' latent traits, and what they imply on any day: activity rates and churn hazard.

:func:`draw_traits` draws every customer's fixed traits once; the functions below read them (and the
day's troubled state) to give the rates and probabilities the day loop and the horizon draw from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.sources.simulation.codes import DAY, N_PRODUCTS
from features.sources.simulation.config import SimConfig
from features.sources.simulation.truth import LOST_CAUSE, PERSUADABLE

BASE_ACTIVITY = 0.04  # median web/app/store visits per day
LOST_HAZARD = -5.5  # log daily hazard of a lost cause after onset (before engagement and trouble terms)


@dataclass(frozen=True)
class Traits:
    """Fixed per-customer traits (arrays over customers; ``pref`` and ``consent`` over customers × channels)."""

    loglam0: np.ndarray  # log activity rate at the start
    trend: np.ndarray  # index into TRENDS
    trend_sign: np.ndarray
    trend_rate: np.ndarray  # log-engagement change per year
    pref: np.ndarray  # chance of opening a message, per outreach channel
    consent: np.ndarray  # consent per outreach channel at signup
    app_share: np.ndarray
    store_share: np.ndarray
    price_sens: np.ndarray
    aov: np.ndarray  # average order value
    buy_freq: np.ndarray
    promoter: np.ndarray
    trouble_in: np.ndarray  # daily chance of falling into the troubled state
    survey_resp: np.ndarray
    attend: np.ndarray
    loyalty: np.ndarray  # how much of a habit buying here is, in (0, 1)
    segment: np.ndarray  # index into SEGMENTS
    strength: np.ndarray  # a persuadable's responsiveness
    seg_hazard: np.ndarray
    lost_hazard: np.ndarray
    onset_day: np.ndarray  # the day a lost cause decides to leave
    fav_product: np.ndarray
    region: np.ndarray
    signup_sec: np.ndarray
    signup_day: np.ndarray
    loglam_mu: np.ndarray


def draw_traits(cfg: SimConfig, rng: np.random.Generator) -> Traits:
    """Every customer's traits (the draws keep their order: same seed, same world)."""
    n = cfg.n_customers
    log_base = np.log(BASE_ACTIVITY * cfg.activity_scale)
    loglam0 = log_base + rng.normal(0.0, 0.7, n)
    trend = rng.choice(3, size=n, p=[0.5, 0.2, 0.3])
    trend_rate = rng.uniform(0.5, 1.5, n)
    primary = rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])
    pref = rng.beta(1.2, 7.0, (n, 4))
    pref[np.arange(n), primary] = rng.beta(6.0, 3.0, n)
    p_consent = np.clip(np.array([0.45, 0.25, 0.3, 0.15]) + 0.5 * pref, 0.0, 0.95)
    secondary = np.arange(4)[None, :] != primary[:, None]
    consent = rng.random((n, 4)) < p_consent * np.where(secondary, cfg.secondary_consent_scale, 1.0)
    app_share = np.clip(np.where(primary == 2, 0.75, 0.15) + rng.normal(0, 0.1, n), 0.02, 0.95)
    store_share = rng.beta(1.5, 6.0, n)
    price_sens = rng.beta(2.0, 3.0, n)
    aov = np.exp(np.log(60.0) + rng.normal(0.0, 0.5, n))
    buy_freq = np.exp(rng.normal(0.0, 0.4, n))
    promoter = rng.beta(1.5, 4.0, n)
    trouble_in = np.exp(np.log(1 / 250) + rng.normal(0.0, 0.7, n))
    z_loyal = (loglam0 - loglam0.mean()) / 0.7 + np.log(buy_freq) / 0.4
    segment = _draw_segment(loglam0, log_base, trend, trouble_in, price_sens, promoter, cfg.segment_shift, rng)
    strength = rng.uniform(cfg.persuadable_strength[0], cfg.persuadable_strength[1], n)
    # Lost causes have decided to leave at an onset day late in the history: from then on their
    # engagement collapses and their hazard jumps, so they sit at the top of churn risk at the cutoff.
    onset_day = np.where(
        segment == LOST_CAUSE,
        rng.integers(max(cfg.days - 180, 0), max(cfg.days - 20, 1), n),
        np.iinfo(np.int64).max,
    )
    fav_product = rng.integers(0, N_PRODUCTS, n)
    region = rng.choice(4, size=n)
    signup_sec = _draw_signup(cfg, rng)
    return Traits(
        loglam0=loglam0,
        trend=trend,
        trend_sign=np.array([0.0, 1.0, -1.0])[trend],
        trend_rate=trend_rate,
        pref=pref,
        consent=consent,
        app_share=app_share,
        store_share=store_share,
        price_sens=price_sens,
        aov=aov,
        buy_freq=buy_freq,
        promoter=promoter,
        # persuadables waver: they fall into the troubled state more often (and can be won back)
        trouble_in=np.where(segment == PERSUADABLE, 1.5, 1.0) * trouble_in,
        survey_resp=np.clip(0.1 + 0.4 * promoter, 0.0, 0.9),
        attend=np.clip(0.05 + 0.5 * promoter, 0.0, 0.9),
        loyalty=1.0 / (1.0 + np.exp(-z_loyal / 1.4)),
        segment=segment,
        strength=strength,
        seg_hazard=np.array([-6.5, -8.0, -7.0, -7.4])[segment] + np.log(cfg.churn_scale),
        lost_hazard=np.full(n, LOST_HAZARD + np.log(cfg.churn_scale)),
        onset_day=onset_day,
        fav_product=fav_product,
        region=region,
        signup_sec=signup_sec,
        signup_day=np.floor_divide(signup_sec, DAY),
        loglam_mu=np.full(n, log_base),
    )


def _draw_segment(
    loglam0: np.ndarray,
    log_base: float,
    trend: np.ndarray,
    trouble_in: np.ndarray,
    price_sens: np.ndarray,
    promoter: np.ndarray,
    shift: tuple[float, float, float, float],
    rng: np.random.Generator,
) -> np.ndarray:
    """Each customer's uplift segment (SEGMENTS order), tied to behaviour so it can be learned from it;
    ``shift`` moves each segment's logit (a scenario's mix of segments)."""
    z_eng = (loglam0 - log_base) / 0.7
    z_tr = (np.log(trouble_in) - np.log(1 / 250)) / 0.7
    fading, rising, stable = trend == 2, trend == 1, trend == 0
    logits = np.column_stack(
        [
            -1.0 + 1.6 * fading + 0.8 * z_tr + 3.0 * (price_sens - 0.4),  # persuadable
            0.4 + 0.8 * z_eng + 0.5 * rising + 0.8 * (promoter - 0.27),  # sure thing
            -1.2 + 1.4 * fading - 0.8 * z_eng + 0.5 * z_tr,  # lost cause
            -0.6 - 0.3 * z_eng + 0.5 * stable - 1.0 * (promoter - 0.27),  # sleeping dog
        ]
    )
    return np.argmax(logits + np.asarray(shift, np.float64) + rng.gumbel(size=(len(loglam0), 4)), axis=1)


def _draw_signup(cfg: SimConfig, rng: np.random.Generator) -> np.ndarray:
    """Signup second: new customers during the history, the others up to five years before it."""
    n = cfg.n_customers
    new = rng.random(n) < cfg.new_customer_share
    signup_day = np.where(new, rng.integers(0, max(cfg.days - 30, 1), n), -rng.integers(30, 1800, n))
    return signup_day.astype(np.int64) * DAY + rng.integers(0, DAY, n)


def declining(t: Traits, day: float) -> np.ndarray:
    """Whether a lost cause has passed the day it decided to leave."""
    return day >= t.onset_day


def loglam(t: Traits, day: float) -> np.ndarray:
    """Log activity rate on ``day``: the start level, its trend, and a collapse after a lost cause's onset."""
    return t.loglam0 + t.trend_sign * t.trend_rate * (day / 365.0) - 1.0 * declining(t, day)


def log_hazard(t: Traits, day: float, troubled: np.ndarray) -> np.ndarray:
    """Log daily churn hazard without outreach: segment level, low/fading engagement, troubled state."""
    z = (loglam(t, day) - t.loglam_mu) / 0.7
    return np.where(declining(t, day), t.lost_hazard, t.seg_hazard) - 0.35 * z + 1.2 * troubled


def rates(
    t: Traits, day: float, troubled: np.ndarray, promo: bool, cfg: SimConfig, lift: np.ndarray | None = None
) -> np.ndarray:
    """Poisson rates of the active episode types (customers × 8); ``lift``: log multiplier of the visit rate
    (web, app, store) from a running response to a contact (``None``: no response)."""
    lam = np.exp(loglam(t, day))
    visit = lam * (1.0 + (cfg.promo_boost * t.price_sens if promo else 0.0)) * (1 - 0.2 * troubled)
    if lift is not None:
        visit = visit * np.exp(lift)
    online = visit * (1.0 - t.store_share)
    return np.column_stack(
        [
            online * (1.0 - t.app_share),
            online * t.app_share,
            visit * t.store_share,
            (0.006 + 0.04 * troubled) * 0.6 * cfg.activity_scale,
            (0.006 + 0.04 * troubled) * 0.4 * cfg.activity_scale,
            0.5 * lam * t.promoter,
            cfg.survey_rate * np.clip(t.survey_resp + 0.2 * troubled, 0.0, 0.95),
            cfg.event_invite_rate * t.attend,
        ]
    )
