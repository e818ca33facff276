"""The touchpoint log indexed once for a cutoff and cut into blocks of whole customers.

:class:`EventSource` indexes the touchpoint frame once (customer codes, timestamps as int64 ns, whether
rows are already ordered by customer and time) and hands out :class:`~features.builders.events.EventArrays`
blocks of whole customers.

Why blocks: every family aggregates with ``np.bincount`` on combined (customer x category) keys, and
on blocks of a few hundred thousand events all temporaries stay in cache and in memory the process
already owns (large fresh arrays cost page faults that dominate run time on small VMs); blocks also
let threads share the work, since numpy and pyarrow kernels release the GIL.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.builders.column_coding import CodedColumn
from features.builders.events import INT64_MIN, EventArrays
from features.builders.kernel_mode import use_kernel
from features.builders.vocab_codes import N_OUT, is_price_offer, vocab_lut
from features.contract.cutoffs import utc_timestamp
from features.contract.schema import CONSENT_COLUMNS, OUTREACH_CHANNELS, Tables

NUMERIC_COLUMNS: tuple[str, ...] = ("duration_s", "pages", "amount", "discount", "sentiment")
DEFAULT_BLOCK_EVENTS = 1 << 18


def to_cutoff_ns(cutoff) -> int:
    """A cutoff (str, datetime, Timestamp) as int64 nanoseconds since the epoch, UTC."""
    if pd.Timestamp(cutoff) is pd.NaT:
        raise ValueError("cutoff is missing (NaT); pass an explicit date such as '2024-06-30'")
    return int(utc_timestamp(cutoff).as_unit("ns").value)


def _ts_ns(s: pd.Series, table: str) -> np.ndarray:
    """Timestamps as int64 ns (NaT = int64 min); no copy for a datetime64[ns] column."""
    if not (isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s.dtype)):
        raise ValueError(
            f"{table}.{s.name}: expected timestamps, got dtype {s.dtype} "
            "(validate the tables with features.contract.validate.validate_tables first)"
        )
    arr = s.array
    if getattr(arr, "unit", "ns") != "ns":
        arr = arr.as_unit("ns")
    return np.asarray(arr.asi8)


class EventSource:
    """The touchpoint log of ``tables`` indexed once for a cutoff; hands out :class:`EventArrays` blocks.

    Validated tables are already ordered by (customer, ts): blocks are then plain row ranges and
    nothing is copied up front. Any other order is sorted here (stable on ts), so results never
    depend on the input row order.
    """

    def __init__(self, tables: Tables, cutoff):
        self.cutoff_ns = to_cutoff_ns(cutoff)
        self.kernel = use_kernel()  # ENGAGE_FEATURE_KERNEL=numpy forces the numpy reference path
        cus = tables.customers
        if "customer_id" not in cus.columns:
            raise ValueError("customers.customer_id: column missing")
        self.ids = pd.Index(cus["customer_id"].astype(str))
        self.n = len(self.ids)
        tp = tables.touchpoints
        missing = [c for c in ("customer_id", "ts", "kind", "direction", "channel") if c not in tp.columns]
        if missing:
            raise ValueError(f"touchpoints: required columns missing: {missing}")
        cust = _customer_codes(tp["customer_id"], self.ids, "touchpoints")
        ts = _ts_ns(tp["ts"], "touchpoints")
        self.order = None if _is_ordered(cust, ts) else np.lexsort((ts, cust))
        # Position space: positions index rows in (customer, ts) order.
        self.cust_pos = cust if self.order is None else cust[self.order]
        self.ts_src = ts
        self.cust_src = cust
        self.all_before = bool(ts.size == 0 or ts.max() < self.cutoff_ns)
        self.columns = {
            c: CodedColumn(tp[c])
            for c in ("kind", "channel", "direction", "referrer", "device", "topic", "product_id", "offer_id")
            if c in tp.columns
        }
        self.numeric = {
            c: tp[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in NUMERIC_COLUMNS if c in tp.columns
        }
        self._outreach(tables.outreach)
        self.signup_ns = (
            _ts_ns(cus["signup_ts"], "customers")
            if "signup_ts" in cus.columns
            else np.full(self.n, INT64_MIN, dtype=np.int64)
        )
        consent = np.zeros((self.n, N_OUT), dtype=np.float64)
        for j, c in enumerate(OUTREACH_CHANNELS):
            col = CONSENT_COLUMNS[c]
            if col in cus.columns:
                consent[:, j] = _bool_values(cus[col])
        self.consent = consent

    def _outreach(self, out: pd.DataFrame | None) -> None:
        if out is None or not len(out):
            self.out_cust = np.zeros(0, np.int32)
            self.out_ts = np.zeros(0, np.int64)
            self.out_channel = np.zeros(0, np.int8)
            self.out_discount = np.zeros(0, bool)
            return
        ocust = _customer_codes(out["customer_id"], self.ids, "outreach")
        ots = _ts_ns(out["ts"], "outreach")
        ch = CodedColumn(out["channel"]).encode(slice(0, len(out)), lambda c: vocab_lut(c, OUTREACH_CHANNELS), np.int8)
        ok = (ots < self.cutoff_ns) & (ch >= 0)
        if "holdout" in out.columns:
            ok &= ~_bool_values(out["holdout"])
        if "offer" in out.columns:
            disc = CodedColumn(out["offer"]).encode(
                slice(0, len(out)),
                lambda cats: np.array([is_price_offer(str(c)) for c in cats] + [False]),
                bool,
            )
        else:
            disc = np.zeros(len(out), dtype=bool)
        oo = np.flatnonzero(ok)
        if not _is_ordered(ocust[oo], ots[oo]):
            oo = oo[np.lexsort((ots[oo], ocust[oo]))]
        self.out_cust, self.out_ts, self.out_channel, self.out_discount = ocust[oo], ots[oo], ch[oo], disc[oo]

    def block(self, lo: int, hi: int, p0: int, p1: int) -> EventArrays:
        """Customers ``[lo, hi)`` whose events occupy positions ``[p0, p1)``."""
        if self.order is None:
            rows: slice | np.ndarray = slice(p0, p1)
            ts = self.ts_src[p0:p1]
            cust = self.cust_src[p0:p1]
            if not self.all_before:
                keep = np.flatnonzero(ts < self.cutoff_ns)
                if keep.size < ts.size:
                    rows = keep + p0
                    ts, cust = ts[keep], cust[keep]
        else:
            rows = self.order[p0:p1]
            ts = self.ts_src[rows]
            keep = np.flatnonzero(ts < self.cutoff_ns)
            rows, ts = rows[keep], ts[keep]
            cust = self.cust_src[rows]
        o0, o1 = np.searchsorted(self.out_cust, np.array([lo, hi], dtype=self.out_cust.dtype))
        return EventArrays(
            n=hi - lo,
            cutoff_ns=self.cutoff_ns,
            cust=cust - np.int32(lo) if lo else cust,
            ts=ts,
            rows=rows,
            columns=self.columns,
            numeric_columns=self.numeric,
            out_cust=self.out_cust[o0:o1] - lo,
            out_ts=self.out_ts[o0:o1],
            out_channel=self.out_channel[o0:o1],
            out_discount=self.out_discount[o0:o1],
            signup_ns=self.signup_ns[lo:hi],
            consent=self.consent[lo:hi],
            lo=lo,
            kernel=self.kernel,
        )

    def blocks(self, block_events: int = DEFAULT_BLOCK_EVENTS) -> list[tuple[int, int, int, int]]:
        """Block bounds ``(lo, hi, p0, p1)``: whole customers, about ``block_events`` events each."""
        m = len(self.cust_pos)
        k = max(1, -(-m // max(int(block_events), 1)))
        if k == 1 or self.n < 2:
            return [(0, self.n, 0, m)]
        # Cut at the customer holding each target position, so no customer is split.
        targets = np.linspace(0, m, k + 1)[1:-1].astype(np.int64)
        cuts = np.unique(np.r_[0, self.cust_pos[targets].astype(np.int64), self.n])
        # Same dtype as the codes, or searchsorted converts the whole code array on every call.
        pos = np.searchsorted(self.cust_pos, cuts.astype(self.cust_pos.dtype))
        pos[-1] = m
        return [(int(cuts[i]), int(cuts[i + 1]), int(pos[i]), int(pos[i + 1])) for i in range(len(cuts) - 1)]

    def whole(self) -> EventArrays:
        """Every customer as one block."""
        return self.block(0, self.n, 0, len(self.cust_pos))


def _is_ordered(cust: np.ndarray, ts: np.ndarray, chunk: int = 1 << 20) -> bool:
    """Rows ordered by (customer, ts)? Checked in chunks to keep temporaries small."""
    m = cust.size
    for s in range(0, max(m - 1, 0), chunk):
        e = min(s + chunk + 1, m)
        c, t = cust[s:e], ts[s:e]
        dc = c[1:] - c[:-1]
        if (dc < 0).any() or ((dc == 0) & (t[1:] < t[:-1])).any():
            return False
    return True


def _bool_values(s: pd.Series) -> np.ndarray:
    """A flag column as a bool array, missing = False (a plain bool column as is: no NA pass)."""
    if s.dtype == np.bool_:
        return s.to_numpy()
    return s.to_numpy(dtype=bool, na_value=False)


def _customer_codes(col: pd.Series, ids: pd.Index, table: str) -> np.ndarray:
    """Customer codes aligned with the ``customers`` order (validated tables carry them as categoricals)."""
    if isinstance(col.dtype, pd.CategoricalDtype) and col.array.categories.equals(ids):
        codes = col.array.codes
    else:
        codes = ids.get_indexer(col.astype(str))
    if codes.size and codes.min() < 0:
        bad = int((codes < 0).sum())
        raise ValueError(
            f"{table}.customer_id: {bad} rows name customers missing from the customers table "
            "(validate the tables with features.contract.validate.validate_tables first)"
        )
    return codes.astype(np.int32, copy=False)


def event_arrays(tables: Tables, cutoff) -> EventArrays:
    """The events of ``tables`` strictly before ``cutoff``, all customers in one block."""
    return EventSource(tables, cutoff).whole()
