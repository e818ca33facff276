"""The behavioural feature families: engagement, service/social, intent, ladders, value, channels.

Each family is a :class:`~features.builders.base.FeatureBuilder` (scikit-learn estimator contract)
computing its columns from the shared :class:`~features.builders.events.EventArrays` with ``np.bincount`` on
combined (customer x category) keys. Aggregates several families share (counts by kind and window,
micro-moment counts, purchase times) are memoised on the block, so a pipeline computes them once.
Static customer attributes live in :mod:`features.builders.static`.
"""

from __future__ import annotations

import numpy as np

from features.builders.base import (
    INT_MIN,
    FeatureBuilder,
    days_since,
    safe_div,
    smoothed_rate,
)
from features.builders.events import (
    ACTIVE_KIND,
    DAY_NS,
    KINDS,
    N_CHANNELS,
    N_KINDS,
    N_OUT,
    TOPICS,
    C,
    EventArrays,
    K,
    T,
    cumulate_windows,
    kind_dir_lut,
)
from features.contract.schema import (
    DEVICES,
    OUTREACH_CHANNELS,
    OUTREACH_TO_TOUCH_CHANNEL,
    REFERRERS,
)

WINDOWS = {"7d": 0, "30d": 1, "90d": 2}
ALL = 3

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

MOMENTS: tuple[str, ...] = ("know", "go", "do", "buy")


def _channel_lut(*channels: str) -> np.ndarray:
    """Channel code -> member of ``channels`` (the trailing slot serves a missing channel, code -1)."""
    lut = np.zeros(N_CHANNELS + 1, dtype=bool)
    lut[[C[c] for c in channels]] = True
    return lut


ASSIST_CHANNELS = _channel_lut("chat", "call_center")
WEB_CHANNELS = _channel_lut("web", "app")


# ---- shared block-level aggregates (memoised) ----------------------------------------------------
def active_counts(ev: EventArrays) -> np.ndarray:
    """Active touches per customer and window: shape (n, 4) (7d, 30d, 90d, all time)."""
    return ev.memo("active_counts", lambda: ev.kind_counts()[:, 0, ACTIVE_KIND, :].sum(axis=1))


def purchase_times(ev: EventArrays) -> tuple[np.ndarray, np.ndarray]:
    """First and last purchase ts per customer (int64 min/max sentinels when none)."""

    def _pt():
        idx = ev.purchase_idx()
        return ev.first_ts_at(idx), ev.last_ts_at(idx)

    return ev.memo("purchase_times", _pt)


def _moment_lut() -> np.ndarray:
    """Micro-moment code per (kind_dir, topic+1): -1 none, 0 know, 1 go, 2 do, 3 buy (inbound rows only;
    the last row serves a missing kind)."""
    nt = len(TOPICS) + 1
    lut = np.full((2 * N_KINDS + 1, nt), -1, dtype=np.int8)
    know, go, do, buy = range(4)
    lut[K["search"], :] = know
    for k in ("page_view", "visit"):
        lut[K[k], T["product_info"] + 1] = know
        lut[K[k], T["how_to"] + 1] = do
        lut[K[k], T["store_locator"] + 1] = go
        lut[K[k], T["price"] + 1] = buy
    for k in ("product_view", "filter", "add_to_cart"):
        lut[K[k], :] = buy
    return lut.ravel()


MOMENT_LUT = _moment_lut()


def moment_codes(ev: EventArrays) -> np.ndarray:
    """Micro-moment per row (-1 none); store visits are *go* signals whatever their topic."""

    def _mc():
        key = ev.kind_dir.astype(np.int32)
        key *= len(TOPICS) + 1
        key += ev.topic
        key += 1
        code = MOMENT_LUT.take(key)
        code[np.flatnonzero((ev.channel == C["store"]) & (ev.kind == K["visit"]))] = 1
        return code

    return ev.memo("moment_codes", _mc)


def moment_idx(ev: EventArrays) -> np.ndarray:
    """Row indices of micro-moment signals (ascending)."""
    return ev.memo("moment_idx", lambda: np.flatnonzero(moment_codes(ev) >= 0))


def moment_counts(ev: EventArrays) -> np.ndarray:
    """Counts per (customer, moment, window): shape (n, 4, 4), windows cumulative (7d, 30d, 90d, all)."""

    def _m():
        idx = moment_idx(ev)
        key = ev.cust[idx].astype(np.intp) * 16
        key += moment_codes(ev)[idx] * np.int8(4)
        key += ev.window_bucket()[idx]
        c = np.bincount(key, minlength=ev.n * 16)
        return cumulate_windows(c.reshape(ev.n, 4, 4))

    return ev.memo("moment_counts", _m)


def product_revisits(ev: EventArrays) -> np.ndarray:
    """Product views of a product the customer had already viewed: shape (n, 4) by window."""

    def _r():
        idx, prod = ev.product_views()
        known = np.flatnonzero(prod >= 0)
        if known.size == 0:
            return np.zeros((ev.n, 4), dtype=np.int64)
        idx, prod = idx[known], prod[known]
        key = ev.cust[idx].astype(np.intp) * (int(prod.max()) + 1) + prod
        # rows are time-ordered within a customer, so a view after the first of its key is a (re)visit.
        pos = np.arange(key.size)
        first = np.full(int(key.max()) + 1, key.size, dtype=np.intp)
        np.minimum.at(first, key, pos)
        sub = idx.compress(first[key] != pos)
        c = np.bincount(ev.cust[sub].astype(np.int64) * 4 + ev.window_bucket()[sub], minlength=ev.n * 4)
        return cumulate_windows(c.reshape(ev.n, 4))

    return ev.memo("revisits", _r)


