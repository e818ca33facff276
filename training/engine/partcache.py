"""Validated partitions kept on a worker between the two passes of ``engage features --engine dask``.

Reading and validating a partition costs several times what its fit statistics or its features cost, so the
fit pass leaves each partition it read on its worker for the transform pass, which is sent to the same
worker. Only while the kept partitions fit in a share of the worker's memory limit: beyond it a partition is
read again, so memory stays bounded by the limit whatever the size of the data. Entries belong to one run
(a token): a new run drops what an earlier, failed one left behind, and the transform pass takes each
partition out as it uses it.
"""

from __future__ import annotations

import threading

import pandas as pd

from features.contract.schema import Tables

# The share of a worker's memory limit that kept partitions may use (the rest is for the work on them).
SHARE = 0.3
_LOCK = threading.Lock()
_KEPT: dict[tuple[str, int], tuple[Tables, int]] = {}
_RUN = [""]


def table_bytes(tables: Tables) -> int:
    """The memory the frames of ``tables`` hold (object columns estimated cheaply, not measured deeply)."""
    frames = [f for f in (tables.customers, tables.touchpoints, tables.outreach, tables.labels) if f is not None]
    return int(sum(f.memory_usage(index=False, deep=False).sum() for f in frames if isinstance(f, pd.DataFrame)))


def _budget() -> int:
    """The bytes kept partitions may hold on this worker (0 outside a worker or without a memory limit)."""
    try:
        from distributed import get_worker

        limit = get_worker().memory_manager.memory_limit
    except (ImportError, ValueError, AttributeError):
        return 0
    return int((limit or 0) * SHARE)


def keep(run: str, part: int, tables: Tables) -> bool:
    """Keep partition ``part`` of run ``run`` if it fits in the budget; whether it was kept."""
    size = table_bytes(tables)
    with _LOCK:
        if _RUN[0] != run:
            _KEPT.clear()
            _RUN[0] = run
        used = sum(s for _, s in _KEPT.values())
        if used + size > _budget():
            return False
        _KEPT[(run, part)] = (tables, size)
        return True


def take(run: str, part: int) -> Tables | None:
    """Partition ``part`` of run ``run`` if this worker kept it (and forget it), else None."""
    with _LOCK:
        found = _KEPT.pop((run, part), None)
    return None if found is None else found[0]


def kept() -> int:
    """How many partitions this worker keeps now."""
    with _LOCK:
        return len(_KEPT)
