"""Touch rows in the simulator's integer codes: one block per kind of touch, and the rules that assemble them.

Every step of the simulation emits :class:`TouchRows` blocks (a column may be absent: ``None``);
:func:`assemble_touchpoints` joins them into one block with every column, keeps only what the world allows
and sorts it by customer and time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import ArrayLike

from features.sources.simulation.codes import CH, KIND

FLOAT_COLUMNS = frozenset({"duration_s", "pages", "amount", "discount", "sentiment"})
CODE_COLUMNS = frozenset({"topic", "device", "referrer", "offer", "campaign", "product"})


@dataclass
class TouchRows:
    """A block of touches, one array per column (codes of :mod:`features.sources.simulation.codes`).

    ``cust`` is the customer's row number, ``sec`` seconds after the start, ``dir`` 0 inbound / 1 outbound,
    ``pre`` whether the history before the cutoff produced the touch (it may then not fall past the cutoff).
    Optional columns are ``None`` when the block has none of them.
    """

    cust: np.ndarray
    sec: np.ndarray
    chan: np.ndarray
    kind: np.ndarray
    dir: np.ndarray
    pre: np.ndarray
    duration_s: np.ndarray | None = None
    pages: np.ndarray | None = None
    amount: np.ndarray | None = None
    discount: np.ndarray | None = None
    sentiment: np.ndarray | None = None
    topic: np.ndarray | None = None
    device: np.ndarray | None = None
    referrer: np.ndarray | None = None
    offer: np.ndarray | None = None
    campaign: np.ndarray | None = None
    product: np.ndarray | None = None

    def filled(self, name: str) -> np.ndarray:
        """Column ``name``; an absent optional column as NaN (measures) or -1 (codes)."""
        v = getattr(self, name)
        if name in FLOAT_COLUMNS:
            return np.asarray(v, np.float64) if v is not None else np.full(len(self.cust), np.nan)
        if name in CODE_COLUMNS:
            return np.asarray(v, np.int64) if v is not None else np.full(len(self.cust), -1, np.int64)
        return v


def touch_rows(
    cust: np.ndarray,
    sec: np.ndarray,
    chan: ArrayLike,
    kind: ArrayLike,
    direction: int,
    *,
    pre: ArrayLike,
    duration_s: ArrayLike | None = None,
    pages: ArrayLike | None = None,
    amount: ArrayLike | None = None,
    discount: ArrayLike | None = None,
    sentiment: ArrayLike | None = None,
    topic: ArrayLike | None = None,
    device: ArrayLike | None = None,
    referrer: ArrayLike | None = None,
    offer: ArrayLike | None = None,
    campaign: ArrayLike | None = None,
    product: ArrayLike | None = None,
) -> TouchRows:
    """One block of touch rows; every column but ``cust``/``sec`` may be a scalar or an array."""
    m = len(cust)

    def column(v: ArrayLike | None, dtype: type | None = None) -> np.ndarray | None:
        return None if v is None else np.broadcast_to(np.asarray(v, dtype), (m,))

    return TouchRows(
        cust=np.asarray(cust, np.int64),
        sec=np.asarray(sec, np.int64),
        chan=column(chan, np.int16),
        kind=column(kind, np.int16),
        dir=column(direction, np.int8),
        pre=column(pre, bool),
        duration_s=column(duration_s),
        pages=column(pages),
        amount=column(amount),
        discount=column(discount),
        sentiment=column(sentiment),
        topic=column(topic),
        device=column(device),
        referrer=column(referrer),
        offer=column(offer),
        campaign=column(campaign),
        product=column(product),
    )


def cancel_rows(cust: np.ndarray, churn_sec: np.ndarray, *, pre: bool) -> TouchRows:
    """The explicit ``cancel`` touches of customers who churned, at their churn time."""
    return touch_rows(cust, churn_sec[cust], np.full(len(cust), CH["other"]), KIND["cancel"], 0, pre=pre)


def assemble_touchpoints(
    blocks: list[TouchRows],
    signup_sec: np.ndarray,
    churn_sec: np.ndarray,
    cancelled: np.ndarray,
    cutoff_sec: np.int64,
    end_sec: np.int64,
) -> TouchRows:
    """Concatenate row blocks, apply the world's rules (nothing after churn, before signup, past the
    horizon; history-generated touches never spill past the cutoff) and sort by (customer, time)."""
    tp = TouchRows(**{f.name: np.concatenate([b.filled(f.name) for b in blocks]) for f in fields(TouchRows)})
    c, sec = tp.cust, tp.sec
    inbound = tp.dir == 0
    exit_ok = tp.kind == KIND["cancel"]
    company_stops = np.isin(tp.kind, [KIND["survey_sent"], KIND["event_invite"]])
    keep = (sec < end_sec) & (sec >= signup_sec[c]) & ~(tp.pre & (sec >= cutoff_sec))
    keep &= ~(inbound & ~exit_ok & (sec > churn_sec[c]))
    keep &= ~(company_stops & cancelled[c] & (sec > churn_sec[c]))
    order = np.lexsort((np.arange(len(c))[keep], sec[keep], c[keep]))
    return TouchRows(**{f.name: getattr(tp, f.name)[keep][order] for f in fields(TouchRows)})