def active_non_purchase_idx(ev: EventArrays) -> np.ndarray:
    """Row indices of active touches other than purchases (ascending)."""

    def _i():
        idx = ev.active_idx()
        return idx.compress(ev.kind_dir[idx] != K["purchase"])

    return ev.memo("active_non_purchase_idx", _i)


def cart_since_purchase(ev: EventArrays) -> np.ndarray:
    """Cart adds after the customer's last purchase (all cart adds when they never bought)."""

    def _c():
        _, last_p = purchase_times(ev)
        idx = np.flatnonzero(ev.kind_dir == K["add_to_cart"])
        after = ev.ts[idx] > last_p.take(ev.cust[idx])
        return np.bincount(ev.cust[idx.compress(after)], minlength=ev.n)

    return ev.memo("cart_since_purchase", _c)


def exit_counts(ev: EventArrays) -> tuple[np.ndarray, np.ndarray]:
    """Unsubscribes and cancels per customer (all time)."""
    return ev.inbound_kind("unsubscribe") + ev.outbound_kind("unsubscribe"), ev.inbound_kind(
        "cancel"
    ) + ev.outbound_kind("cancel")


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


# ---- 1. engagement index -----------------------------------------------------------------------
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

    def _raw(self, ev: EventArrays) -> tuple[np.ndarray, np.ndarray]:
        """Raw decayed engagement per customer and the assisted-visit counts."""
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
        # A chat or call within assisted_gap_minutes of a web/app touch of the same customer (before or
        # after it: with equal timestamps the row order is arbitrary) = help sought inside a visit.
        idx = np.flatnonzero(ASSIST_CHANNELS.take(ev.channel))
        idx = idx.compress(ev.active().take(idx))
        assisted = idx
        if idx.size:
            web = _web_rows(ev, idx)
            gap = int(self.assisted_gap_minutes * 60e9)
            inside = np.zeros(idx.size, dtype=bool)
            if web.size:
                j = np.searchsorted(web, idx)
                for nb in (web[np.maximum(j - 1, 0)], web[np.minimum(j, web.size - 1)]):
                    inside |= (ev.cust[nb] == ev.cust[idx]) & (np.abs(ev.ts[idx] - ev.ts[nb]) <= gap)
            assisted = idx.compress(inside)
        if assisted.size and self.assisted_bonus:
            w[assisted] += self.assisted_bonus
        decay = ev.age_days() * (-1.0 / self.half_life_days)
        w *= np.exp2(decay, out=decay)
        raw = np.bincount(ev.cust, weights=w, minlength=ev.n)
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
        act = ev.active_idx()
        # Active days: a new (customer, day) pair among time-ordered active rows in the last 90 days.
        idx = act.compress(ev.window_bucket()[act] <= 2)
        c, day = ev.cust[idx], ev.ts[idx] // DAY_NS
        new = np.flatnonzero(np.r_[True, (c[1:] != c[:-1]) | (day[1:] != day[:-1])]) if idx.size else idx
        b = ev.window_bucket()[idx[new]]
        days = np.bincount(c[new].astype(np.int64) * 3 + b, minlength=ev.n * 3).reshape(ev.n, 3).cumsum(1)
        # Breadth: distinct channels, ever and in 90 days.
        acc = ev.active_channel_counts()
        breadth = (acc[:, :, 3] > 0).sum(1)
        breadth90 = (acc[:, :, 2] > 0).sum(1)
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
                breadth,
                breadth90,
                between,
                trend,
                days_since(ev, ev.last_ts_at(act), self.recency_cap_days),
                assisted,
                unsub,
                cancel,
            ]
        ).astype(np.float64, copy=False)


