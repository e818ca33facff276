"""Activity aggregates several feature families share, memoised on the block.

Counts of active touches by window, first and last purchase times, active non-purchase rows and exit
counts are read by more than one family; memoising them on the :class:`~features.builders.events.EventArrays`
block means a pipeline computes each once per block, whichever family asks first.
"""

from __future__ import annotations

import numpy as np

from features.builders.events import EventArrays
from features.builders.vocab_codes import ACTIVE_KIND, K


def active_counts(ev: EventArrays) -> np.ndarray:
    """Active touches per customer and window: shape (n, 4) (7d, 30d, 90d, all time)."""
    return ev.memo("active_counts", lambda: ev.kind_counts()[:, 0, ACTIVE_KIND, :].sum(axis=1))


def purchase_times(ev: EventArrays) -> tuple[np.ndarray, np.ndarray]:
    """First and last purchase ts per customer (int64 min/max sentinels when none)."""

    def _pt():
        idx = ev.purchase_idx()
        return ev.first_ts_at(idx), ev.last_ts_at(idx)

    ev.compiled_pass()  # with the kernel on, already in the memo
    return ev.memo("purchase_times", _pt)


def active_non_purchase_idx(ev: EventArrays) -> np.ndarray:
    """Row indices of active touches other than purchases (ascending)."""

    def _i():
        idx = ev.active_idx()
        return idx.compress(ev.kind_dir[idx] != K["purchase"])

    return ev.memo("active_non_purchase_idx", _i)


def exit_counts(ev: EventArrays) -> tuple[np.ndarray, np.ndarray]:
    """Unsubscribes and cancels per customer (all time)."""
    return ev.inbound_kind("unsubscribe") + ev.outbound_kind("unsubscribe"), ev.inbound_kind(
        "cancel"
    ) + ev.outbound_kind("cancel")
