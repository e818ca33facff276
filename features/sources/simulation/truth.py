"""Closed-form ground truth of the simulated world: outreach effects and exact churn-label probabilities.

The simulator (:mod:`features.sources.simulation.world`) and its truth table share these functions, so the effect a
contact has in the simulated history is exactly the effect the truth reports at the evaluation cutoff.
"""

from __future__ import annotations

import re

import numpy as np

from features.contract.catalogue import NO_CONTACT, Catalogue
from features.contract.schema import OUTREACH_CHANNELS

SEGMENTS: tuple[str, ...] = ("persuadable", "sure_thing", "lost_cause", "sleeping_dog")
TRENDS: tuple[str, ...] = ("stable", "rising", "fading")
STAGES: tuple[str, ...] = ("know", "go_do", "buy")
PERSUADABLE, SURE_THING, LOST_CAUSE, SLEEPING_DOG = range(4)

_DEPTH = re.compile(r"(\d+)\s*$")


def discount_depth(offer: str) -> float:
    """The discount fraction of a discount offer, read from its name (``discount_20`` → 0.2; default 0.1)."""
    m = _DEPTH.search(offer)
    return int(m.group(1)) / 100.0 if m else 0.1


def piecewise_label_probability(
    ends: np.ndarray, log_mult: np.ndarray, h0: np.ndarray, lam: np.ndarray, cancel_p: float, horizon: float,
    *, lift_log_mult: np.ndarray | None = None, lifted: np.ndarray | None = None,
) -> np.ndarray:
    """Exact P(churn label = 1) when contact effects switch off at known times.

    ``ends`` (n × K) are the days (from the cutoff) at which each of K contact effects stops;
    ``log_mult`` (n × K) their log-hazard multipliers; the hazard is ``h0 · exp(Σ active effects)``,
    piecewise constant between the sorted ends. Active episodes arrive as a Poisson process with rate
    ``lam`` while the customer is alive; a churn leaves an explicit cancel with probability ``cancel_p``.
    ``lift_log_mult`` (n × K), with ``lifted`` (n) the part of ``lam`` it applies to (the visits): each
    effect's log multiplier of that part while it is active (a response to a contact).
    Label = 1 if a cancel happens within the horizon, or no active episode happens before
    ``min(churn time, horizon)``. With no effects this is the constant-hazard formula
    ``c(1-e^{-hH}) + (1-c) h/(h+λ) (1-e^{-(h+λ)H}) + e^{-(h+λ)H}``.
    """
    ends = np.clip(np.asarray(ends, np.float64), 0.0, horizon)
    log_mult = np.asarray(log_mult, np.float64)
    n = len(h0)
    pts = np.sort(np.column_stack([ends, np.full(n, float(horizon))]), axis=1)
    starts = np.column_stack([np.zeros(n), pts[:, :-1]])
    width = pts - starts
    active = ends[:, None, :] > starts[:, :, None]  # (n, segment, effect)
    h = h0[:, None] * np.exp((active * log_mult[:, None, :]).sum(axis=2))
    if lift_log_mult is None:
        rate = h + lam[:, None]
    else:
        lift = np.exp((active * np.asarray(lift_log_mult, np.float64)[:, None, :]).sum(axis=2))
        rate = h + (lam - lifted)[:, None] + lifted[:, None] * lift
    before = np.exp(-np.cumsum(np.column_stack([np.zeros(n), (rate * width)[:, :-1]]), axis=1))
    frac = np.where(rate > 0, h / np.where(rate > 0, rate, 1.0), 0.0)
    churn_before_touch = (before * frac * (1.0 - np.exp(-rate * width))).sum(axis=1)
    silent = np.exp(-(rate * width).sum(axis=1))
    p_churn = 1.0 - np.exp(-(h * width).sum(axis=1))
    return cancel_p * p_churn + (1.0 - cancel_p) * churn_before_touch + silent