# ---- 2. service, surveys, events, social ---------------------------------------------------------
class ServiceSocialBuilder(FeatureBuilder):
    """Service contacts by topic, surveys, events, social actions, sentiment and social proof.

    Parameters
    ----------
    prior_strength : pseudo-observations of the population rate/mean used to smooth rates and means.
    promoter_sentiment : sentiment (-1..1) from which a review or comment counts as a recommendation.
    """

    family = "service_social"
    seed_idea = "service, survey, event and social signals (emotion index, social proof)"

    def __init__(self, prior_strength: float = 2.0, promoter_sentiment: float = 0.5):
        self.prior_strength = prior_strength
        self.promoter_sentiment = promoter_sentiment

    def describe(self) -> list[tuple[str, str]]:
        return [
            ("service_contacts", "service contacts ever"),
            ("service_contacts_90d", "service contacts in the last 90 days"),
            ("service_advice_value", "service contacts about advice or value-add topics (positive)"),
            ("service_help", "service contacts about help topics (neutral)"),
            ("service_fault_dissat", "service contacts about faults or dissatisfaction, plus complaints"),
            ("service_fault_dissat_90d", "fault/dissatisfaction contacts and complaints, last 90 days"),
            (
                "service_negative_share",
                "share of service contacts and complaints that are negative (0 if none)",
            ),
            ("complaints", "complaints ever"),
            ("complaints_90d", "complaints in the last 90 days"),
            ("surveys_sent", "surveys sent to the customer"),
            ("survey_responses", "surveys answered"),
            ("survey_response_rate", "responses / surveys sent, smoothed toward the population rate"),
            ("satisfaction_mean", "mean sentiment of survey responses, smoothed toward the population mean"),
            ("event_invites", "event invitations received"),
            ("events_attended", "events attended"),
            ("event_attendance_rate", "attendances / invitations, smoothed toward the population rate"),
            ("social_likes", "social likes"),
            ("social_comments", "social comments"),
            ("social_shares", "social shares"),
            ("reviews", "reviews written"),
            ("recommendations", f"reviews and comments with sentiment >= {self.promoter_sentiment:g}"),
            (
                "social_proof",
                "shares + reviews + recommendations: how much the customer vouches for the brand",
            ),
            (
                "sentiment_mean",
                "emotion index: mean sentiment of all touches with one, smoothed toward the population mean",
            ),
            ("sentiment_mean_90d", "mean sentiment in the last 90 days, smoothed toward the population mean"),
            ("sentiment_negative_90d", "touches with sentiment < -0.3 in the last 90 days"),
        ]

    def _sent(self, ev: EventArrays):
        s = ev.numeric("sentiment")
        if s is None:
            z = np.zeros(ev.n)
            return z, z, z, z, z, (z, z), z
        ok = ~np.isnan(s)
        idx = np.flatnonzero(ok)
        c, v = ev.cust[idx], s[idx]
        recent = ev.window_bucket()[idx] <= 2
        n_all = np.bincount(c, minlength=ev.n)
        s_all = np.bincount(c, weights=v, minlength=ev.n)
        r = np.flatnonzero(recent)
        n_90 = np.bincount(c[r], minlength=ev.n)
        s_90 = np.bincount(c[r], weights=v[r], minlength=ev.n)
        neg_90 = np.bincount(c.compress(recent & (v < -0.3)), minlength=ev.n)
        k = ev.kind[idx]
        sv = np.flatnonzero(k == K["survey_response"])
        n_sv = np.bincount(c[sv], minlength=ev.n)
        s_sv = np.bincount(c[sv], weights=v[sv], minlength=ev.n)
        rec = ((k == K["review"]) | (k == K["social_comment"])) & (v >= self.promoter_sentiment)
        return n_all, s_all, n_90, s_90, neg_90, (n_sv, s_sv), np.bincount(c.compress(rec), minlength=ev.n)

    def _fit_stats(self, ev: EventArrays) -> dict[str, np.ndarray]:
        n_all, s_all, _, _, _, (n_sv, s_sv), _ = self._sent(ev)
        return {
            "sent": ev.outbound_kind("survey_sent") + ev.inbound_kind("survey_sent"),
            "resp": ev.inbound_kind("survey_response"),
            "inv": ev.outbound_kind("event_invite") + ev.inbound_kind("event_invite"),
            "att": ev.inbound_kind("event_attendance"),
            "n_all": n_all,
            "s_all": s_all,
            "n_sv": n_sv,
            "s_sv": s_sv,
        }

    def _fit_from(self, st: dict[str, np.ndarray]) -> None:
        self.survey_rate_ = float(min(1.0, safe_div(st["resp"].sum(), st["sent"].sum())))
        self.attendance_rate_ = float(min(1.0, safe_div(st["att"].sum(), st["inv"].sum())))
        self.sentiment_mean_ = float(safe_div(st["s_all"].sum(), st["n_all"].sum()))
        self.satisfaction_mean_ = float(safe_div(st["s_sv"].sum(), st["n_sv"].sum(), self.sentiment_mean_))

    def _block(self, ev: EventArrays) -> np.ndarray:
        a = self.prior_strength
        # Service contacts by (service topic, last 90 days or not).
        idx = np.flatnonzero(ev.kind_dir == K["service_contact"])
        topic = ev.topic[idx]
        keep = np.flatnonzero((topic >= 0) & (topic < 5))
        idx, topic = idx[keep], topic[keep]
        key = ev.cust[idx].astype(np.intp) * 10
        key += topic * np.int8(2)
        key += ev.window_bucket()[idx] <= 2
        tc = np.bincount(key, minlength=ev.n * 10).reshape(ev.n, 5, 2)
        tall = tc.sum(2)
        n_svc, n_svc90 = ev.inbound_kind("service_contact"), ev.inbound_kind("service_contact", 2)
        compl, compl90 = ev.inbound_kind("complaint"), ev.inbound_kind("complaint", 2)
        posv = tall[:, T["advice"]] + tall[:, T["value_add"]]
        neg = tall[:, T["fault"]] + tall[:, T["dissatisfaction"]] + compl
        neg90 = tc[:, T["fault"], 1] + tc[:, T["dissatisfaction"], 1] + compl90
        sent = ev.outbound_kind("survey_sent") + ev.inbound_kind("survey_sent")
        resp = ev.inbound_kind("survey_response")
        inv = ev.outbound_kind("event_invite") + ev.inbound_kind("event_invite")
        att = ev.inbound_kind("event_attendance")
        n_all, s_all, n_90, s_90, neg_s90, (n_sv, s_sv), rec = self._sent(ev)
        shares, reviews = ev.inbound_kind("social_share"), ev.inbound_kind("review")
        return np.column_stack(
            [
                n_svc,
                n_svc90,
                posv,
                tall[:, T["help"]],
                neg,
                neg90,
                safe_div(neg, n_svc + compl),
                compl,
                compl90,
                sent,
                resp,
                smoothed_rate(resp, np.maximum(sent, resp), self.survey_rate_, a),
                (s_sv + a * self.satisfaction_mean_) / (n_sv + a),
                inv,
                att,
                smoothed_rate(att, np.maximum(inv, att), self.attendance_rate_, a),
                ev.inbound_kind("social_like"),
                ev.inbound_kind("social_comment"),
                shares,
                reviews,
                rec,
                shares + reviews + rec,
                (s_all + a * self.sentiment_mean_) / (n_all + a),
                (s_90 + a * self.sentiment_mean_) / (n_90 + a),
                neg_s90,
            ]
        ).astype(np.float64, copy=False)


