"""Integer codes of the event vocabularies and the lookup tables over them.

Kinds, channels and topics are coded by their position in the fixed vocabularies of
:mod:`features.contract.schema`; the feature families compare and gather on those small integers.
``kind_dir`` codes fold the direction in (inbound kinds first, then outbound kinds), so one gather on a
lookup replaces comparing kind and direction separately.
"""

from __future__ import annotations

import numpy as np

from features.contract.schema import (
    CHANNELS,
    CONTENT_TOPICS,
    KINDS,
    OUTREACH_CHANNELS,
    PASSIVE_KINDS,
    SERVICE_TOPICS,
)

TOPICS: tuple[str, ...] = SERVICE_TOPICS + CONTENT_TOPICS
K: dict[str, int] = {k: i for i, k in enumerate(KINDS)}
C: dict[str, int] = {c: i for i, c in enumerate(CHANNELS)}
T: dict[str, int] = {t: i for i, t in enumerate(TOPICS)}
N_KINDS, N_CHANNELS, N_OUT = len(KINDS), len(CHANNELS), len(OUTREACH_CHANNELS)
# Lookup: kind code -> True when an inbound touch of that kind is customer activity.
ACTIVE_KIND = np.array([k not in PASSIVE_KINDS for k in KINDS], dtype=bool)
PRICE_OFFER_WORDS: tuple[str, ...] = ("discount", "bogo", "coupon", "percent", "sale")


def is_price_offer(name: str) -> bool:
    """Whether an offer name denotes a price incentive (discount, bogo, coupon, ...)."""
    low = name.lower()
    return any(w in low for w in PRICE_OFFER_WORDS)


def vocab_lut(cats, vocab: tuple[str, ...]) -> np.ndarray:
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
