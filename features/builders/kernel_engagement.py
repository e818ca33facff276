"""The engagement family's compiled pass: assisted visits (chats and calls inside a web/app visit), active days
and the active touches between purchases of one block, in sweeps over its customer-sorted events.

It reproduces :class:`~features.builders.engagement.EngagementBuilder`'s numpy path on integers only, so its
results are equal exactly. The decayed engagement sum stays numpy's arithmetic (vectorised ``exp2`` and
``log1p`` round differently from Numba's scalar libm calls in the last bit, and the golden feature digests
are byte-exact). Compiled at import with explicit signatures and ``cache=True``, like
:mod:`features.builders.kernel`.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from features.builders.kernel import frozen
from features.builders.kernel import readonly_1d as _ro
from features.contract.schema import DAY_NS

_SIG = nb.void(
    _ro(nb.int32), _ro(nb.int64), _ro(nb.int16), _ro(nb.int8),  # cust, ts, kind_dir, channel
    _ro(nb.boolean), _ro(nb.boolean), _ro(nb.boolean),  # active (kind_dir), assist and web (channel) lookups
    _ro(nb.int64), _ro(nb.int64), _ro(nb.int8),  # first and last purchase ts, window bucket per event
    nb.int64, nb.int64,  # purchase kind_dir code, assisted gap (ns)
    nb.boolean[::1], nb.int64[::1], nb.int64[:, ::1], nb.int64[::1],  # assisted rows, count, days (n, 3), between
)


@nb.njit(nb.boolean(_ro(nb.boolean), nb.int8), cache=True, nogil=True, inline="always")
def _lut(lut, code):
    """``lut.take(code)`` with numpy's reading of -1 (the trailing slot)."""
    return lut[code] if code >= 0 else lut[lut.shape[0] - 1]


@nb.njit(nb.void(_ro(nb.int32), _ro(nb.int64), _ro(nb.int16), _ro(nb.int8), _ro(nb.boolean), _ro(nb.boolean),
                 _ro(nb.boolean), nb.int64, nb.int64, nb.int64, nb.int64, nb.boolean[::1]), cache=True, nogil=True)
def _sweep(cust, ts, kind_dir, channel, active, assist, web, gap, start, stop, step, out):
    """One direction of :func:`_assisted_rows`: flag active chats/calls within ``gap`` of the customer's last
    web/app touch met so far in the sweep (forward: the one before; backward: the one after)."""
    seen_c, seen_t, has = -1, 0, False
    for i in range(start, stop, step):
        c = cust[i]
        if c != seen_c:
            seen_c, seen_t, has = c, 0, False
        ch = channel[i]
        if _lut(web, ch):
            seen_t, has = ts[i], True
        elif _lut(assist, ch) and active[kind_dir[i]] and has and abs(ts[i] - seen_t) <= gap:
            out[i] = True


@nb.njit(nb.void(_ro(nb.int32), _ro(nb.int64), _ro(nb.int16), _ro(nb.int8), _ro(nb.boolean), _ro(nb.boolean),
                 _ro(nb.boolean), nb.int64, nb.boolean[::1]), cache=True, nogil=True)
def _assisted_rows(cust, ts, kind_dir, channel, active, assist, web, gap, out):
    """Active chats/calls within ``gap`` of the customer's nearest web/app touch before or after them."""
    m = cust.shape[0]
    _sweep(cust, ts, kind_dir, channel, active, assist, web, gap, 0, m, 1, out)
    _sweep(cust, ts, kind_dir, channel, active, assist, web, gap, m - 1, -1, -1, out)


@nb.njit(_SIG, cache=True, nogil=True)
def _engagement_pass(cust, ts, kind_dir, channel, active, assist, web, first_purchase, last_purchase, bucket,
                     purchase, gap, inside, assisted, days, between):
    _assisted_rows(cust, ts, kind_dir, channel, active, assist, web, gap, inside)
    day_c, day = -1, -1
    for i in range(cust.shape[0]):
        c = cust[i]
        if inside[i]:
            assisted[c] += 1
        kd = kind_dir[i]
        if not active[kd]:
            continue
        b = bucket[i]
        if b <= 2:  # a new (customer, day) among active rows of the last 90 days
            d = ts[i] // DAY_NS
            if c != day_c or d != day:
                day_c, day = c, d
                days[c, b] += 1
        if kd != purchase and first_purchase[c] < ts[i] < last_purchase[c]:
            between[c] += 1
    for c in range(days.shape[0]):
        days[c, 1] += days[c, 0]
        days[c, 2] += days[c, 1]


def engagement_pass(ev, active: np.ndarray, assist: np.ndarray, web: np.ndarray, first_purchase: np.ndarray,
                    last_purchase: np.ndarray, purchase: int, gap_ns: int) -> tuple[np.ndarray, ...]:
    """Assisted rows (ascending indices), assisted visits, active days (n, 3: 7d, 30d, 90d) and active
    non-purchase touches strictly between the first and last purchase, per customer of the block ``ev``."""
    inside = np.zeros(ev.m, dtype=np.bool_)
    assisted = np.zeros(ev.n, dtype=np.int64)
    days = np.zeros((ev.n, 3), dtype=np.int64)
    between = np.zeros(ev.n, dtype=np.int64)
    _engagement_pass(
        frozen(ev.cust, np.int32), frozen(ev.ts, np.int64), frozen(ev.kind_dir, np.int16), frozen(ev.channel, np.int8),
        frozen(active, np.bool_), frozen(assist, np.bool_), frozen(web, np.bool_),
        frozen(first_purchase, np.int64), frozen(last_purchase, np.int64), frozen(ev.window_bucket(), np.int8),
        int(purchase), int(gap_ns), inside, assisted, days, between,
    )
    return np.flatnonzero(inside), assisted, days, between
