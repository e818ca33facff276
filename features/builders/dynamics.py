"""Activity dynamics: how a customer's own rhythm is changing right now, measured against their past.

Churn at a cutoff is driven less by how active a customer has been than by how active they are *now*
relative to themselves: a habit that collapses (a customer who has decided to leave), a slow fade, a
silence longer than the customer's usual gap, a purchase overdue against their own cycle, a recent
fault or complaint. The other families describe levels in fixed windows; this one describes changes:

- **own-activity days**: distinct days with a customer-initiated touch (inbound, not passive, not a
  reaction to our outreach and not an exit signal). Counting days rather than touches makes one visit
  with ten page views one unit, and works unchanged on transaction-only data (purchase days).
- windowed counts (7 … 365 days), personal drop ratios (recent rate vs the preceding year), a Poisson
  change-point statistic (the strongest rate drop over a grid of change points), a log-linear rate
  trend fitted per customer and the current rate it implies, decayed rate estimates, overdue ratios
  (silence measured in the customer's own expected gaps), purchase cycles, and recent trouble
  (fault/dissatisfaction contacts, complaints, negative sentiment, returns).

All computed with ``np.bincount`` on one :class:`~features.builders.events.EventArrays` block (only events
strictly before the cutoff), no per-customer loops, no fitted population statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.builders.base import INT_MIN, FeatureBuilder, days_since, safe_div
from features.builders.events import EventArrays, compiled
from features.builders.loglinear import end_factor, loglinear_rate
from features.builders.vocab_codes import K, T, kind_dir_lut
from features.contract.schema import DAY_NS, KINDS, PASSIVE_KINDS

# Reactions to our outreach and exit signals are not the customer's own rhythm.
NOT_OWN_KINDS: tuple[str, ...] = ("message_open", "message_click", "offer_redeemed", "unsubscribe", "cancel")
COUNT_WINDOWS: tuple[int, ...] = (7, 14, 30, 60, 90, 180, 365)
DROP_WINDOWS: tuple[int, ...] = (14, 30, 60, 90)
CHANGE_POINTS: tuple[int, ...] = (14, 21, 30, 45, 60, 90, 120, 150, 180)
TROUBLE_TOPICS: tuple[int, ...] = (T["fault"], T["dissatisfaction"])
SERVICE_DIR = kind_dir_lut(("service_contact", "complaint"))


# kind_dir lookup: the customer's own activity = active touches minus outreach reactions and exits.
OWN_DIR = kind_dir_lut(tuple(k for k in KINDS if k not in PASSIVE_KINDS and k not in NOT_OWN_KINDS))


def _own_idx(ev: EventArrays) -> np.ndarray:
    """Rows that are the customer's own activity (ascending row indices)."""
    return ev.memo("dyn_own_idx", lambda: np.flatnonzero(OWN_DIR.take(ev.kind_dir)))


def _own_days(ev: EventArrays) -> tuple[np.ndarray, np.ndarray]:
    """Customer code and age (days, of the day's first touch) of every (customer, day) with own activity."""

    def _d():
        if ev.kernel and compiled is not None:
            rows = _own_day_rows(ev)[0]
            return ev.cust[rows], (ev.cutoff_ns - ev.ts[rows]) * (1.0 / DAY_NS)  # age_days()'s arithmetic
        idx = _own_idx(ev)
        c = ev.cust[idx]
        day = ev.ts[idx] // DAY_NS
        # rows are (customer, ts)-ordered: a new (customer, calendar day) pair starts where either changes
        new = np.flatnonzero(np.r_[True, (c[1:] != c[:-1]) | (day[1:] != day[:-1])]) if idx.size else idx
        return c[new], ev.age_days()[idx[new]]

    return ev.memo("dyn_own_days", _d)


def _own_day_rows(ev: EventArrays) -> tuple[np.ndarray, np.ndarray]:
    """Compiled path: the first row of every (customer, day) with own activity, and each customer's last own
    activity ts, in one pass."""
    return ev.memo("dyn_own_day_rows", lambda: compiled.day_starts(ev.cust, ev.ts, ev.kind_dir, OWN_DIR, ev.n))


def _last_own_ts(ev: EventArrays) -> np.ndarray:
    """Per customer, the ts of the last own activity (int64 min when none)."""
    if ev.kernel and compiled is not None:
        return _own_day_rows(ev)[1]
    return ev.last_ts_at(_own_idx(ev))