def piecewise_churn_time(
    ends: np.ndarray, log_mult: np.ndarray, h0: np.ndarray, e: np.ndarray, horizon: float
) -> np.ndarray:
    """Invert the piecewise cumulative hazard at Exp(1) draws ``e``; ``inf`` if no churn within horizon."""
    ends = np.clip(np.asarray(ends, np.float64), 0.0, horizon)
    n = len(h0)
    pts = np.sort(np.column_stack([ends, np.full(n, float(horizon))]), axis=1)
    starts = np.column_stack([np.zeros(n), pts[:, :-1]])
    width = pts - starts
    active = ends[:, None, :] > starts[:, :, None]
    h = h0[:, None] * np.exp((active * np.asarray(log_mult)[:, None, :]).sum(axis=2))
    cum = np.cumsum(h * width, axis=1)
    k = np.minimum((cum < e[:, None]).sum(axis=1), pts.shape[1] - 1)
    r = np.arange(n)
    prev = np.where(k > 0, cum[r, np.maximum(k - 1, 0)], 0.0)
    t = starts[r, k] + (e - prev) / np.maximum(h[r, k], 1e-300)
    return np.where(e < cum[:, -1], t, np.inf)


def offer_fit(
    offer_kind: str,
    offer: str,
    *,
    price_sensitivity: np.ndarray,
    loyalty: np.ndarray,
    promoter: np.ndarray,
    stage: np.ndarray,
    troubled: np.ndarray,
) -> np.ndarray:
    """How well an offer suits each customer (≥ 0): drives clicks, redemptions and persuadables' response."""
    if offer_kind == "content":
        return 0.3 + 0.6 * (stage == 0) + 0.4 * troubled
    if offer_kind == "reward":
        return 0.3 + 0.8 * loyalty
    if offer_kind == "discount":
        return 2.5 * price_sensitivity**2 * (1.0 + 6.0 * discount_depth(offer))
    if offer_kind == "service":
        return 0.2 + 1.5 * troubled
    if offer_kind == "event":
        return 0.15 + 1.2 * promoter
    # a value contact ("none") or an offer kind this simulator does not know: a mild, uniform fit
    return 0.3 + 0.4 * troubled


def action_effects(
    catalogue: Catalogue,
    *,
    segment: np.ndarray,
    strength: np.ndarray,
    price_sensitivity: np.ndarray,
    loyalty: np.ndarray,
    promoter: np.ndarray,
    stage: np.ndarray,
    troubled: np.ndarray,
    cynicism: float,
    dog_effect: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per customer × contact action: (log-hazard reduction τ if the message is opened, offer fit).

    Column ``j`` is ``catalogue.actions[j + 1]`` (no contact excluded). Persuadables respond in
    proportion to offer fit; sure things barely; lost causes not at all; sleeping dogs are pushed away
    by any contact, more by discounts; a discount reads as a cynical sales attempt to loyal,
    price-insensitive customers (all segments but lost causes).
    """
    acts = catalogue.actions[1:]
    n = len(segment)
    tau = np.zeros((n, len(acts)))
    fit = np.zeros((n, len(acts)))
    cache: dict[str, np.ndarray] = {}
    for j, a in enumerate(acts):
        kind = str(catalogue.offers[a.offer].get("kind", "value_contact"))
        if a.offer not in cache:
            cache[a.offer] = offer_fit(
                kind,
                a.offer,
                price_sensitivity=price_sensitivity,
                loyalty=loyalty,
                promoter=promoter,
                stage=stage,
                troubled=troubled,
            )
        f = cache[a.offer]
        fit[:, j] = f
        is_disc = kind == "discount"
        t = np.select(
            [segment == PERSUADABLE, segment == SURE_THING, segment == LOST_CAUSE],
            [strength * f, 0.0 * f, 0.0],
            default=-(dog_effect + (0.3 if is_disc else 0.0)),
        )
        if is_disc:
            t = t - np.where(segment != LOST_CAUSE, cynicism * (1.0 - price_sensitivity) * loyalty, 0.0)
        tau[:, j] = t
    return tau, fit


def action_channel_index(catalogue: Catalogue) -> np.ndarray:
    """Index into OUTREACH_CHANNELS of each contact action's channel (no contact excluded)."""
    return np.array([OUTREACH_CHANNELS.index(a.channel) for a in catalogue.actions[1:]], dtype=np.int64)


def best_actions(ev: np.ndarray, allowed: np.ndarray, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Best allowed action per row (column 0 = no contact, always allowed; ties → the earlier column)."""
    masked = np.where(allowed, ev, -np.inf)
    masked[:, 0] = ev[:, 0]
    j = np.argmax(masked, axis=1)
    names = np.asarray(ids, dtype=object)[j]
    assert ids[0] == NO_CONTACT
    return names, masked[np.arange(len(j)), j]
