"""Closed-form campaign outcomes over a window after the cutoff: a visit, a purchase, and spend.

A campaign objective (visit, conversion, spend, margin) is judged on what a customer does in the
``objective_days`` after a contact. While alive, a customer's visits (web, app, store episodes) arrive as a
Poisson process whose rate is piecewise constant (a running response multiplies it), each visit buys with
the probability of the customer's intent stage, and churn is a piecewise-constant hazard; after the cutoff
the intent stage stays frozen and there are no promotions, exactly as the simulator's label horizon
runs. Over the pieces these give, in closed form:

- P(at least one visit before churn within the window), the same for a purchase;
- the expected number of purchases, hence expected spend (the amount paid: list price less discount, as
  purchase rows record it), counting a coupon that the first purchase within its validity uses
  (:mod:`features.sources.simulation.response`). A margin objective (``margin × spend − contact cost``)
  follows from spend.

Amounts are rounded to cents when drawn; the expectations here are of the unrounded amounts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.sources.simulation.activity import AMOUNT_SIGMA, COUPON_DEPTH


@dataclass(frozen=True)
class Pieces:
    """The window cut where an effect starts or stops: widths, churn hazard and event rate (customers × pieces)."""

    width: np.ndarray
    hazard: np.ndarray
    rate: np.ndarray

    @classmethod
    def build(
        cls,
        ends: np.ndarray,
        hazard_log_mult: np.ndarray,
        rate_log_mult: np.ndarray,
        h0: np.ndarray,
        rate0: np.ndarray,
        horizon: float,
    ) -> Pieces:
        """Effects ``k`` (columns) active from 0 to ``ends[:, k]``, with log multipliers of hazard and rate."""
        ends = np.clip(np.asarray(ends, np.float64), 0.0, horizon)
        n = len(h0)
        pts = np.sort(np.column_stack([ends, np.full(n, float(horizon))]), axis=1)
        starts = np.column_stack([np.zeros(n), pts[:, :-1]])
        active = ends[:, None, :] > starts[:, :, None]  # (n, piece, effect)
        hazard = h0[:, None] * np.exp((active * np.asarray(hazard_log_mult)[:, None, :]).sum(axis=2))
        rate = rate0[:, None] * np.exp((active * np.asarray(rate_log_mult)[:, None, :]).sum(axis=2))
        return cls(width=pts - starts, hazard=hazard, rate=rate)

    def scaled(self, factor: np.ndarray) -> Pieces:
        """The same pieces with the event rate multiplied by ``factor`` per customer (visits → purchases)."""
        return Pieces(self.width, self.hazard, self.rate * factor[:, None])


def _shifted_cumsum(x: np.ndarray) -> np.ndarray:
    """Per row, the sum of the earlier pieces (0 for the first)."""
    return np.column_stack([np.zeros(len(x)), np.cumsum(x, axis=1)[:, :-1]])


def first_event_probability(p: Pieces) -> np.ndarray:
    """P(at least one event before churn within the window)."""
    total = p.rate + p.hazard
    before = np.exp(-_shifted_cumsum(total * p.width))
    frac = np.divide(p.rate, total, out=np.zeros_like(total), where=total > 0)
    return (before * frac * -np.expm1(-total * p.width)).sum(axis=1)


def expected_events(p: Pieces) -> np.ndarray:
    """Expected number of events before churn within the window."""
    alive = np.exp(-_shifted_cumsum(p.hazard * p.width))
    hw = p.hazard * p.width
    # time alive within each piece: (1 - e^{-h w}) / h, which tends to w as h -> 0
    stay = np.where(hw > 1e-12, -np.expm1(-hw) / np.where(p.hazard > 0, p.hazard, 1.0), p.width)
    return (p.rate * alive * stay).sum(axis=1)


@dataclass(frozen=True)
class Shopper:
    """What purchases in the window depend on, per customer (arrays over customers)."""

    buy_prob: np.ndarray  # chance a visit buys (intent stage frozen, no promotion)
    order_value: np.ndarray  # expected list price of a purchase
    coupon_rate: np.ndarray  # chance a purchase carries an ordinary coupon (of COUPON_DEPTH)


OUTCOMES: tuple[str, ...] = ("p_visit", "p_buy", "spend")  # truth columns ``<outcome>__<action>``


@dataclass(frozen=True)
class WindowOutcomes:
    """A customer's expected campaign outcomes in the window (arrays over customers)."""

    p_visit: np.ndarray
    p_buy: np.ndarray
    spend: np.ndarray


def window_outcomes(
    visits: Pieces, shopper: Shopper, coupon: np.ndarray | None = None, coupon_visits: Pieces | None = None
) -> WindowOutcomes:
    """Outcomes given the window's pieces; ``coupon`` (depth per customer) is used by the first purchase in
    ``coupon_visits`` (the same pieces cut at the coupon's expiry)."""
    buys = visits.scaled(shopper.buy_prob)
    n_buy = expected_events(buys)
    usual = shopper.coupon_rate * COUPON_DEPTH  # expected discount of a purchase without a coupon of ours
    discount = usual * n_buy
    if coupon is not None and coupon_visits is not None:
        with_coupon = shopper.coupon_rate * np.maximum(COUPON_DEPTH, coupon) + (1 - shopper.coupon_rate) * coupon
        first = first_event_probability(coupon_visits.scaled(shopper.buy_prob))
        discount = discount + np.where(coupon > 0, (with_coupon - usual) * first, 0.0)
    return WindowOutcomes(
        p_visit=first_event_probability(visits),
        p_buy=first_event_probability(buys),
        spend=shopper.order_value * (n_buy - discount),
    )


def mean_amount_factor() -> float:
    """E[exp(N(0, AMOUNT_SIGMA²))]: the mean of a purchase's log-normal draw around its order value."""
    return float(np.exp(AMOUNT_SIGMA**2 / 2))
