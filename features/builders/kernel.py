"""The compiled feature kernel: one pass over a block's customer-sorted events for the shared aggregates.

Several families read the same per-customer aggregates (counts by direction, kind and window; active touches
by channel and window; first, last-active and purchase times; each event's window bucket). The numpy path
builds each with its own passes (comparisons, ``bincount`` on combined keys, group boundaries); this kernel
reads the block's coded arrays once and fills all of them together, with Numba.

Compile time never reaches a request: the functions carry explicit signatures, so Numba compiles them when
this module is imported (a worker imports it while loading its model, before it reports ready), and
``cache=True`` keeps the machine code beside the source for the next process. ``nogil=True`` lets the
pipeline's threads run blocks side by side. Outputs are allocated by the caller with numpy, so memory
accounting (tracemalloc) sees them. Counts and times are integers: equal to the numpy path exactly.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from features.contract.schema import DAY_NS

INT64_MIN = np.iinfo(np.int64).min
INT64_MAX = np.iinfo(np.int64).max
_D7, _D30, _D90 = 7 * DAY_NS, 30 * DAY_NS, 90 * DAY_NS


def readonly_1d(dtype) -> nb.types.Array:
    """A read-only contiguous 1-d array type: accepts writable arrays too, and the read-only buffers pandas
    and arrow hand out (categorical codes) without a copy."""
    return nb.types.Array(dtype, 1, "C", readonly=True)


def frozen(a: np.ndarray, dtype) -> np.ndarray:
    """``a`` as a contiguous read-only view of ``dtype`` (a copy only when the dtype or layout differs).

    Passing exactly the compiled signature's types keeps Numba on its fast dispatch path; a writable array
    given for a read-only parameter would go through its slow conversion path on every call, which costs more
    than a whole one-customer block."""
    v = np.ascontiguousarray(a, dtype=dtype).view()
    v.flags.writeable = False
    return v


_SHARED_SIG = nb.void(
    readonly_1d(nb.int32), readonly_1d(nb.int64), readonly_1d(nb.int16), readonly_1d(nb.int8),
    readonly_1d(nb.boolean), nb.int64, nb.int64,
    nb.int8[::1], nb.int64[:, :, ::1], nb.int64[:, :, ::1], nb.int64[::1], nb.int64[::1], nb.int64[::1],
    nb.int64[::1],
)


@nb.njit(_SHARED_SIG, cache=True, nogil=True, boundscheck=False)
def _shared_pass(cust, ts, kind_dir, channel, active_lut, purchase, cutoff_ns,
                 bucket, kind_counts, active_channels, first_ts, last_active, first_purchase, last_purchase):
    n = kind_counts.shape[0]
    n_channels = active_channels.shape[1]
    for c in range(n):
        first_ts[c] = INT64_MAX
        last_active[c] = INT64_MIN
        first_purchase[c] = INT64_MAX
        last_purchase[c] = INT64_MIN
    for i in range(cust.shape[0]):
        c = cust[i]
        t = ts[i]
        age = cutoff_ns - t
        b = np.int8((age >= _D7) + (age >= _D30) + (age >= _D90))
        bucket[i] = b
        kd = kind_dir[i]
        kind_counts[c, kd, b] += 1
        if first_ts[c] == INT64_MAX:  # rows are ts-ordered within a customer: the first row is the earliest
            first_ts[c] = t
        if active_lut[kd]:
            last_active[c] = t
            ch = channel[i]
            if 0 <= ch < n_channels:
                active_channels[c, ch, b] += 1
        if kd == purchase:
            if first_purchase[c] == INT64_MAX:
                first_purchase[c] = t
            last_purchase[c] = t
    # Buckets (<7d, 7-30d, 30-90d, older) into cumulative windows (7d, 30d, 90d, all time).
    for c in range(n):
        for k in range(kind_counts.shape[1]):
            for j in range(1, 4):
                kind_counts[c, k, j] += kind_counts[c, k, j - 1]
        for k in range(n_channels):
            for j in range(1, 4):
                active_channels[c, k, j] += active_channels[c, k, j - 1]


def shared_aggregates(cust: np.ndarray, ts: np.ndarray, kind_dir: np.ndarray, channel: np.ndarray,
                      active_lut: np.ndarray, purchase: int, cutoff_ns: int, n: int,
                      n_kind_dir: int, n_channels: int) -> dict[str, np.ndarray]:
    """The shared aggregates of one block in one pass; keys as :class:`EventArrays` memoises them:
    ``bucket`` (per event), ``kind_counts`` (n, n_kind_dir, 4), ``active_channel_counts`` (n, n_channels, 4),
    ``first_ts_all``, ``last_active_ts``, ``first_purchase_ts``, ``last_purchase_ts`` (n; int64 max/min when
    none)."""
    m = len(cust)
    out = {
        "bucket": np.empty(m, dtype=np.int8),
        "kind_counts": np.zeros((n, n_kind_dir, 4), dtype=np.int64),
        "active_channel_counts": np.zeros((n, n_channels, 4), dtype=np.int64),
        "first_ts_all": np.empty(n, dtype=np.int64),
        "last_active_ts": np.empty(n, dtype=np.int64),
        "first_purchase_ts": np.empty(n, dtype=np.int64),
        "last_purchase_ts": np.empty(n, dtype=np.int64),
    }
    _shared_pass(
        frozen(cust, np.int32),
        frozen(ts, np.int64),
        frozen(kind_dir, np.int16),
        frozen(channel, np.int8),
        frozen(active_lut, np.bool_),
        int(purchase),
        int(cutoff_ns),
        out["bucket"],
        out["kind_counts"],
        out["active_channel_counts"],
        out["first_ts_all"],
        out["last_active_ts"],
        out["first_purchase_ts"],
        out["last_purchase_ts"],
    )
    return out


@nb.njit(nb.int64(readonly_1d(nb.int32), readonly_1d(nb.int64), readonly_1d(nb.int16), readonly_1d(nb.boolean),
                  nb.int64[::1], nb.int64[::1]), cache=True, nogil=True)
def _day_starts(cust, ts, kind_dir, selected, rows, last_ts):
    count = 0
    prev_c, prev_day = -1, -1
    for c in range(last_ts.shape[0]):
        last_ts[c] = INT64_MIN
    for i in range(cust.shape[0]):
        if not selected[kind_dir[i]]:
            continue
        c = cust[i]
        last_ts[c] = ts[i]
        day = ts[i] // DAY_NS
        if c != prev_c or day != prev_day:
            prev_c, prev_day = c, day
            rows[count] = i
            count += 1
    return count


def day_starts(cust: np.ndarray, ts: np.ndarray, kind_dir: np.ndarray, selected: np.ndarray,
               n: int) -> tuple[np.ndarray, np.ndarray]:
    """Among the rows whose ``kind_dir`` is ``selected`` (a lookup), the first row of every (customer, calendar
    day) in row order (ascending indices), and per customer the ts of the last selected row (int64 min when
    none)."""
    rows = np.empty(len(cust), dtype=np.int64)
    last_ts = np.empty(n, dtype=np.int64)
    count = _day_starts(frozen(cust, np.int32), frozen(ts, np.int64), frozen(kind_dir, np.int16),
                        frozen(selected, np.bool_), rows, last_ts)
    return rows[:count].copy(), last_ts
