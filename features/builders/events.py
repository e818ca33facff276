"""One shared pass over the event log: the touchpoints before a cutoff as flat numpy arrays.

:class:`EventSource` indexes the touchpoint frame once (customer codes, timestamps as int64 ns, whether
rows are already ordered by customer and time) and cuts it into blocks of whole customers.
An :class:`EventArrays` block exposes the block's events strictly before the cutoff as numpy arrays:
customer codes local to the block, ``ts``, and the categorical columns as small integer codes over
the fixed vocabularies of :mod:`features.contract.schema`, derived lazily and once per block.

Why blocks: every family aggregates with ``np.bincount`` on combined (customer x category) keys, and
on blocks of a few hundred thousand events all temporaries stay in cache and in memory the process
already owns (large fresh arrays cost page faults that dominate run time on small VMs); blocks also
let threads share the work, since numpy and pyarrow kernels release the GIL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contract.cutoffs import utc_timestamp
from features.contract.schema import (
    CHANNELS,
    CONSENT_COLUMNS,
    CONTENT_TOPICS,
    DAY_NS,
    DEVICES,
    DIRECTIONS,
    KINDS,
    OUTREACH_CHANNELS,
    PASSIVE_KINDS,
    REFERRERS,
    SERVICE_TOPICS,
    Tables,
)

TOPICS: tuple[str, ...] = SERVICE_TOPICS + CONTENT_TOPICS
K: dict[str, int] = {k: i for i, k in enumerate(KINDS)}
C: dict[str, int] = {c: i for i, c in enumerate(CHANNELS)}
T: dict[str, int] = {t: i for i, t in enumerate(TOPICS)}
N_KINDS, N_CHANNELS, N_OUT = len(KINDS), len(CHANNELS), len(OUTREACH_CHANNELS)
# Lookup: kind code -> True when an inbound touch of that kind is customer activity.
ACTIVE_KIND = np.array([k not in PASSIVE_KINDS for k in KINDS], dtype=bool)
NUMERIC_COLUMNS: tuple[str, ...] = ("duration_s", "pages", "amount", "discount", "sentiment")
PRICE_OFFER_WORDS: tuple[str, ...] = ("discount", "bogo", "coupon", "percent", "sale")
INT64_MIN = np.iinfo(np.int64).min
INT64_MAX = np.iinfo(np.int64).max
DEFAULT_BLOCK_EVENTS = 1 << 18
# Kinds whose topic is read (content topics on page views and visits, service topics on contacts).
TOPIC_KINDS: tuple[str, ...] = ("page_view", "visit", "service_contact", "complaint")
# Kinds whose device is read: visits (the device mix describes how the customer comes to us).
SESSION_KINDS: tuple[str, ...] = ("visit",)


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


def is_price_offer(name: str) -> bool:
    """Whether an offer name denotes a price incentive (discount, bogo, coupon, ...)."""
    low = name.lower()
    return any(w in low for w in PRICE_OFFER_WORDS)


def _vocab_lut(cats, vocab: tuple[str, ...]) -> np.ndarray:
    """Lookup from a column's own category codes (plus a trailing slot for missing) to ``vocab`` codes."""
    pos = {v: i for i, v in enumerate(vocab)}
    return np.array([pos.get(str(c), -1) for c in cats] + [-1], dtype=np.int8)


def kind_dir_lut(inbound: dict[str, object] | tuple[str, ...], dtype=bool, fill=False) -> np.ndarray:
    """Lookup over ``kind_dir`` codes (inbound kinds, then outbound kinds): ``inbound`` (kinds, or kind ->
    value) set for inbound rows of those kinds, ``fill`` elsewhere, including the trailing slot that
    code -1 (a missing kind) reads.

    One gather on ``kind_dir`` replaces comparing kinds and directions separately.
    """
    lut = np.full(2 * N_KINDS + 1, fill, dtype=dtype)
    values = inbound if isinstance(inbound, dict) else dict.fromkeys(inbound, True)
    for k, v in values.items():
        lut[K[k]] = v
    return lut


# kind_dir lookup: True for active touches (inbound, not a passive kind).
ACTIVE_DIR = kind_dir_lut(tuple(k for k in KINDS if k not in PASSIVE_KINDS))


def cumulate_windows(c: np.ndarray) -> np.ndarray:
    """Turn counts per age bucket (last axis: <7d, 7-30d, 30-90d, older) into cumulative windows, in place
    (explicit adds: numpy's cumsum over a short last axis is slow)."""
    for j in range(1, c.shape[-1]):
        c[..., j] += c[..., j - 1]
    return c