# ---- 3. intent (micro-moments) --------------------------------------------------------------------
class IntentBuilder(FeatureBuilder):
    """Know / go / do / buy micro-moments, search and product behaviour, path to purchase, buy intent.

    Parameters
    ----------
    half_life_days : decay of signals in the buy-intent score (intent is short-lived).
    path_days : the window before the last purchase searched for assets visited and calls made.
    moment_weights : weight of one know, go, do, buy signal in the buy-intent score.
    cart_weight : weight of each cart add not followed by a purchase.
    revisit_weight : weight of each revisit of an already-viewed product in the last 30 days.
    """

    family = "intent"
    seed_idea = "micro-moments intent (know / go / do / buy)"

    def __init__(
        self,
        half_life_days: float = 7.0,
        path_days: float = 30.0,
        moment_weights: tuple[float, float, float, float] = (0.3, 0.6, 0.3, 1.0),
        cart_weight: float = 2.0,
        revisit_weight: float = 0.5,
    ):
        self.half_life_days = half_life_days
        self.path_days = path_days
        self.moment_weights = moment_weights
        self.cart_weight = cart_weight
        self.revisit_weight = revisit_weight

    def describe(self) -> list[tuple[str, str]]:
        what = {
            "know": "info/search (I-want-to-know)",
            "go": "store locator and store visits (I-want-to-go)",
            "do": "how-to content (I-want-to-do)",
            "buy": "product views, filters, price pages, cart adds (I-want-to-buy)",
        }
        out: list[tuple[str, str]] = []
        for m in MOMENTS:
            out += [
                (f"intent_{m}_7d", f"{what[m]} signals, last 7 days"),
                (f"intent_{m}_30d", f"{what[m]} signals, last 30 days"),
                (f"intent_{m}_total", f"{what[m]} signals ever"),
                (f"intent_{m}_share_30d", f"share of {m} among micro-moment signals in the last 30 days"),
            ]
        out += [
            ("searches_30d", "searches in the last 30 days"),
            ("filters_30d", "filter uses in the last 30 days"),
            ("product_views_30d", "product views in the last 30 days"),
            ("product_views_total", "product views ever"),
            ("product_revisits_30d", "views of an already-viewed product in the last 30 days"),
            ("product_revisits_total", "views of an already-viewed product ever"),
            ("cart_adds_30d", "cart adds in the last 30 days"),
            ("cart_adds_without_purchase", "cart adds after the last purchase (all, if never bought)"),
            ("visits_30d", "visits in the last 30 days"),
            ("pages_per_visit", "mean pages per visit (0 without visits)"),
            ("minutes_per_visit", "mean visit duration in minutes (0 without visits)"),
        ]
        out += [
            (f"referrer_{r}_share", f"share of inbound touches with a known referrer referred by {r}")
            for r in REFERRERS
        ]
        out += [(f"device_{d}_share", f"share of visits with a known device made from a {d} device") for d in DEVICES]
        out += [
            (
                "assets_before_last_purchase",
                f"active touches in the {self.path_days:g} days before the last purchase",
            ),
            ("channels_before_last_purchase", "distinct channels on that path to the last purchase"),
            ("calls_before_purchase", "calls and chats in the path window before the last purchase"),
            ("days_since_buy_signal", "days since the last buy micro-moment (cap 3650)"),
            (
                "buy_intent_raw",
                f"decayed (half-life {self.half_life_days:g} d) weighted micro-moments + cart "
                "adds without purchase + recent revisits",
            ),
            ("buy_intent_score", "0-1: buy_intent_raw / (buy_intent_raw + training median of positive raw)"),
        ]
        return out

    def _check_params(self) -> None:
        if len(self.moment_weights) != 4:
            raise ValueError(f"moment_weights needs 4 weights (know, go, do, buy), got {self.moment_weights!r}")
        if not self.half_life_days > 0:
            raise ValueError(f"half_life_days must be > 0, got {self.half_life_days!r}")

    def _raw(self, ev: EventArrays) -> np.ndarray:
        code = moment_codes(ev)
        idx = moment_idx(ev)
        w = np.asarray(self.moment_weights, dtype=np.float64).take(code[idx])
        w *= np.exp2(ev.age_days()[idx] * (-1.0 / self.half_life_days))
        raw = np.bincount(ev.cust[idx], weights=w, minlength=ev.n)
        return raw + self.cart_weight * cart_since_purchase(ev) + self.revisit_weight * product_revisits(ev)[:, 1]

    def _fit_stats(self, ev: EventArrays) -> dict[str, np.ndarray]:
        return {"raw": self._raw(ev)}

    def _fit_from(self, stats: dict[str, np.ndarray]) -> None:
        pos = stats["raw"][stats["raw"] > 0]
        self.scale_ = float(np.median(pos)) if pos.size else 1.0

    def _block(self, ev: EventArrays) -> np.ndarray:
        mc = moment_counts(ev)
        tot30 = mc[:, :, 1].sum(1)
        cols: list[np.ndarray] = []
        for j in range(4):
            cols += [mc[:, j, 0], mc[:, j, 1], mc[:, j, 3], safe_div(mc[:, j, 1], tot30)]
        rv = product_revisits(ev)
        n_visit = ev.inbound_kind("visit")
        pages, dur = ev.numeric("pages"), ev.numeric("duration_s")
        vidx = np.flatnonzero(ev.kind_dir == K["visit"])
        pv = (
            safe_div(np.bincount(ev.cust[vidx], weights=np.nan_to_num(pages[vidx]), minlength=ev.n), n_visit)
            if pages is not None
            else np.zeros(ev.n)
        )
        mv = (
            safe_div(np.bincount(ev.cust[vidx], weights=np.nan_to_num(dur[vidx]) / 60, minlength=ev.n), n_visit)
            if dur is not None
            else np.zeros(ev.n)
        )
        cols += [
            ev.inbound_kind("search", 1),
            ev.inbound_kind("filter", 1),
            ev.inbound_kind("product_view", 1),
            ev.inbound_kind("product_view"),
            rv[:, 1],
            rv[:, 3],
            ev.inbound_kind("add_to_cart", 1),
            cart_since_purchase(ev),
            ev.inbound_kind("visit", 1),
            pv,
            mv,
        ]
        ref = ev.bincount2(ev.inbound, ev.referrer, len(REFERRERS))
        dev = ev.bincount2(ev.inbound, ev.device, len(DEVICES))
        cols += list(safe_div(ref, ref.sum(1)[:, None]).T) + list(safe_div(dev, dev.sum(1)[:, None]).T)
        # Path to the last purchase: active non-purchase touches within path_days before it.
        _, last_p = purchase_times(ev)
        idx = active_non_purchase_idx(ev)
        lp = last_p.take(ev.cust[idx])
        on_path = (ev.ts[idx] < lp) & (ev.ts[idx] >= lp - int(self.path_days * DAY_NS)) & (lp != INT_MIN)
        p_idx = idx.compress(on_path)
        assets = np.bincount(ev.cust[p_idx], minlength=ev.n)
        chans = np.bincount(
            ev.cust[p_idx].astype(np.int64) * N_CHANNELS + ev.channel[p_idx], minlength=ev.n * N_CHANNELS
        ).reshape(ev.n, N_CHANNELS)
        pch = ev.channel[p_idx]
        calls = np.bincount(ev.cust[p_idx.compress((pch == C["call_center"]) | (pch == C["chat"]))], minlength=ev.n)
        midx = moment_idx(ev)
        buy_last = ev.last_ts_at(midx.compress(moment_codes(ev)[midx] == 3))
        raw = self._raw(ev)
        cols += [
            assets,
            (chans > 0).sum(1),
            calls,
            days_since(ev, buy_last, 3650.0),
            raw,
            raw / (raw + self.scale_),
        ]
        return np.column_stack(cols).astype(np.float64, copy=False)


