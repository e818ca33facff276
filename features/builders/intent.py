"""The intent family: micro-moments, search and product behaviour, the path to purchase and buy intent.

The buy-intent score adds recent, decayed micro-moment signals, cart adds not followed by a purchase
and revisits of already-viewed products, and divides by the training median so it reads 0-1.
"""

from __future__ import annotations

import numpy as np

from features.builders.activity import active_non_purchase_idx, purchase_times
from features.builders.base import INT_MIN, FeatureBuilder, days_since, per_member, safe_div
from features.builders.events import EventArrays, compiled
from features.builders.moments import (
    MOMENTS,
    buy_last_ts,
    cart_since_purchase,
    moment_codes,
    moment_counts,
    moment_idx,
    product_revisits,
)
from features.builders.vocab_codes import ACTIVE_DIR, N_CHANNELS, C, K
from features.contract.schema import DAY_NS, DEVICES, REFERRERS

if compiled is not None:  # compiled with the shared kernel (at import), used when the block asks for it
    from features.builders.kernel_intent import path_pass

# What counts as a signal of each micro-moment.
MOMENT_SIGNALS: dict[str, str] = {
    "know": "info/search (I-want-to-know)",
    "go": "store locator and store visits (I-want-to-go)",
    "do": "how-to content (I-want-to-do)",
    "buy": "product views, filters, price pages, cart adds (I-want-to-buy)",
}


def _moment_columns(m: str) -> list[tuple[str, str]]:
    """The columns of micro-moment ``m``."""
    what = MOMENT_SIGNALS[m]
    return [
        (f"intent_{m}_7d", f"{what} signals, last 7 days"),
        (f"intent_{m}_30d", f"{what} signals, last 30 days"),
        (f"intent_{m}_total", f"{what} signals ever"),
        (f"intent_{m}_share_30d", f"share of {m} among micro-moment signals in the last 30 days"),
    ]


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
        out = per_member(MOMENTS, _moment_columns)
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
        assets, chans, calls = self._path(ev)
        raw = self._raw(ev)
        cols += [
            assets,
            (chans > 0).sum(1),
            calls,
            days_since(ev, buy_last_ts(ev), 3650.0),
            raw,
            raw / (raw + self.scale_),
        ]
        return np.column_stack(cols).astype(np.float64, copy=False)

    def _path(self, ev: EventArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Active non-purchase touches within path_days before the last purchase: their count, counts by channel
        (n, N_CHANNELS) and calls/chats among them."""
        _, last_p = purchase_times(ev)
        if ev.kernel and compiled is not None:
            return path_pass(ev, ACTIVE_DIR, last_p, float(self.path_days), K["purchase"], C["call_center"], C["chat"],
                             N_CHANNELS)
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
        return assets, chans, calls