class _Column:
    """A touchpoint column prepared once for cheap per-block encoding.

    Categoricals are kept as their integer codes with a lookup to the target vocabulary; strings as
    the arrow array behind the pandas column (sliced zero-copy per block and dictionary-encoded there);
    anything else falls back to pandas' factorize per block.
    """

    def __init__(self, s: pd.Series):
        self.series = s
        self.codes: np.ndarray | None = None
        self.cats = None
        self.arrow = None
        if isinstance(s.dtype, pd.CategoricalDtype):
            # Through the Categorical itself: the .cat accessor builds Series (slow for one customer).
            self.codes = s.array.codes
            self.cats = list(s.array.categories)
        elif hasattr(s.array, "__arrow_array__"):
            arr = s.array.__arrow_array__()
            self.arrow = arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr])

    def encode(
        self,
        rows: slice | np.ndarray,
        mapper: Callable[[list], np.ndarray],
        dtype,
        vocab: tuple[str, ...] | None = None,
    ) -> np.ndarray:
        """Codes of the rows ``rows`` mapped through ``mapper(categories) -> lookup (+1 slot for missing)``.

        A categorical whose categories are exactly ``vocab`` (what validation produces) needs no lookup.
        """
        if self.codes is not None:
            if (
                vocab is not None
                and len(self.cats) == len(vocab)
                and all(str(a) == b for a, b in zip(self.cats, vocab, strict=True))
            ):
                return self.codes[rows]
            return mapper(self.cats).take(self.codes[rows])
        if self.arrow is not None:
            if isinstance(rows, slice):
                part = self.arrow.slice(rows.start, rows.stop - rows.start)
            else:
                part = self.arrow.take(pa.array(rows))
            if vocab is not None and (pa.types.is_string(part.type) or pa.types.is_large_string(part.type)):
                return _index_in(part, vocab, dtype)
            enc = pc.dictionary_encode(part).combine_chunks()
            codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False)
            uniq = enc.dictionary.to_pylist()
        else:
            codes, uniq = pd.factorize(self.series.iloc[rows], use_na_sentinel=True)
        return mapper(list(uniq)).take(codes).astype(dtype, copy=False)

    def valid(self, rows: slice) -> np.ndarray | None:
        """Non-missing rows of a string column over a row range (from arrow's validity bitmap), or ``None``
        when that is unknown or nothing is missing."""
        if self.arrow is None or self.arrow.num_chunks != 1:
            return None
        part = self.arrow.chunk(0).slice(rows.start, rows.stop - rows.start)
        if not part.null_count:
            return None
        n, off = len(part), part.offset
        bits = np.frombuffer(part.buffers()[0], dtype=np.uint8, count=(off + n + 7) // 8)
        return np.unpackbits(bits, count=off + n, bitorder="little")[off:].view(bool)

    def encode_some(
        self, rows: slice | np.ndarray, which: np.ndarray, mapper, dtype, fill, vocab: tuple[str, ...] | None = None
    ) -> np.ndarray:
        """Like :meth:`encode`, but only rows where ``which`` is set are looked at (others get ``fill``).

        String columns that matter for a few kinds only (product ids on product views, offer ids on
        redemptions) are encoded on those rows alone: hashing every string is the costliest step.
        """
        idx = np.flatnonzero(which)
        out = np.full(which.size, fill, dtype=dtype)
        if idx.size == 0:
            return out
        if self.codes is not None or self.arrow is None:
            out[idx] = self.encode(rows, mapper, dtype)[idx]
            return out
        start = rows.start if isinstance(rows, slice) else 0
        src_rows = idx + start if isinstance(rows, slice) else rows[idx]
        out[idx] = self.encode(src_rows, mapper, dtype, vocab)
        return out


def _index_in(part: pa.ChunkedArray, vocab: tuple[str, ...], dtype) -> np.ndarray:
    """Position of every string of ``part`` in ``vocab`` (-1 when missing or not in it).

    One hash lookup per row against the small vocabulary, read straight from arrow's buffers: cheaper
    than dictionary-encoding the rows and mapping the dictionary.
    """
    if len(part) == 0:
        return np.zeros(0, dtype=dtype)
    res = pc.index_in(part, value_set=pa.array(vocab, type=part.type))
    res = res.combine_chunks() if isinstance(res, pa.ChunkedArray) else res
    n, off = len(res), res.offset
    bufs = res.buffers()
    codes = np.frombuffer(bufs[1], dtype=np.int32, count=off + n)[off:].astype(dtype)
    if res.null_count:
        valid = np.unpackbits(np.frombuffer(bufs[0], dtype=np.uint8), count=off + n, bitorder="little")[off:]
        codes[np.flatnonzero(valid == 0)] = -1
    return codes


def _price_lut(cats) -> np.ndarray:
    return np.array([is_price_offer(str(c)) for c in cats] + [False], dtype=bool)


def _ident_lut(n_cats: int) -> np.ndarray:
    return np.r_[np.arange(n_cats), -1].astype(np.int32)


@dataclass
class EventArrays:
    """Touchpoints before ``cutoff_ns`` of customers ``[lo, lo + n)``, grouped by customer, ts-ordered.

    ``cust`` holds codes local to the block (0..n-1); ``ts`` int64 ns. The coded columns (``kind``,
    ``channel``, ``inbound``, ``referrer``, ``device``, ``topic``, ``product``, ``price_offer``) and
    :meth:`numeric` columns are computed on first use; coded columns use -1 for missing. ``out_*``
    describe outreach contacts before the cutoff (holdout rows excluded); ``signup_ns`` and
    ``consent`` (n x 4, outreach channel order) describe the customers.
    """

    n: int
    cutoff_ns: int
    cust: np.ndarray
    ts: np.ndarray
    rows: slice | np.ndarray
    source: EventSource
    out_cust: np.ndarray
    out_ts: np.ndarray
    out_channel: np.ndarray
    out_discount: np.ndarray
    signup_ns: np.ndarray
    consent: np.ndarray
    lo: int = 0
    _memo: dict = field(default_factory=dict, repr=False)

    def memo(self, key: str, fn: Callable[[], np.ndarray]):
        """Compute ``fn()`` once per block under ``key`` (a block is only ever used by one thread)."""
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    @property
    def m(self) -> int:
        return len(self.cust)

    def _coded(self, name: str, vocab: tuple[str, ...], kinds: tuple[str, ...] | None = None) -> np.ndarray:
        """Codes of a column over a fixed vocabulary; with ``kinds``, only rows of those kinds are read."""
        col = self.source.columns.get(name)
        if col is None:
            return np.full(self.m, -1, dtype=np.int8)
        mapper = lambda cats: _vocab_lut(cats, vocab)  # noqa: E731
        if kinds is None:
            return col.encode(self.rows, mapper, np.int8, vocab)
        which = self.kind_is(*kinds)
        count = int(np.count_nonzero(which))
        if col.arrow is not None and isinstance(self.rows, slice) and count >= 0.25 * which.size:
            # Missing values need no lookup (and arrow's lookup is slow on them): read present rows only.
            valid = col.valid(self.rows)
            if valid is not None:
                which = which & valid
                count = int(np.count_nonzero(which))
        # Gathering the rows that matter pays off only when they are few; otherwise encode all and mask.
        if col.arrow is not None and count < 0.5 * which.size:
            return col.encode_some(self.rows, which, mapper, np.int8, -1, vocab)
        return np.where(which, col.encode(self.rows, mapper, np.int8, vocab), np.int8(-1))

    @property
    def kind(self) -> np.ndarray:
        return self.memo("kind", lambda: self._coded("kind", KINDS))

    @property
    def kind_dir(self) -> np.ndarray:
        """Kind code for inbound rows, ``N_KINDS +`` kind code for outbound rows (int16)."""
        return self.memo(
            "kind_dir", lambda: np.where(self.inbound, np.int16(0), np.int16(N_KINDS)) + self.kind.astype(np.int16)
        )

    @property
    def channel(self) -> np.ndarray:
        return self.memo("channel", lambda: self._coded("channel", CHANNELS))

    @property
    def inbound(self) -> np.ndarray:
        return self.memo("inbound", lambda: self._coded("direction", DIRECTIONS) == 0)

    @property
    def referrer(self) -> np.ndarray:
        return self.memo("referrer", lambda: self._coded("referrer", REFERRERS))

    @property
    def device(self) -> np.ndarray:
        return self.memo("device", lambda: self._coded("device", DEVICES, SESSION_KINDS))

    @property
    def topic(self) -> np.ndarray:
        return self.memo("topic", lambda: self._coded("topic", TOPICS, TOPIC_KINDS))

    @property
    def product(self) -> np.ndarray:
        """Product codes, consistent within the block only (enough to find a customer's revisits); -1 on
        rows other than product views and where the id is missing."""

        def _p():
            idx, codes = self.product_views()
            out = np.full(self.m, -1, dtype=np.int32)
            out[idx] = codes
            return out

        return self.memo("product", _p)

    def product_views(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows of product views (ascending) and their product codes (as :attr:`product`)."""

        def _pv():
            idx = np.flatnonzero(self.kind == K["product_view"])
            col = self.source.columns.get("product_id")
            if col is None or idx.size == 0:
                return idx, np.full(idx.size, -1, dtype=np.int32)
            mapper = lambda cats: _ident_lut(len(cats))  # noqa: E731
            if col.codes is not None or col.arrow is None:
                return idx, col.encode(self.rows, mapper, np.int32)[idx]
            src_rows = idx + self.rows.start if isinstance(self.rows, slice) else self.rows[idx]
            return idx, col.encode(src_rows, mapper, np.int32)

        return self.memo("product_views", _pv)

    @property
    def price_offer(self) -> np.ndarray | None:
        """Per row: ``offer_id`` names a price incentive; ``None`` when the log has no offer ids."""

        def _po():
            col = self.source.columns.get("offer_id")
            if col is None:
                return None
            return col.encode_some(self.rows, self.kind == K["offer_redeemed"], _price_lut, bool, False)

        return self.memo("price_offer", _po)

    def numeric(self, name: str) -> np.ndarray | None:
        """A numeric column (float64, NaN = missing) for the block, or ``None`` when absent."""
        src = self.source.numeric.get(name)
        return None if src is None else self.memo("num_" + name, lambda: src[self.rows])

    # ---- shared aggregates ----------------------------------------------------------------------
    def age_days(self) -> np.ndarray:
        """Age of every event at the cutoff in days (float64, > 0)."""
        return self.memo("age", lambda: (self.cutoff_ns - self.ts) * (1.0 / DAY_NS))

    def active(self) -> np.ndarray:
        """Mask of active touches: inbound and not a passive kind."""
        return self.memo("active", lambda: ACTIVE_DIR.take(self.kind_dir))

    def active_idx(self) -> np.ndarray:
        """Row indices of the active touches (ascending)."""
        return self.memo("active_idx", lambda: np.flatnonzero(self.active()))

    def active_channel_counts(self) -> np.ndarray:
        """Active touches per (customer, channel, window): shape (n, N_CHANNELS, 4), cumulative over the
        last axis like :meth:`kind_counts` (rows without a known channel are left out)."""

        def _acc() -> np.ndarray:
            idx = self.active_idx()
            ch = self.channel[idx]
            if ch.size and ch.min() < 0:
                keep = np.flatnonzero(ch >= 0)
                idx, ch = idx[keep], ch[keep]
            key = self.cust[idx].astype(np.intp) * (N_CHANNELS * 4)
            key += ch.astype(np.intp) * 4
            key += self.window_bucket()[idx]
            c = np.bincount(key, minlength=self.n * N_CHANNELS * 4).reshape(self.n, N_CHANNELS, 4)
            return cumulate_windows(c)

        return self.memo("active_channel_counts", _acc)

    def window_bucket(self) -> np.ndarray:
        """Age bucket per event: 0 = last 7 days, 1 = 7-30, 2 = 30-90, 3 = older."""

        def _b() -> np.ndarray:
            age = self.cutoff_ns - self.ts
            b = (age >= 7 * DAY_NS).astype(np.int8)
            b += age >= 30 * DAY_NS
            b += age >= 90 * DAY_NS
            return b

        return self.memo("bucket", _b)

    def kind_counts(self) -> np.ndarray:
        """Counts per (customer, direction, kind, window): shape (n, 2, N_KINDS, 4), cumulative over the
        last axis: ``0`` = last 7 days, ``1`` = 30 days, ``2`` = 90 days, ``3`` = all time.
        Direction 0 = inbound, 1 = outbound."""

        def _kc() -> np.ndarray:
            q = self.kind_dir.astype(np.int32)
            q *= 4
            q += self.window_bucket()
            key = self.cust.astype(np.int32) * (2 * N_KINDS * 4)
            key += q
            c = np.bincount(key, minlength=self.n * 2 * N_KINDS * 4).reshape(self.n, 2, N_KINDS, 4)
            return cumulate_windows(c)

        return self.memo("kind_counts", _kc)

    def inbound_kind(self, kind: str, window: int = 3) -> np.ndarray:
        """Inbound count of one kind per customer in window 0 (7d), 1 (30d), 2 (90d) or 3 (all time)."""
        return self.kind_counts()[:, 0, K[kind], window]

    def outbound_kind(self, kind: str, window: int = 3) -> np.ndarray:
        """Outbound count of one kind per customer in a window (see :meth:`inbound_kind`)."""
        return self.kind_counts()[:, 1, K[kind], window]

    def bincount(self, mask: np.ndarray | None, weights: np.ndarray | None = None) -> np.ndarray:
        """Per-customer count (or weighted sum) of the rows selected by ``mask``."""
        if mask is None:
            cust = self.cust
        else:
            rows = np.flatnonzero(mask)
            cust = self.cust[rows]
            if weights is not None:
                weights = weights[rows]
        return np.bincount(cust, weights=weights, minlength=self.n)

    def bincount2(self, mask: np.ndarray | None, codes: np.ndarray, width: int) -> np.ndarray:
        """Per-(customer, code) counts of selected rows with ``0 <= code < width``: shape (n, width)."""
        # Codes first: most coded columns are missing on most rows, so the mask is read on few.
        idx = np.flatnonzero(codes >= 0)
        if mask is not None:
            idx = idx.compress(mask[idx])
        key = self.cust[idx].astype(np.intp) * width  # intp: bincount would convert anything else
        key += codes[idx]
        return np.bincount(key, minlength=self.n * width).reshape(self.n, width)

    def last_ts(self, mask: np.ndarray) -> np.ndarray:
        """Per customer, the ts of the last selected row (int64 ns; int64 min when none)."""
        return self.last_ts_at(np.flatnonzero(mask))

    def last_ts_at(self, idx: np.ndarray) -> np.ndarray:
        """Like :meth:`last_ts` for the rows ``idx`` (ascending row indices)."""
        out = np.full(self.n, INT64_MIN, dtype=np.int64)
        if idx.size:
            c = self.cust[idx]
            # rows are ts-ordered within a customer, so a group's last selected row is its max.
            last = np.flatnonzero(np.r_[c[1:] != c[:-1], True])
            out[c[last]] = self.ts[idx[last]]
        return out

    def first_ts(self, mask: np.ndarray | None) -> np.ndarray:
        """Per customer, the ts of the first selected row (int64 ns; int64 max when none); ``None``
        selects every row (computed once per block)."""
        if mask is None:
            return self.memo("first_ts_all", lambda: self._first_ts(self.cust, self.ts)).copy()
        return self.first_ts_at(np.flatnonzero(mask))

    def first_ts_at(self, idx: np.ndarray) -> np.ndarray:
        """Like :meth:`first_ts` for the rows ``idx`` (ascending row indices)."""
        return self._first_ts(self.cust[idx], self.ts[idx])

    def purchase_idx(self) -> np.ndarray:
        """Row indices of inbound purchases (ascending)."""
        return self.memo("purchase_idx", lambda: np.flatnonzero(self.kind_dir == K["purchase"]))

    def _first_ts(self, c: np.ndarray, ts: np.ndarray) -> np.ndarray:
        out = np.full(self.n, INT64_MAX, dtype=np.int64)
        if c.size:
            first = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
            out[c[first]] = ts[first]
        return out

    def kind_is(self, *kinds: str) -> np.ndarray:
        """Mask of rows whose kind is one of ``kinds``."""
        if len(kinds) == 1:
            return self.kind == K[kinds[0]]
        lut = np.zeros(N_KINDS + 1, dtype=bool)
        lut[[K[k] for k in kinds]] = True
        return lut.take(self.kind)


class EventSource:
    """The touchpoint log of ``tables`` indexed once for a cutoff; hands out :class:`EventArrays` blocks.

    Validated tables are already ordered by (customer, ts): blocks are then plain row ranges and
    nothing is copied up front. Any other order is sorted here (stable on ts), so results never
    depend on the input row order.
    """

    def __init__(self, tables: Tables, cutoff):
        self.cutoff_ns = to_cutoff_ns(cutoff)
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
            c: _Column(tp[c])
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
        ch = _Column(out["channel"]).encode(slice(0, len(out)), lambda c: _vocab_lut(c, OUTREACH_CHANNELS), np.int8)
        ok = (ots < self.cutoff_ns) & (ch >= 0)
        if "holdout" in out.columns:
            ok &= ~_bool_values(out["holdout"])
        if "offer" in out.columns:
            disc = _Column(out["offer"]).encode(
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
            source=self,
            out_cust=self.out_cust[o0:o1] - lo,
            out_ts=self.out_ts[o0:o1],
            out_channel=self.out_channel[o0:o1],
            out_discount=self.out_discount[o0:o1],
            signup_ns=self.signup_ns[lo:hi],
            consent=self.consent[lo:hi],
            lo=lo,
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
