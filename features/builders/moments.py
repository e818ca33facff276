"""Micro-moments (know / go / do / buy) and the shopping signals around them, shared by intent and ladders.

Every inbound row gets a micro-moment code from its kind and topic (store visits are *go* whatever
their topic); counts per moment and window, revisits of already-viewed products and cart adds since the
last purchase are memoised on the block, so the intent and ladder families compute them once.
"""

from __future__ import annotations

import numpy as np

from features.builders.activity import purchase_times
from features.builders.events import EventArrays, compiled, cumulate_windows
from features.builders.vocab_codes import N_KINDS, TOPICS, C, K, T

if compiled is not None:  # compiled with the shared kernel (at import), used when the block asks for it
    from features.builders.kernel_intent import moment_pass, revisit_pass

MOMENTS: tuple[str, ...] = ("know", "go", "do", "buy")


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


def compiled_moments(ev: EventArrays) -> bool:
    """With the kernel on, fill the moment memos (codes, counts, cart adds, last buy signal) from one compiled
    pass; whether it ran."""
    if not ev.kernel or compiled is None:
        return False

    def _run() -> bool:
        _, last_p = purchase_times(ev)
        ev.remember(moment_pass(ev, MOMENT_LUT, len(TOPICS), K["visit"], C["store"], K["add_to_cart"], last_p))
        return True

    return ev.memo("moment_pass", _run)


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

    compiled_moments(ev)
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

    compiled_moments(ev)
    return ev.memo("moment_counts", _m)


def product_revisits(ev: EventArrays) -> np.ndarray:
    """Product views of a product the customer had already viewed: shape (n, 4) by window."""

    def _r():
        idx, prod = ev.product_views()
        if ev.kernel and compiled is not None:
            return revisit_pass(ev, idx, prod)
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



def cart_since_purchase(ev: EventArrays) -> np.ndarray:
    """Cart adds after the customer's last purchase (all cart adds when they never bought)."""

    def _c():
        _, last_p = purchase_times(ev)
        idx = np.flatnonzero(ev.kind_dir == K["add_to_cart"])
        after = ev.ts[idx] > last_p.take(ev.cust[idx])
        return np.bincount(ev.cust[idx.compress(after)], minlength=ev.n)

    compiled_moments(ev)
    return ev.memo("cart_since_purchase", _c)


def buy_last_ts(ev: EventArrays) -> np.ndarray:
    """Per customer, the ts of the last buy micro-moment (int64 min when none)."""

    def _b():
        midx = moment_idx(ev)
        return ev.last_ts_at(midx.compress(moment_codes(ev)[midx] == 3))

    compiled_moments(ev)
    return ev.memo("buy_last_ts", _b)
