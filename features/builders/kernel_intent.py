"""The micro-moment and intent family's compiled passes over one block's customer-sorted events.

``moment_pass`` (no parameters, shared by the intent and ladder families): the micro-moment code of every
event, counts per (customer, moment, window), cart adds after the last purchase and the last buy-moment time.
``path_pass``: the path to the last purchase (assets, channels, calls and chats in the ``path_days`` before it).

They reproduce :mod:`features.builders.moments` and :class:`~features.builders.intent.IntentBuilder`'s numpy
path on integers, so results are equal exactly; the decayed buy-intent sum stays numpy's arithmetic (see
:mod:`features.builders.kernel_engagement`). Compiled at import with explicit signatures and ``cache=True``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from features.builders.kernel import frozen
from features.builders.kernel import readonly_1d as _ro
from features.contract.schema import DAY_NS

INT64_MIN = np.iinfo(np.int64).min

_MOMENT_SIG = nb.void(
    _ro(nb.int32), _ro(nb.int64), _ro(nb.int16), _ro(nb.int8), _ro(nb.int8), _ro(nb.int8), _ro(nb.int8),
    _ro(nb.int8), _ro(nb.int64), nb.int64[::1],  # cust ts kind_dir kind channel topic bucket lut last_p consts
    nb.int8[::1], nb.int64[:, :, ::1], nb.int64[::1], nb.int64[::1],  # code, counts (n,4,4), cart, buy_last
)


@nb.njit(_MOMENT_SIG, cache=True, nogil=True)
def _moment_pass(cust, ts, kind_dir, kind, channel, topic, bucket, lut, last_purchase, consts,
                 code, counts, cart, buy_last):
    n_topics1, visit, store, add_to_cart = consts[0], consts[1], consts[2], consts[3]
    for c in range(counts.shape[0]):
        buy_last[c] = INT64_MIN
    for i in range(cust.shape[0]):
        c = cust[i]
        kd = kind_dir[i]
        m = lut[kd * n_topics1 + topic[i] + 1]
        if channel[i] == store and kind[i] == visit:  # store visits are *go* whatever their topic
            m = 1
        code[i] = m
        if m >= 0:
            counts[c, m, bucket[i]] += 1
            if m == 3:
                buy_last[c] = ts[i]
        if kd == add_to_cart and ts[i] > last_purchase[c]:
            cart[c] += 1
    for c in range(counts.shape[0]):
        for k in range(4):
            for j in range(1, 4):
                counts[c, k, j] += counts[c, k, j - 1]


_INTENT_SIG = nb.void(
    _ro(nb.int32), _ro(nb.int64), _ro(nb.int16), _ro(nb.int8), _ro(nb.boolean), _ro(nb.int64),
    nb.int64[::1],  # purchase kind_dir code, path (ns), call and chat channel codes
    nb.int64[::1], nb.int64[::1], nb.int64[::1],  # assets, channel counts (n * n_channels), calls
)


@nb.njit(_INTENT_SIG, cache=True, nogil=True)
def _path_pass(cust, ts, kind_dir, channel, active, last_purchase, iparams, assets, chans, calls):
    purchase, path_ns, call, chat = iparams[0], iparams[1], iparams[2], iparams[3]
    n_channels = chans.shape[0] // assets.shape[0]
    for i in range(cust.shape[0]):
        c = cust[i]
        kd = kind_dir[i]
        lp = last_purchase[c]
        if active[kd] and kd != purchase and lp != INT64_MIN and lp - path_ns <= ts[i] < lp:
            assets[c] += 1
            ch = channel[i]
            key = c * n_channels + ch  # numpy's combined key, also for a missing channel (-1)
            if key >= 0:
                chans[key] += 1
            if ch == call or ch == chat:  # noqa: SIM109 - two scalar tests compile simpler than a tuple
                calls[c] += 1


def moment_pass(ev, lut: np.ndarray, n_topics: int, visit: int, store: int, add_to_cart: int,
                last_purchase: np.ndarray) -> dict[str, np.ndarray]:
    """Moment code per event, counts (n, 4 moments, 4 cumulative windows), cart adds after the last purchase
    and the last buy-moment ts (int64 min when none) of the block ``ev``."""
    out = {
        "moment_codes": np.empty(ev.m, dtype=np.int8),
        "moment_counts": np.zeros((ev.n, 4, 4), dtype=np.int64),
        "cart_since_purchase": np.zeros(ev.n, dtype=np.int64),
        "buy_last_ts": np.empty(ev.n, dtype=np.int64),
    }
    i8 = np.int8
    _moment_pass(
        frozen(ev.cust, np.int32), frozen(ev.ts, np.int64), frozen(ev.kind_dir, np.int16), frozen(ev.kind, i8),
        frozen(ev.channel, i8), frozen(ev.topic, i8), frozen(ev.window_bucket(), i8), frozen(lut, i8),
        frozen(last_purchase, np.int64), np.array([n_topics + 1, visit, store, add_to_cart], dtype=np.int64),
        out["moment_codes"], out["moment_counts"], out["cart_since_purchase"], out["buy_last_ts"],
    )
    return out


def path_pass(ev, active: np.ndarray, last_purchase: np.ndarray, path_days: float, purchase: int, call: int,
              chat: int, n_channels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Assets, channel counts (n, n_channels) and calls/chats among the active non-purchase touches in the
    ``path_days`` before each customer's last purchase, for the block ``ev``."""
    assets = np.zeros(ev.n, dtype=np.int64)
    chans = np.zeros(ev.n * n_channels, dtype=np.int64)
    calls = np.zeros(ev.n, dtype=np.int64)
    _path_pass(
        frozen(ev.cust, np.int32), frozen(ev.ts, np.int64), frozen(ev.kind_dir, np.int16), frozen(ev.channel, np.int8),
        frozen(active, np.bool_), frozen(last_purchase, np.int64),
        np.array([purchase, int(path_days * DAY_NS), call, chat], dtype=np.int64), assets, chans, calls,
    )
    return assets, chans.reshape(ev.n, n_channels), calls


@nb.njit(nb.void(_ro(nb.int64), _ro(nb.int32), _ro(nb.int32), _ro(nb.int8), nb.int64[::1], nb.int64[:, ::1]),
         cache=True, nogil=True)
def _revisit_pass(rows, products, cust, bucket, seen, counts):
    for j in range(rows.shape[0]):
        p = products[j]
        if p < 0:
            continue
        i = rows[j]
        c = cust[i]
        if seen[p] == c:  # rows are customer-sorted: the product was viewed before by this customer
            counts[c, bucket[i]] += 1
        else:
            seen[p] = c
    for c in range(counts.shape[0]):
        for k in range(1, 4):
            counts[c, k] += counts[c, k - 1]


def revisit_pass(ev, rows: np.ndarray, products: np.ndarray) -> np.ndarray:
    """Views of a product the customer had viewed before, per customer and cumulative window (n, 4), from the
    product views ``rows`` (ascending) and their block-local product codes (-1: unknown)."""
    counts = np.zeros((ev.n, 4), dtype=np.int64)
    if rows.size:
        seen = np.full(int(products.max()) + 1 if products.size else 0, -1, dtype=np.int64)
        _revisit_pass(frozen(rows, np.int64), frozen(products, np.int32), frozen(ev.cust, np.int32),
                      frozen(ev.window_bucket(), np.int8), seen, counts)
    return counts
