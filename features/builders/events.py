"""One block of the event log: the touchpoints of some customers before a cutoff, as flat numpy arrays.

An :class:`EventArrays` block holds customer codes local to the block, timestamps, and the categorical
columns as small integer codes over the fixed vocabularies of :mod:`features.contract.schema`, derived
lazily and once per block; aggregates several families share (counts by kind and window, active
touches) are memoised on it. :class:`~features.builders.event_source.EventSource` hands the blocks out.

With ``kernel`` set, the shared aggregates come from one compiled pass (:mod:`features.builders.kernel`);
without it (or without Numba) from the numpy code below, which stays the reference the kernel is tested
against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from features.builders.column_coding import CodedColumn
from features.builders.kernel_mode import numba_available
from features.builders.vocab_codes import (
    ACTIVE_DIR,
    N_CHANNELS,
    N_KINDS,
    TOPICS,
    K,
    is_price_offer,
    vocab_lut,
)
from features.contract.schema import CHANNELS, DAY_NS, DEVICES, DIRECTIONS, KINDS, REFERRERS

# Imported (and so compiled, or loaded from Numba's cache) with this module, never at a first request.
if numba_available():
    from features.builders import kernel as compiled
else:  # pragma: no cover - numba is a dependency; the numpy path serves without it
    compiled = None

INT64_MIN = np.iinfo(np.int64).min
INT64_MAX = np.iinfo(np.int64).max
# Kinds whose topic is read (content topics on page views and visits, service topics on contacts).
TOPIC_KINDS: tuple[str, ...] = ("page_view", "visit", "service_contact", "complaint")
# Kinds whose device is read: visits (the device mix describes how the customer comes to us).
SESSION_KINDS: tuple[str, ...] = ("visit",)


def cumulate_windows(c: np.ndarray) -> np.ndarray:
    """Turn counts per age bucket (last axis: <7d, 7-30d, 30-90d, older) into cumulative windows, in place
    (explicit adds: numpy's cumsum over a short last axis is slow)."""
    for j in range(1, c.shape[-1]):
        c[..., j] += c[..., j - 1]
    return c


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
    ``consent`` (n x 4, outreach channel order) describe the customers. ``columns`` and
    ``numeric_columns`` are the whole log's prepared columns, read at ``rows``.
    """

    n: int
    cutoff_ns: int
    cust: np.ndarray
    ts: np.ndarray
    rows: slice | np.ndarray
    columns: dict[str, CodedColumn]
    numeric_columns: dict[str, np.ndarray]
    out_cust: np.ndarray
    out_ts: np.ndarray
    out_channel: np.ndarray
    out_discount: np.ndarray
    signup_ns: np.ndarray
    consent: np.ndarray
    lo: int = 0
    kernel: bool = False
    _memo: dict = field(default_factory=dict, repr=False)

    def memo(self, key: str, fn: Callable[[], np.ndarray]):
        """Compute ``fn()`` once per block under ``key`` (a block is only ever used by one thread)."""
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    def remember(self, values: dict) -> None:
        """Memoise several results at once (a compiled pass that computes them together)."""
        self._memo.update(values)

    @property
    def m(self) -> int:
        return len(self.cust)

    def _coded(self, name: str, vocab: tuple[str, ...], kinds: tuple[str, ...] | None = None) -> np.ndarray:
        """Codes of a column over a fixed vocabulary; with ``kinds``, only rows of those kinds are read."""
        col = self.columns.get(name)
        if col is None:
            return np.full(self.m, -1, dtype=np.int8)
        mapper = lambda cats: vocab_lut(cats, vocab)  # noqa: E731
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
            col = self.columns.get("product_id")
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
            col = self.columns.get("offer_id")
            if col is None:
                return None
            return col.encode_some(self.rows, self.kind == K["offer_redeemed"], _price_lut, bool, False)

        return self.memo("price_offer", _po)

    def numeric(self, name: str) -> np.ndarray | None:
        """A numeric column (float64, NaN = missing) for the block, or ``None`` when absent."""
        src = self.numeric_columns.get(name)
        return None if src is None else self.memo("num_" + name, lambda: src[self.rows])

    # ---- shared aggregates ----------------------------------------------------------------------
    def compiled_pass(self) -> bool:
        """With the kernel on, fill every shared aggregate's memo from one compiled pass; whether it ran."""
        if not self.kernel or compiled is None:
            return False

        def _run() -> bool:
            out = compiled.shared_aggregates(
                self.cust, self.ts, self.kind_dir, self.channel, ACTIVE_DIR, K["purchase"], self.cutoff_ns,
                self.n, 2 * N_KINDS, N_CHANNELS,
            )
            out["kind_counts"] = out["kind_counts"].reshape(self.n, 2, N_KINDS, 4)
            out["purchase_times"] = (out.pop("first_purchase_ts"), out.pop("last_purchase_ts"))
            self.remember(out)
            return True

        return self.memo("kernel_pass", _run)

    def age_days(self) -> np.ndarray:
        """Age of every event at the cutoff in days (float64, > 0)."""
        return self.memo("age", lambda: (self.cutoff_ns - self.ts) * (1.0 / DAY_NS))

    def active(self) -> np.ndarray:
        """Mask of active touches: inbound and not a passive kind."""
        return self.memo("active", lambda: ACTIVE_DIR.take(self.kind_dir))

    def active_idx(self) -> np.ndarray:
        """Row indices of the active touches (ascending)."""
        return self.memo("active_idx", lambda: np.flatnonzero(self.active()))

    def last_active_ts(self) -> np.ndarray:
        """Per customer, the ts of the last active touch (int64 min when none)."""
        self.compiled_pass()
        return self.memo("last_active_ts", lambda: self.last_ts_at(self.active_idx()))

    def active_channel_counts(self) -> np.ndarray:
        """Active touches per (customer, channel, window): shape (n, N_CHANNELS, 4), cumulative over the
        last axis like :meth:`kind_counts` (rows without a known channel are left out)."""
        self.compiled_pass()

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

        self.compiled_pass()
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

        self.compiled_pass()
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
            self.compiled_pass()
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