def _window_counts(cust: np.ndarray, age: np.ndarray, n: int, edges: np.ndarray) -> np.ndarray:
    """Per customer, how many rows have ``age < edges[j]``: shape (len(edges), n), one row per edge.

    Edge-major, so the cumulation over edges adds whole contiguous rows (numpy's cumsum over a short
    axis is slow) and each window's counts are one contiguous row.
    """
    nb = len(edges) + 1
    top = float(edges[-1]) if len(edges) else 0.0
    if len(edges) and top <= 1e6 and np.array_equal(edges, np.floor(edges)) and edges[0] >= 0:
        # Whole-day edges: an edge is <= age exactly when it is <= floor(age) (ages are > 0), so a lookup
        # by whole days replaces the binary search.
        below = np.searchsorted(edges, np.arange(int(top) + 1), side="right")
        key = below.take(np.minimum(age, top).astype(np.intp))
    else:
        key = np.searchsorted(edges, age, side="right")
    key *= n
    key += cust
    c = np.bincount(key, minlength=n * nb).reshape(nb, n)[:-1]
    for j in range(1, len(c)):
        c[j] += c[j - 1]
    return c


@dataclass(frozen=True)
class _OwnDays:
    """A block's own-activity days: customer code and age of each, and per customer the count younger than
    every window edge (``counts`` row ``column[edge]``)."""

    n: int
    cust: np.ndarray
    age: np.ndarray
    tenure: np.ndarray
    counts: np.ndarray
    column: dict[float, int]

    def within(self, days: float | tuple[float, ...]) -> np.ndarray:
        """Own-activity days younger than ``days`` (a number, or a tuple giving one column each)."""
        if isinstance(days, tuple):
            return self.counts[[self.column[float(d)] for d in days]].T.astype(np.float64)
        return self.counts[self.column[float(days)]].astype(np.float64)