# ---- 4. ladders and segments ------------------------------------------------------------------------


class LadderBuilder(FeatureBuilder):
    """Store ladder, social ladder, in-market stage and the high-engagement-potential flag.

    Parameters
    ----------
    committed_min : social interactions (likes, comments, attendances, survey answers) that make a
        customer *committed* on the social ladder.
    promoter_sentiment : review/comment sentiment from which the customer counts as a promoter.
    potential_quantile : customers at or above this quantile of recent (90-day) active touches in the
        training population, not cancelled and past the first ladder rung, get the potential flag.
    """

    family = "ladders"
    seed_idea = "ladders and segments (store / social ladder, in-market stage, high potential)"
    int_columns = frozenset({"store_ladder", "social_ladder", "in_market_stage", "high_engagement_potential"})

    def __init__(self, committed_min: int = 3, promoter_sentiment: float = 0.5, potential_quantile: float = 0.8):
        self.committed_min = committed_min
        self.promoter_sentiment = promoter_sentiment
        self.potential_quantile = potential_quantile

    def describe(self) -> list[tuple[str, str]]:
        return [
            (
                "store_ladder",
                "0 visitor, 1 interested (searched/viewed products or content), 2 almost buyer "
                "(cart add or repeated product views), 3 buyer (purchased)",
            ),
            (
                "social_ladder",
                "0 visitor, 1 engaged (any social/survey/event interaction), 2 committed "
                f"(>= {self.committed_min} such interactions, or a comment/review/attendance), 3 promoter "
                "(shared, or a positive review/comment)",
            ),
            (
                "in_market_stage",
                "last 30 days: 0 none, 1 interested (know/go/do signals), 2 deliberating "
                "(product views, searches, filters), 3 evaluating (cart add since last purchase, revisits, "
                "price pages)",
            ),
            (
                "high_engagement_potential",
                "1 = recent activity in the training population's top "
                f"{1 - self.potential_quantile:.0%}, past the first ladder rung and not cancelled: "
                "worth personal treatment in the CRM",
            ),
        ]

    def _ladders(self, ev: EventArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ik = ev.kind_counts()[:, 0, :, :]
        mc = moment_counts(ev)
        rv = product_revisits(ev)
        store = np.zeros(ev.n, dtype=np.int64)
        interested = (
            ik[:, K["product_view"], ALL] + ik[:, K["search"], ALL] + ik[:, K["filter"], ALL] + mc[:, :, ALL].sum(1)
        ) > 0
        store[interested] = 1
        store[(ik[:, K["add_to_cart"], ALL] > 0) | (rv[:, ALL] > 0)] = 2
        store[ik[:, K["purchase"], ALL] > 0] = 3
        social_n = (
            ik[:, K["social_like"], ALL]
            + ik[:, K["social_comment"], ALL]
            + ik[:, K["social_share"], ALL]
            + ik[:, K["review"], ALL]
            + ik[:, K["survey_response"], ALL]
            + ik[:, K["event_attendance"], ALL]
        )
        deep = ik[:, K["social_comment"], ALL] + ik[:, K["review"], ALL] + ik[:, K["event_attendance"], ALL]
        social = np.zeros(ev.n, dtype=np.int64)
        social[(social_n > 0) | (ev.active_channel_counts()[:, C["social"], ALL] > 0)] = 1
        social[(social_n >= self.committed_min) | (deep > 0)] = 2
        s = ev.numeric("sentiment")
        if s is not None:
            pos = ((ev.kind == K["review"]) | (ev.kind == K["social_comment"])) & (s >= self.promoter_sentiment)
            promo = ev.bincount(pos)
        else:
            promo = np.zeros(ev.n)
        social[(ik[:, K["social_share"], ALL] > 0) | (promo > 0)] = 3
        stage = np.zeros(ev.n, dtype=np.int64)
        stage[(mc[:, 0, 1] + mc[:, 1, 1] + mc[:, 2, 1]) > 0] = 1
        stage[(ik[:, K["product_view"], 1] + ik[:, K["search"], 1] + ik[:, K["filter"], 1]) > 0] = 2
        cart = cart_since_purchase(ev)
        # Cart adds since the last purchase only count as evaluating when recent.
        recent_cart = np.minimum(cart, ik[:, K["add_to_cart"], 1])
        stage[(recent_cart > 0) | (rv[:, 1] > 0) | (self._price_views_30d(ev) > 0)] = 3
        return store, social, stage

    @staticmethod
    def _price_views_30d(ev: EventArrays) -> np.ndarray:
        return ev.bincount((ev.topic == T["price"]) & ev.inbound & (ev.window_bucket() <= 1))

    def _fit_stats(self, ev: EventArrays) -> dict[str, np.ndarray]:
        return {"a90": active_counts(ev)[:, 2]}

    def _fit_from(self, stats: dict[str, np.ndarray]) -> None:
        a = stats["a90"][stats["a90"] > 0]
        self.potential_threshold_ = float(np.quantile(a, self.potential_quantile)) if a.size else 1.0

    def _block(self, ev: EventArrays) -> np.ndarray:
        store, social, stage = self._ladders(ev)
        a90 = active_counts(ev)[:, 2]
        _, cancel = exit_counts(ev)
        hep = (a90 >= max(self.potential_threshold_, 1.0)) & (cancel == 0) & ((store >= 1) | (social >= 1))
        return np.column_stack([store, social, stage, hep]).astype(np.float64, copy=False)


# ---- 5. value and loyalty ---------------------------------------------------------------------------
class ValueBuilder(FeatureBuilder):
    """RFM, order value and frequency, loyalty, tenure, returns, price sensitivity and forward value.

    Parameters
    ----------
    prior_strength : pseudo-observations of the population rates used to smooth customer rates.
    value_horizon_days : horizon of the forward value estimate.
    alive_tolerance : a customer silent for this many expected purchase gaps keeps e^-1 of their value.
    recency_cap_days : recency for customers who never bought (and its maximum).
    loyalty_mark : purchase count that marks a loyal customer.
    """

    family = "value"
    seed_idea = "value and loyalty (RFM, AOV, APF, 5-purchase mark, price sensitivity)"
    int_columns = frozenset({"loyal"})

    def __init__(
        self,
        prior_strength: float = 2.0,
        value_horizon_days: float = 365.0,
        alive_tolerance: float = 3.0,
        recency_cap_days: float = 3650.0,
        loyalty_mark: int = 5,
    ):
        self.prior_strength = prior_strength
        self.value_horizon_days = value_horizon_days
        self.alive_tolerance = alive_tolerance
        self.recency_cap_days = recency_cap_days
        self.loyalty_mark = loyalty_mark

    def describe(self) -> list[tuple[str, str]]:
        return [
            ("recency_days", f"days since the last purchase (cap {self.recency_cap_days:g})"),
            ("frequency", "purchases ever"),
            ("monetary", "total purchase amount ever"),
            ("aov", "average order value (0 without purchases)"),
            ("apf", "average purchase frequency: purchases per month of tenure (tenure floored at 1 month)"),
            ("repeat_purchases", "purchases after the first"),
            ("loyal", f"1 = reached the {self.loyalty_mark}-purchase loyalty mark"),
            ("purchases_30d", "purchases in the last 30 days"),
            ("purchases_90d", "purchases in the last 90 days"),
            ("monetary_90d", "purchase amount in the last 90 days"),
            ("mean_days_between_purchases", "mean gap between purchases (0 with fewer than 2)"),
            ("tenure_days", "days since signup (since the first touch when signup is unknown)"),
            ("returns", "returns ever"),
            ("return_rate", "returns / purchases (0 without purchases)"),
            ("discount_purchases", "purchases with a discount"),
            ("discount_share", "share of purchases with a discount, smoothed toward the population share"),
            ("mean_discount", "mean discount of discounted purchases"),
            ("price_offers_received", "discount-type offers received in outreach"),
            ("price_offers_redeemed", "discount-type offers redeemed"),
            (
                "price_offer_redemption_rate",
                "redeemed / received discount offers, smoothed toward the population rate",
            ),
            ("price_sensitivity", "mean of the smoothed discount share and discount-offer redemption rate"),
            (
                "forward_value",
                f"expected purchase value in the next {self.value_horizon_days:g} days: "
                "gamma-Poisson purchase rate x smoothed AOV x P(still active)",
            ),
        ]

    def _basics(self, ev: EventArrays) -> dict[str, np.ndarray]:
        def _b():
            idx = ev.purchase_idx()
            c = ev.cust[idx]
            amt = ev.numeric("amount")
            a = np.nan_to_num(amt[idx]) if amt is not None else np.zeros(idx.size)
            disc = ev.numeric("discount")
            d = np.nan_to_num(disc[idx]) if disc is not None else np.zeros(idx.size)
            b = ev.window_bucket()[idx]
            r30, r90, disc_i = np.flatnonzero(b <= 1), np.flatnonzero(b <= 2), np.flatnonzero(d > 0)
            first_p, last_p = purchase_times(ev)
            first_any = ev.first_ts(None)
            start = np.where(ev.signup_ns != INT_MIN, ev.signup_ns, first_any)
            tenure = np.where(start < ev.cutoff_ns, (ev.cutoff_ns - start) / DAY_NS, 0.0)
            redeemed = ev.kind_dir == K["offer_redeemed"]
            return {
                "freq": np.bincount(c, minlength=ev.n).astype(np.float64),
                "mon": np.bincount(c, weights=a, minlength=ev.n),
                "p30": np.bincount(c[r30], minlength=ev.n),
                "p90": np.bincount(c[r90], minlength=ev.n),
                "m90": np.bincount(c[r90], weights=a[r90], minlength=ev.n),
                "dp": np.bincount(c[disc_i], minlength=ev.n).astype(np.float64),
                "dsum": np.bincount(c[disc_i], weights=d[disc_i], minlength=ev.n),
                "first_p": first_p,
                "last_p": last_p,
                "tenure": tenure,
                "offers": np.bincount(ev.out_cust[ev.out_discount], minlength=ev.n).astype(np.float64),
                "redeemed": ev.bincount(redeemed & self._price_offer_rows(ev)).astype(np.float64),
            }

        return ev.memo("value_basics", _b)

    @staticmethod
    def _price_offer_rows(ev: EventArrays) -> np.ndarray:
        """Redemptions of discount-type offers (all redemptions when offer ids are unknown)."""
        return ev.price_offer if ev.price_offer is not None else np.ones(ev.m, dtype=bool)

    def _fit_stats(self, ev: EventArrays) -> dict[str, np.ndarray]:
        b = self._basics(ev)
        return {k: b[k] for k in ("freq", "mon", "dp", "offers", "redeemed", "tenure")}

    def _fit_from(self, st: dict[str, np.ndarray]) -> None:
        self.discount_share_ = float(safe_div(st["dp"].sum(), st["freq"].sum()))
        self.redemption_rate_ = float(min(1.0, safe_div(st["redeemed"].sum(), st["offers"].sum())))
        self.aov_ = float(safe_div(st["mon"].sum(), st["freq"].sum()))
        # Gamma prior on the daily purchase rate by the method of moments over customers with tenure.
        t = st["tenure"]
        ok = t >= 1
        rate = st["freq"][ok] / t[ok]
        mean = float(rate.mean()) if rate.size else 0.0
        var = float(rate.var()) if rate.size else 0.0
        if mean > 0 and var > 0:
            self.rate_alpha_ = mean / var  # prior "days" of observation
            self.rate_shape_ = mean * self.rate_alpha_
        else:
            self.rate_alpha_, self.rate_shape_ = 1.0, mean

    def _block(self, ev: EventArrays) -> np.ndarray:
        b = self._basics(ev)
        a = self.prior_strength
        freq, mon, tenure = b["freq"], b["mon"], b["tenure"]
        aov = safe_div(mon, freq)
        apf = freq / np.maximum(tenure / 30.44, 1.0)
        gap = np.where(freq >= 2, (b["last_p"] - b["first_p"]) / DAY_NS / np.maximum(freq - 1, 1), 0.0)
        recency = days_since(ev, b["last_p"], self.recency_cap_days)
        returns = ev.inbound_kind("return")
        dshare = smoothed_rate(b["dp"], freq, self.discount_share_, a)
        rrate = smoothed_rate(b["redeemed"], b["offers"], self.redemption_rate_, a)
        rate = (freq + self.rate_shape_) / (np.maximum(tenure, 1.0) + self.rate_alpha_)
        aov_s = (mon + a * self.aov_) / (freq + a)
        p_alive = np.where(freq > 0, np.exp(-recency * rate / self.alive_tolerance), 1.0)
        fv = self.value_horizon_days * rate * aov_s * p_alive
        return np.column_stack(
            [
                recency,
                freq,
                mon,
                aov,
                apf,
                np.maximum(freq - 1, 0),
                freq >= self.loyalty_mark,
                b["p30"],
                b["p90"],
                b["m90"],
                gap,
                tenure,
                returns,
                safe_div(returns, freq),
                b["dp"],
                dshare,
                safe_div(b["dsum"], b["dp"]),
                b["offers"],
                b["redeemed"],
                rrate,
                0.5 * (dshare + rrate),
                fv,
            ]
        ).astype(np.float64, copy=False)


# ---- 6. channel affinity and fatigue ----------------------------------------------------------------
TOUCH_TO_OUT = np.full(N_CHANNELS, -1, dtype=np.int8)
for _j, _c in enumerate(OUTREACH_CHANNELS):
    TOUCH_TO_OUT[C[OUTREACH_TO_TOUCH_CHANNEL[_c]]] = _j
RESPONSE_KINDS = ("message_open", "message_click", "offer_redeemed")
# kind_dir -> response index (open, click, redemption) of inbound responses, -1 otherwise.
RESPONSE_DIR = kind_dir_lut({k: j for j, k in enumerate(RESPONSE_KINDS)}, np.int8, -1)


class ChannelBuilder(FeatureBuilder):
    """Per outreach channel: contacts received, open/click/response rates, recency, consent, fatigue.

    Contacts come from the outreach table (holdout rows excluded: they were not contacted); responses
    are the customer's opens, clicks and redemptions on that channel in the touchpoint log.

    Parameters
    ----------
    prior_strength : pseudo-contacts at the channel's population rate that smooth each customer's rates.
    recency_cap_days : days-since value when there was no response / contact.
    """

    family = "channel"
    seed_idea = "channel affinity and contact fatigue"

    def __init__(self, prior_strength: float = 2.0, recency_cap_days: float = 3650.0):
        self.prior_strength = prior_strength
        self.recency_cap_days = recency_cap_days

    def describe(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for c in OUTREACH_CHANNELS:
            out += [
                (f"chan_{c}_contacts", f"{c} outreach contacts received"),
                (f"chan_{c}_contacts_30d", f"{c} contacts in the last 30 days"),
                (f"chan_{c}_opens", f"{c} messages opened"),
                (f"chan_{c}_clicks", f"{c} messages clicked"),
                (
                    f"chan_{c}_open_rate",
                    f"{c} opens / contacts, smoothed toward the channel's population rate",
                ),
                (f"chan_{c}_click_rate", f"{c} clicks / contacts, smoothed"),
                (
                    f"chan_{c}_response_rate",
                    f"{c} contacts answered by any reaction (open, click or "
                    "redemption; the largest of the three counts) / contacts, smoothed: the channel affinity",
                ),
                (
                    f"chan_{c}_days_since_response",
                    f"days since the last reaction on {c} (cap {self.recency_cap_days:g})",
                ),
                (
                    f"chan_{c}_days_since_contact",
                    f"days since the last {c} contact (cap {self.recency_cap_days:g})",
                ),
                (f"chan_{c}_consent", f"1 = consent to {c} contact"),
                (f"chan_{c}_unsubscribed", f"1 = unsubscribed on {c}"),
                (
                    f"chan_{c}_inbound_90d",
                    f"the customer's own active touches on {c}'s touch channel, last 90 days",
                ),
            ]
        out += [
            ("contacts_7d", "outreach contacts on any channel in the last 7 days (fatigue)"),
            ("contacts_30d", "outreach contacts on any channel in the last 30 days (fatigue)"),
            ("contacts_total", "outreach contacts ever"),
            (
                "click_to_open_rate",
                "clicks / opens over every channel (CTOR), smoothed toward the population's: how much an opened "
                "message moves the customer, which opens alone do not show (a responsiveness signal)",
            ),
            ("redeem_to_click_rate", "offer redemptions / clicks over every channel, smoothed"),
        ]
        return out

    def _counts(self, ev: EventArrays) -> dict[str, np.ndarray]:
        def _c():
            oc = ev.out_cust.astype(np.int64)
            oage = ev.cutoff_ns - ev.out_ts
            ob = (oage >= 7 * DAY_NS).astype(np.int64) + (oage >= 30 * DAY_NS)
            contacts = np.bincount(oc * (N_OUT * 3) + ev.out_channel * 3 + ob, minlength=ev.n * N_OUT * 3)
            contacts = contacts.reshape(ev.n, N_OUT, 3).cumsum(2)
            last_contact = np.full(ev.n * N_OUT, INT_MIN, dtype=np.int64)
            np.maximum.at(last_contact, oc * N_OUT + ev.out_channel, ev.out_ts)
            ochan = TOUCH_TO_OUT.take(ev.channel)
            rkc = RESPONSE_DIR.take(ev.kind_dir)
            idx = np.flatnonzero((ochan >= 0) & (rkc >= 0))
            key = ev.cust[idx].astype(np.int64) * N_OUT + ochan[idx]
            resp = np.bincount(key * 3 + rkc[idx], minlength=ev.n * N_OUT * 3).reshape(ev.n, N_OUT, 3)
            last_resp = np.full(ev.n * N_OUT, INT_MIN, dtype=np.int64)
            np.maximum.at(last_resp, key, ev.ts[idx])
            return {
                "contacts": contacts,
                "resp": resp,
                "last_resp": last_resp.reshape(ev.n, N_OUT),
                "last_contact": last_contact.reshape(ev.n, N_OUT),
            }

        return ev.memo("channel_counts", _c)

    def _fit_stats(self, ev: EventArrays) -> dict[str, np.ndarray]:
        c = self._counts(ev)
        return {"contacts": c["contacts"][:, :, 2], "resp": c["resp"]}

    def _fit_from(self, st: dict[str, np.ndarray]) -> None:
        n = st["contacts"].sum(0).astype(np.float64)
        r = st["resp"].sum(0).astype(np.float64)
        self.open_rate_ = np.minimum(safe_div(r[:, 0], n), 1.0)
        self.click_rate_ = np.minimum(safe_div(r[:, 1], n), 1.0)
        self.response_rate_ = np.minimum(safe_div(r.max(1), n), 1.0)
        pooled = r.sum(0)
        self.click_to_open_rate_ = float(min(safe_div(pooled[1], pooled[0]), 1.0))
        self.redeem_to_click_rate_ = float(min(safe_div(pooled[2], pooled[1]), 1.0))

    def _block(self, ev: EventArrays) -> np.ndarray:
        c = self._counts(ev)
        a = self.prior_strength
        contacts, resp = c["contacts"], c["resp"]
        active_ch = ev.active_channel_counts()[:, :, 2]
        # Unsubscribes (either direction) by channel; they are rare, so select them first.
        uidx = np.flatnonzero(ev.kind == K["unsubscribe"])
        uch = ev.channel[uidx]
        known = np.flatnonzero(uch >= 0)
        ukey = ev.cust[uidx[known]].astype(np.intp) * N_CHANNELS + uch[known]
        unsub = np.bincount(ukey, minlength=ev.n * N_CHANNELS).reshape(ev.n, N_CHANNELS)
        cols: list[np.ndarray] = []
        for j, ch in enumerate(OUTREACH_CHANNELS):
            n = contacts[:, j, 2]
            tj = C[OUTREACH_TO_TOUCH_CHANNEL[ch]]
            cols += [
                n,
                contacts[:, j, 1],
                resp[:, j, 0],
                resp[:, j, 1],
                smoothed_rate(resp[:, j, 0], n, self.open_rate_[j], a),
                smoothed_rate(resp[:, j, 1], n, self.click_rate_[j], a),
                smoothed_rate(resp[:, j].max(1), n, self.response_rate_[j], a),
                days_since(ev, c["last_resp"][:, j], self.recency_cap_days),
                days_since(ev, c["last_contact"][:, j], self.recency_cap_days),
                ev.consent[:, j],
                unsub[:, tj] > 0,
                active_ch[:, tj],
            ]
        cols += [contacts[:, :, 0].sum(1), contacts[:, :, 1].sum(1), contacts[:, :, 2].sum(1)]
        if hasattr(self, "click_to_open_rate_"):  # builders fitted before these columns existed keep their layout
            pooled = resp.sum(1)
            cols += [
                smoothed_rate(pooled[:, 1], pooled[:, 0], self.click_to_open_rate_, a),
                smoothed_rate(pooled[:, 2], pooled[:, 1], self.redeem_to_click_rate_, a),
            ]
        return np.column_stack(cols).astype(np.float64, copy=False)


EVENT_BUILDERS: tuple[type[FeatureBuilder], ...] = (
    EngagementBuilder,
    ServiceSocialBuilder,
    IntentBuilder,
    LadderBuilder,
    ValueBuilder,
    ChannelBuilder,
)
