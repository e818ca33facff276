"""A customer's response to an opened contact beyond its churn effect: more visits for a while, and a discount
taken off the next purchase.

Only worlds with ``response_lift > 0`` or ``real_discounts`` have responses (the default retention world has
neither). An opened contact multiplies the customer's visit rate (web, app, store) by
``exp(response_lift × segment response × min(offer fit, FIT_CAP))`` for ``response_days``; an opened discount
offer becomes a coupon that the next purchase within ``response_days`` uses (the better of it and any other
discount of that purchase). The day loop and the truth at the cutoff read the same functions, so the
effect a logged contact had is the effect the truth reports.
"""

from __future__ import annotations

import numpy as np

from features.sources.simulation.config import SimConfig
from features.sources.simulation.state import Episodes, WorldState
from features.sources.simulation.traits import Traits

# How each segment's visits respond (SEGMENTS order): persuadables most, sure things some, lost causes
# hardly, sleeping dogs stay away.
RESPONSE_BY_SEGMENT = np.array([1.0, 0.6, 0.2, -0.6])
FIT_CAP = 2.0  # offer fit beyond this adds no more visits


def visit_lift(fit: np.ndarray, segment: np.ndarray, cfg: SimConfig) -> np.ndarray:
    """Log visit-rate multiplier of an opened contact: ``fit`` per customer (1-D) or customers × actions."""
    seg = RESPONSE_BY_SEGMENT[segment]
    if np.ndim(fit) == 2:
        seg = seg[:, None]
    return cfg.response_lift * seg * np.minimum(fit, FIT_CAP)


def coupon_depths(act_depth: np.ndarray, cfg: SimConfig) -> np.ndarray:
    """Per contact action, the discount an opened contact gives on the next purchase (0: none).

    ``act_depth``: each action's discount depth, NaN for an action that is not a discount.
    """
    if not cfg.real_discounts:
        return np.zeros(len(act_depth))
    return np.nan_to_num(act_depth, nan=0.0)


def start_responses(
    d: int,
    cust: np.ndarray,
    col: np.ndarray,
    fit: np.ndarray,
    opened: np.ndarray,
    cfg: SimConfig,
    act_depth: np.ndarray,
    t: Traits,
    state: WorldState,
) -> None:
    """The responses of customers ``cust`` who opened a contact (action column ``col``) on day ``d``;
    ``act_depth``: each action's discount depth (NaN: not a discount)."""
    if not cfg.responds:
        return
    o, c, f = cust[opened], col[opened], fit[opened]
    state.lift[o] = visit_lift(f, t.segment[o], cfg)
    state.lift_until[o] = d + cfg.response_days
    depth = coupon_depths(act_depth, cfg)[c]
    has = depth > 0
    state.coupon[o[has]] = depth[has]
    state.coupon_until[o[has]] = d + cfg.response_days


def use_coupons(d: int, episodes: Episodes, state: WorldState) -> None:
    """Each customer's first purchase of day ``d`` uses their unexpired coupon (which is then spent)."""
    holds = (state.coupon_until > d)[episodes.cust]
    b = np.flatnonzero(episodes.bought & holds)
    if not len(b):
        return
    b = b[np.lexsort((episodes.sec[b], episodes.cust[b]))]
    first = b[np.r_[True, episodes.cust[b][1:] != episodes.cust[b][:-1]]]
    c = episodes.cust[first]
    episodes.discount[first] = np.maximum(episodes.discount[first], state.coupon[c])
    state.coupon_until[c] = -1
