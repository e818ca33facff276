"""The engagement family: a personal omnichannel engagement index plus breadth, rhythm, trend and recency.

The index sums the customer's active touches, each weighted by its kind and depth (duration, pages,
help sought inside a visit) and decayed with age, and scales the log of that sum on the training
population so that it reads 0-100.
"""

from __future__ import annotations

import numpy as np

from features.builders.activity import active_counts, active_non_purchase_idx, exit_counts, purchase_times
from features.builders.base import FeatureBuilder, days_since
from features.builders.events import EventArrays, compiled
from features.builders.vocab_codes import ACTIVE_DIR, ACTIVE_KIND, N_CHANNELS, N_KINDS, C, K
from features.contract.schema import DAY_NS, KINDS

if compiled is not None:  # compiled with the shared kernel (at import), used when the block asks for it
    from features.builders.kernel_engagement import engagement_pass

# Default weight of one active touch of each kind in the engagement index (passive kinds and exit
# signals weigh nothing). Deeper commitments (events, reviews, purchases) outweigh light browsing.
DEFAULT_KIND_WEIGHTS: dict[str, float] = {
    "visit": 1.0,
    "page_view": 0.3,
    "search": 0.5,
    "filter": 0.5,
    "product_view": 0.5,
    "add_to_cart": 1.5,
    "purchase": 3.0,
    "return": 0.5,
    "service_contact": 1.0,
    "complaint": 1.0,
    "survey_response": 2.0,
    "event_attendance": 3.0,
    "social_like": 0.5,
    "social_comment": 1.5,
    "social_share": 2.5,
    "review": 2.5,
    "message_open": 0.3,
    "message_click": 1.0,
    "offer_redeemed": 2.0,
    "unsubscribe": 0.0,
    "cancel": 0.0,
}


def _channel_lut(*channels: str) -> np.ndarray:
    """Channel code -> member of ``channels`` (the trailing slot serves a missing channel, code -1)."""
    lut = np.zeros(N_CHANNELS + 1, dtype=bool)
    lut[[C[c] for c in channels]] = True
    return lut


ASSIST_CHANNELS = _channel_lut("chat", "call_center")
WEB_CHANNELS = _channel_lut("web", "app")


def _web_rows(ev: EventArrays, idx: np.ndarray) -> np.ndarray:
    """Web/app rows (ascending) of every customer owning a row of ``idx``: all that the search for the
    web touch nearest to each of those rows within its customer needs. Chats and calls are rare, so
    their customers' rows are far fewer than the block's."""
    if idx.size * 64 >= ev.m:
        return np.flatnonzero(WEB_CHANNELS.take(ev.channel))
    owners = np.unique(ev.cust[idx])
    start = np.searchsorted(ev.cust, owners, side="left")
    stop = np.searchsorted(ev.cust, owners, side="right")
    # Concatenated row ranges [start, stop) of those customers.
    lengths = stop - start
    rows = np.arange(int(lengths.sum())) + np.repeat(start - np.cumsum(lengths) + lengths, lengths)
    return rows.compress(WEB_CHANNELS.take(ev.channel[rows]))