def _change_point(own: _OwnDays, span: float) -> list[np.ndarray]:
    """The strongest change of the own-activity rate over the change points: Poisson LLR of a two-rate
    model (before / after) against one rate, the change point's age, and the log rate ratio there."""
    tenure = own.tenure
    cp = np.asarray(CHANGE_POINTS, dtype=np.float64)
    n1, t1 = own.within(CHANGE_POINTS), np.minimum(tenure[:, None], cp)
    n0, t0 = own.within(span)[:, None] - n1, np.clip(np.minimum(tenure, span)[:, None] - cp, 0.0, None)
    ok = (t0 >= 30.0) & (t1 > 0)
    r1, r0 = safe_div(n1, t1), safe_div(n0, t0)
    r = safe_div(n0 + n1, t0 + t1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = _xlogy_ratio(n1, r1, r) + _xlogy_ratio(n0, r0, r)
    sign = np.where(r1 < r0, 1.0, -1.0)
    llr = np.where(ok, sign * ll, 0.0)
    with np.errstate(divide="ignore"):
        lr = np.log(safe_div(n1 + 0.5, t1) / safe_div(n0 + 0.5, np.maximum(t0, 1.0)))
    ratio = np.where(ok, lr, 0.0)
    best = np.argmax(np.abs(llr), axis=1)
    rows = np.arange(own.n)
    has = np.abs(llr[rows, best]) > 0
    return [
        llr[rows, best],
        np.where(has, np.asarray(CHANGE_POINTS, dtype=np.float64)[best], 0.0),
        np.where(has, ratio[rows, best], 0.0),
    ]


class DynamicsBuilder(FeatureBuilder):
    """Recent change of the customer's own activity, purchase cycle and trouble signals.

    Parameters
    ----------
    trend_days : length of the window (days, clipped to tenure) of the per-customer log-linear trend.
    baseline_days : length of the period before each recent window that the drop ratios compare with.
    change_point_span_days : history (days) the change-point statistic looks at.
    decay_days : time constants (days) of the exponentially decayed current-rate estimates.
    trouble_memory_days : time constant of the decayed trouble score (how long a fault keeps mattering).
    negative_sentiment : sentiment below which a touch counts as negative.
    recency_cap_days : days-since value when there is no such event (and its maximum).
    """

    family = "dynamics"
    seed_idea = "engagement trend and churn early warning (activity drop, overdue, trouble)"

    def __init__(
        self,
        trend_days: float = 365.0,
        baseline_days: float = 365.0,
        change_point_span_days: float = 540.0,
        decay_days: tuple[float, ...] = (30.0, 90.0),
        trouble_memory_days: float = 30.0,
        negative_sentiment: float = -0.3,
        recency_cap_days: float = 3650.0,
    ):
        self.trend_days = trend_days
        self.baseline_days = baseline_days
        self.change_point_span_days = change_point_span_days
        self.decay_days = decay_days
        self.trouble_memory_days = trouble_memory_days
        self.negative_sentiment = negative_sentiment
        self.recency_cap_days = recency_cap_days

    def describe(self) -> list[tuple[str, str]]:
        own = "days with own activity (customer-initiated touches; outreach reactions and exits excluded)"
        cols = [(f"dyn_active_days_{w}d", f"{own} in the last {w} days") for w in COUNT_WINDOWS]
        cols += [
            (
                f"dyn_drop_{w}d",
                f"log((own-activity days in the last {w} d + 0.5) / (expected from the rate of the "
                f"{self.baseline_days:g} d before + 0.5)): < 0 = the customer's own activity dropped",
            )
            for w in DROP_WINDOWS
        ]
        cols += [
            ("dyn_rate_year", "own-activity days per day over the last year (clipped to tenure)"),
            (
                "dyn_change_llr",
                "strongest change of the own-activity rate over change points 14-180 d ago: Poisson "
                "log-likelihood ratio, > 0 for a drop, < 0 for a rise",
            ),
            ("dyn_change_days", "days before the cutoff of that change point (0 when no history before it)"),
            (
                "dyn_change_ratio",
                "log(rate after / rate before) at that change point (+0.5 smoothing on both counts)",
            ),
            (
                "dyn_trend_slope",
                f"per-customer log-linear trend of the own-activity rate over {self.trend_days:g} d "
                "(log change per year, shrunk toward flat for few events)",
            ),
            ("dyn_rate_now", "own-activity rate at the cutoff implied by that trend (days with activity per day)"),
            (
                "dyn_p_silent_90d",
                "exp(-90 x dyn_rate_now): chance of no own activity in the next 90 days at the current rate",
            ),
        ]
        cols += [
            (
                f"dyn_rate_decay_{d:g}d",
                f"exponentially decayed own-activity rate (time constant {d:g} d, per day of exposure)",
            )
            for d in self.decay_days
        ]
        cols += [
            (
                "dyn_days_since_own",
                f"days since the last own-activity day (cap {self.recency_cap_days:g}); ignores outreach reactions",
            ),
            (
                "dyn_overdue",
                "days since the last own activity x the customer's yearly own-activity rate: expected active "
                "days that did not happen (> 1 = silent longer than usual)",
            ),
            (
                "dyn_p_silence",
                "exp(-dyn_overdue): chance of a silence this long at the customer's usual rate",
            ),
            (
                "dyn_purchase_overdue",
                "days since the last purchase / mean gap between purchases (0 with fewer than 2 purchases)",
            ),
            (
                "dyn_purchases_missed",
                "days since the last purchase x purchases per day of tenure: expected purchases missed",
            ),
            ("dyn_purchases_365d", "purchases in the last 365 days"),
            (
                "dyn_purchase_drop_90d",
                "log((purchases in the last 90 d + 0.5) / (expected from the year before + 0.5))",
            ),
            ("dyn_fault_14d", "service contacts about faults or dissatisfaction plus complaints, last 14 days"),
            ("dyn_fault_30d", "service contacts about faults or dissatisfaction plus complaints, last 30 days"),
            (
                "dyn_days_since_fault",
                f"days since the last fault/dissatisfaction contact or complaint (cap {self.recency_cap_days:g})",
            ),
            (
                "dyn_trouble_score",
                f"fault/dissatisfaction contacts and complaints decayed with time constant "
                f"{self.trouble_memory_days:g} d (a proxy for being in trouble now)",
            ),
            ("dyn_service_30d", "service contacts (any topic) in the last 30 days"),
            (
                "dyn_days_since_negative",
                f"days since the last touch with sentiment < {self.negative_sentiment:g} "
                f"(cap {self.recency_cap_days:g})",
            ),
            (
                "dyn_sentiment_shift_30d",
                "mean sentiment of the last 30 days minus the customer's own earlier mean (both shrunk "
                "toward the earlier mean; 0 without sentiment)",
            ),
            ("dyn_returns_30d", "returns in the last 30 days"),
        ]
        return cols

    def _check_params(self) -> None:
        for name in ("trend_days", "baseline_days", "change_point_span_days", "trouble_memory_days"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and v > 0):
                raise ValueError(f"{name} must be > 0, got {v!r}")
        if self.change_point_span_days <= max(CHANGE_POINTS):
            raise ValueError(
                f"change_point_span_days must exceed the last change point ({max(CHANGE_POINTS)} d), "
                f"got {self.change_point_span_days!r}"
            )
        d = tuple(self.decay_days)
        if not d or any(not (isinstance(x, int | float) and x > 0) for x in d):
            raise ValueError(f"decay_days must be a non-empty sequence of positive numbers, got {self.decay_days!r}")

    # ---- pieces ---------------------------------------------------------------------------------
    def _tenure(self, ev: EventArrays) -> np.ndarray:
        """Days of observable history: since signup, or since the first event when signup is unknown."""
        first = ev.first_ts(None) if ev.m else np.full(ev.n, np.iinfo(np.int64).max)
        start = np.where((ev.signup_ns != INT_MIN) & (ev.signup_ns < ev.cutoff_ns), ev.signup_ns, first)
        start = np.minimum(start, first)
        return np.where(start < ev.cutoff_ns, (ev.cutoff_ns - start) / DAY_NS, 0.0)

    def _own_day_counts(self, ev: EventArrays, tenure: np.ndarray) -> _OwnDays:
        c, age = _own_days(ev)
        base, span = float(self.baseline_days), float(self.change_point_span_days)
        edges = np.unique(
            np.r_[COUNT_WINDOWS, [w + base for w in DROP_WINDOWS], CHANGE_POINTS, span, self.trend_days]
        ).astype(np.float64, copy=False)
        column = {float(e): j for j, e in enumerate(edges)}
        return _OwnDays(ev.n, c, age, tenure, _window_counts(c, age, ev.n, edges), column)

    def _activity(self, ev: EventArrays, tenure: np.ndarray) -> list[np.ndarray]:
        own = self._own_day_counts(ev, tenure)
        rate_year = safe_div(own.within(365), np.maximum(np.minimum(tenure, 365), 1.0))
        # Windows side by side as (n, windows) arrays: the same arithmetic per element in far fewer passes.
        return [
            *own.within(COUNT_WINDOWS).T,
            *self._drops(own),
            rate_year,
            *_change_point(own, float(self.change_point_span_days)),
            *self._trend(own),
            *self._decayed_rates(own),
            *self._silence(ev, rate_year),
        ]

    def _drops(self, own: _OwnDays) -> list[np.ndarray]:
        """Drop ratios: each recent window against the customer's rate over the baseline period before it."""
        base = float(self.baseline_days)
        dw = np.asarray(DROP_WINDOWS, dtype=np.float64)
        t_pre = np.clip(own.tenure[:, None] - dw, 0.0, base)
        recent = own.within(DROP_WINDOWS)
        r_pre = safe_div(own.within(tuple(w + base for w in DROP_WINDOWS)) - recent, t_pre)
        exp_w = r_pre * np.minimum(own.tenure[:, None], dw)
        return list(np.where(t_pre >= 30.0, np.log((recent + 0.5) / (exp_w + 0.5)), 0.0).T)

    def _trend(self, own: _OwnDays) -> list[np.ndarray]:
        """Log-linear trend over the trend window (clipped to tenure); positions x = 1 - age / window."""
        n, c, age = own.n, own.cust, own.age
        win = np.minimum(own.tenure, float(self.trend_days))
        inside = np.flatnonzero(age < win.take(c))
        c_in = c[inside]
        n_t = np.bincount(c_in, minlength=n).astype(np.float64)
        x = 1.0 - age[inside] / win.take(c_in)
        mean_x = safe_div(np.bincount(c_in, weights=x, minlength=n), n_t, 0.5)
        fit = win >= 30.0
        beta = np.where(fit, loglinear_rate(n_t, mean_x), 0.0)
        rate_now = safe_div(n_t, np.maximum(win, 1.0)) * end_factor(beta)
        return [
            np.where(fit, beta * 365.0 / np.maximum(win, 1.0), 0.0),
            rate_now,
            np.exp(-90.0 * rate_now),
        ]

    def _decayed_rates(self, own: _OwnDays) -> list[np.ndarray]:
        out = []
        for d in self.decay_days:
            wsum = np.bincount(own.cust, weights=np.exp(-own.age / d), minlength=own.n)
            # exposure under the same weights: integral of exp(-a/d) over the customer's observed ages
            out.append(safe_div(wsum, d * -np.expm1(-own.tenure / d)))
        return out

    def _silence(self, ev: EventArrays, rate_year: np.ndarray) -> list[np.ndarray]:
        """Days since the last own activity, and that silence in the customer's own expected active days."""
        last = _last_own_ts(ev)
        since = days_since(ev, last, self.recency_cap_days)
        overdue = np.where(last != INT_MIN, since * rate_year, 0.0)
        return [since, overdue, np.exp(-overdue)]

    def _purchases(self, ev: EventArrays, tenure: np.ndarray) -> list[np.ndarray]:
        idx = ev.purchase_idx()
        c, age = ev.cust[idx], ev.age_days()[idx]
        base = float(self.baseline_days)
        edges = np.array(sorted({90.0, 365.0, 90.0 + base}))
        cnt = _window_counts(c, age, ev.n, edges).astype(np.float64)
        col = {float(e): j for j, e in enumerate(edges)}
        freq = np.bincount(c, minlength=ev.n).astype(np.float64)
        first, last = ev.first_ts_at(idx), ev.last_ts_at(idx)
        recency = days_since(ev, last, self.recency_cap_days)
        rep = freq >= 2
        gap = np.zeros(ev.n)
        gap[rep] = (last[rep] - first[rep]) / DAY_NS / (freq[rep] - 1)
        overdue = np.where(gap > 0, safe_div(recency, gap), 0.0)
        missed = np.where(freq > 0, recency * safe_div(freq, np.maximum(tenure, 1.0)), 0.0)
        t_pre = np.clip(tenure - 90.0, 0.0, base)
        exp90 = safe_div(cnt[col[90.0 + base]] - cnt[col[90.0]], t_pre) * np.minimum(tenure, 90.0)
        drop = np.where(t_pre >= 30.0, np.log((cnt[col[90.0]] + 0.5) / (exp90 + 0.5)), 0.0)
        return [overdue, missed, cnt[col[365.0]], drop]

    def _trouble(self, ev: EventArrays) -> list[np.ndarray]:
        age = ev.age_days()
        # Fault/dissatisfaction service contacts and complaints (inbound).
        sidx = np.flatnonzero(SERVICE_DIR.take(ev.kind_dir))
        topic = ev.topic[sidx]
        svc = ev.kind_dir[sidx] == K["service_contact"]
        idx = sidx.compress(~svc | (topic == TROUBLE_TOPICS[0]) | (topic == TROUBLE_TOPICS[1]))
        c, a = ev.cust[idx], age[idx]
        f14 = np.bincount(c.compress(a < 14), minlength=ev.n)
        f30 = np.bincount(c.compress(a < 30), minlength=ev.n)
        since_fault = days_since(ev, ev.last_ts_at(idx), self.recency_cap_days)
        score = np.bincount(c, weights=np.exp(-a / self.trouble_memory_days), minlength=ev.n)
        svc_idx = sidx.compress(svc)
        s30 = np.bincount(ev.cust[svc_idx.compress(age[svc_idx] < 30)], minlength=ev.n)
        sent = ev.numeric("sentiment")
        if sent is None:
            since_neg = np.full(ev.n, float(self.recency_cap_days))
            shift = np.zeros(ev.n)
        else:
            since_neg = days_since(ev, ev.last_ts(sent < self.negative_sentiment), self.recency_cap_days)
            ok = np.flatnonzero(~np.isnan(sent))
            cs, vs, recent = ev.cust[ok], sent[ok], age[ok] < 30
            new, old = np.flatnonzero(recent), np.flatnonzero(~recent)
            n_r = np.bincount(cs[new], minlength=ev.n)
            s_r = np.bincount(cs[new], weights=vs[new], minlength=ev.n)
            n_o = np.bincount(cs[old], minlength=ev.n)
            s_o = np.bincount(cs[old], weights=vs[old], minlength=ev.n)
            prior = safe_div(s_o, n_o)
            # shrink the recent mean toward the customer's earlier mean (two pseudo-observations)
            shift = np.where(n_r > 0, (s_r + 2.0 * prior) / (n_r + 2.0) - prior, 0.0)
        ridx = np.flatnonzero(ev.kind_dir == K["return"])
        ret = np.bincount(ev.cust[ridx.compress(age[ridx] < 30)], minlength=ev.n)
        return [f14, f30, since_fault, score, s30, since_neg, shift, ret]

    # ---- block ----------------------------------------------------------------------------------
    def _block(self, ev: EventArrays) -> np.ndarray:
        tenure = self._tenure(ev)
        cols = [*self._activity(ev, tenure), *self._purchases(ev, tenure), *self._trouble(ev)]
        return np.column_stack(cols).astype(np.float64, copy=False)


def _xlogy_ratio(k: np.ndarray, r: np.ndarray, r_all: np.ndarray) -> np.ndarray:
    """``k * log(r / r_all)``, 0 where ``k == 0`` (the Poisson log-likelihood-ratio terms)."""
    out = np.zeros(k.shape)
    ok = (k > 0) & (r > 0) & (r_all > 0)
    out[ok] = k[ok] * np.log(r[ok] / r_all[ok])
    return out