class EngagementBuilder(FeatureBuilder):
    """Personal omnichannel engagement index plus breadth, rhythm, trend and recency of activity.

    Parameters
    ----------
    half_life_days : age (days) at which a touch counts half.
    kind_weights : overrides of :data:`DEFAULT_KIND_WEIGHTS` (weight of one active touch by kind).
    duration_weight : extra weight per ``log1p(minutes)`` of a touch's duration.
    pages_weight : extra weight per ``log1p(pages)`` of a touch.
    assisted_bonus : extra weight of a chat or call that happens inside a web/app visit.
    assisted_gap_minutes : how soon after the visit's previous touch a chat/call counts as inside it.
    scale_quantile : the training customer at this quantile of ``log1p(raw)`` gets index 100.
    recency_cap_days : days-since value for customers without activity (and the maximum).
    """

    family = "engagement"
    seed_idea = "personal omnichannel engagement index"

    def __init__(
        self,
        half_life_days: float = 30.0,
        kind_weights: dict | None = None,
        duration_weight: float = 0.5,
        pages_weight: float = 0.3,
        assisted_bonus: float = 1.0,
        assisted_gap_minutes: float = 30.0,
        scale_quantile: float = 0.99,
        recency_cap_days: float = 3650.0,
    ):
        self.half_life_days = half_life_days
        self.kind_weights = kind_weights
        self.duration_weight = duration_weight
        self.pages_weight = pages_weight
        self.assisted_bonus = assisted_bonus
        self.assisted_gap_minutes = assisted_gap_minutes
        self.scale_quantile = scale_quantile
        self.recency_cap_days = recency_cap_days

    def describe(self) -> list[tuple[str, str]]:
        return [
            (
                "engagement_index",
                "0-100: decayed, depth-weighted active touches, scaled on the training "
                f"population (its {self.scale_quantile:.0%} quantile = 100); "
                f"half-life {self.half_life_days:g} d",
            ),
            (
                "engagement_raw",
                "unscaled engagement: sum over active touches of kind weight x depth x 2^(-age/half-life)",
            ),
            ("active_touches", "active (inbound, non-passive) touches ever"),
            ("active_touches_7d", "active touches in the last 7 days"),
            ("active_touches_30d", "active touches in the last 30 days"),
            ("active_touches_90d", "active touches in the last 90 days"),
            ("active_days_30d", "distinct days with an active touch in the last 30 days"),
            ("active_days_90d", "distinct days with an active touch in the last 90 days"),
            ("breadth_channels", "distinct channels with an active touch ever"),
            ("breadth_channels_90d", "distinct channels with an active touch in the last 90 days"),
            (
                "active_between_purchases",
                "mean active touches per gap between consecutive purchases (0 with fewer than 2 purchases)",
            ),
            (
                "engagement_trend",
                "log(1 + active touches in the last 30 days) - log(1 + active touches per 30 "
                "days in the 60 days before): > 0 rising, < 0 fading",
            ),
            ("days_since_last_active", f"days since the last active touch (cap {self.recency_cap_days:g})"),
            ("assisted_visits", "chats/calls inside a web or app visit (a sign of deep engagement)"),
            ("unsubscribes", "unsubscribe events ever (exit signal)"),
            ("cancels", "cancel events ever (exit signal)"),
        ]

    def _check_params(self) -> None:
        if not self.half_life_days > 0:
            raise ValueError(f"half_life_days must be > 0, got {self.half_life_days!r}")
        if not 0 < self.scale_quantile <= 1:
            raise ValueError(f"scale_quantile must be in (0, 1], got {self.scale_quantile!r}")
        unknown = set(self.kind_weights or {}) - set(KINDS)
        if unknown:
            raise ValueError(f"kind_weights: unknown kinds {sorted(unknown)}; known: {list(KINDS)}")

    def _weights_lut(self) -> np.ndarray:
        w = dict(DEFAULT_KIND_WEIGHTS)
        w.update(self.kind_weights or {})
        lut = np.zeros(2 * N_KINDS)  # inbound kinds first, outbound all zero
        for k, i in K.items():
            lut[i] = float(w.get(k, 0.0)) if ACTIVE_KIND[i] else 0.0
        return lut

    def _compiled(self, ev: EventArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Assisted rows (ascending), assisted visits, active days (n, 3) and touches between purchases from the
        compiled pass (memoised: fit statistics and the block share it)."""

        def _run():
            first_p, last_p = purchase_times(ev)
            return engagement_pass(ev, ACTIVE_DIR, ASSIST_CHANNELS, WEB_CHANNELS, first_p, last_p, K["purchase"],
                                   int(self.assisted_gap_minutes * 60e9))

        return ev.memo(f"engagement_pass:{id(self)}", _run)

    def _assisted(self, ev: EventArrays) -> np.ndarray:
        """Rows (ascending) of active chats or calls within assisted_gap_minutes of a web/app touch of the same
        customer (before or after it: with equal timestamps the row order is arbitrary) = help sought inside a
        visit."""
        if ev.kernel and compiled is not None:
            return self._compiled(ev)[0]
        idx = np.flatnonzero(ASSIST_CHANNELS.take(ev.channel))
        idx = idx.compress(ev.active().take(idx))
        if not idx.size:
            return idx
        web = _web_rows(ev, idx)
        gap = int(self.assisted_gap_minutes * 60e9)
        inside = np.zeros(idx.size, dtype=bool)
        if web.size:
            j = np.searchsorted(web, idx)
            for nb in (web[np.maximum(j - 1, 0)], web[np.minimum(j, web.size - 1)]):
                inside |= (ev.cust[nb] == ev.cust[idx]) & (np.abs(ev.ts[idx] - ev.ts[nb]) <= gap)
        return idx.compress(inside)

    def _raw(self, ev: EventArrays) -> tuple[np.ndarray, np.ndarray]:
        """Raw decayed engagement per customer and the assisted-visit counts.

        The float arithmetic is numpy's on both paths (the kernel finds the assisted rows only), so the sums are
        the same to the last bit."""
        lut = self._weights_lut()
        w = lut.take(ev.kind_dir)
        # Depth only where the column has a value (durations and pages sit on a minority of rows).
        for name, weight, scale in (
            ("duration_s", self.duration_weight, 1 / 60),
            ("pages", self.pages_weight, 1.0),
        ):
            col = ev.numeric(name)
            if col is None or not weight:
                continue
            idx = np.flatnonzero(col > 0)
            w[idx] *= 1.0 + weight * np.log1p(col[idx] * scale)
        assisted = self._assisted(ev)
        if assisted.size and self.assisted_bonus:
            w[assisted] += self.assisted_bonus
        decay = ev.age_days() * (-1.0 / self.half_life_days)
        w *= np.exp2(decay, out=decay)
        raw = np.bincount(ev.cust, weights=w, minlength=ev.n)
        if ev.kernel and compiled is not None:
            return raw, self._compiled(ev)[1]
        return raw, np.bincount(ev.cust[assisted], minlength=ev.n)

    def _fit_stats(self, ev: EventArrays) -> dict[str, np.ndarray]:
        return {"raw": self._raw(ev)[0]}

    def _fit_from(self, stats: dict[str, np.ndarray]) -> None:
        lr = np.log1p(stats["raw"])
        lr = lr[lr > 0]
        self.scale_ = float(np.quantile(lr, self.scale_quantile)) if lr.size else 1.0
        if self.scale_ <= 0:
            self.scale_ = 1.0

    def _block(self, ev: EventArrays) -> np.ndarray:
        raw, assisted = self._raw(ev)
        ac = active_counts(ev)
        if ev.kernel and compiled is not None:
            _, _, days, n_between = self._compiled(ev)
            between = n_between / np.maximum(ev.inbound_kind("purchase") - 1, 1)
        else:
            days, between = self._days_between(ev)
        acc = ev.active_channel_counts()
        # Both windows as counts per 30 days with the same +1 smoothing, so no activity at all gives 0.
        trend = np.log1p(ac[:, 1]) - np.log1p((ac[:, 2] - ac[:, 1]) / 2.0)
        unsub, cancel = exit_counts(ev)
        index = 100.0 * np.clip(np.log1p(raw) / self.scale_, 0.0, 1.0)
        return np.column_stack(
            [
                index,
                raw,
                ac[:, 3],
                ac[:, 0],
                ac[:, 1],
                ac[:, 2],
                days[:, 1],
                days[:, 2],
                (acc[:, :, 3] > 0).sum(1),  # breadth: distinct channels, ever and in 90 days
                (acc[:, :, 2] > 0).sum(1),
                between,
                trend,
                days_since(ev, ev.last_active_ts(), self.recency_cap_days),
                assisted,
                unsub,
                cancel,
            ]
        ).astype(np.float64, copy=False)

    def _days_between(self, ev: EventArrays) -> tuple[np.ndarray, np.ndarray]:
        """numpy path: active days (n, 3 cumulative: 7d, 30d, 90d) and mean active touches per purchase gap."""
        act = ev.active_idx()
        # Active days: a new (customer, day) pair among time-ordered active rows in the last 90 days.
        idx = act.compress(ev.window_bucket()[act] <= 2)
        c, day = ev.cust[idx], ev.ts[idx] // DAY_NS
        new = np.flatnonzero(np.r_[True, (c[1:] != c[:-1]) | (day[1:] != day[:-1])]) if idx.size else idx
        b = ev.window_bucket()[idx[new]]
        days = np.bincount(c[new].astype(np.int64) * 3 + b, minlength=ev.n * 3).reshape(ev.n, 3).cumsum(1)
        # Active touches (other than purchases) strictly between the first and the last purchase, per gap.
        n_p = ev.inbound_kind("purchase")
        between = np.zeros(ev.n)
        rep = n_p >= 2
        if rep.any():
            first_p, last_p = purchase_times(ev)
            idx = active_non_purchase_idx(ev)
            idx = idx.compress(rep.take(ev.cust[idx]))
            c, t = ev.cust[idx], ev.ts[idx]
            inside = (t > first_p.take(c)) & (t < last_p.take(c))
            between = np.bincount(c.compress(inside), minlength=ev.n) / np.maximum(n_p - 1, 1)
        return days, between
