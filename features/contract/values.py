"""What a single value of the data contract may be, declared once: the numeric range of each column, where a
negative amount is allowed, and that timestamps are text or datetimes, never numbers.

Batch validation (:mod:`features.contract.rules` and :mod:`features.contract.validate`) and the scoring
service's request schema (``serving/schemas.py``) both read these declarations, so a value that one rejects
the other rejects too, in the same words.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ValueRange:
    """The interval a numeric column's values must lie in; ``problem`` names a value outside it."""

    low: float | None = None
    high: float | None = None
    include_low: bool = True
    problem: str = "a value out of range"

    def outside(self, values: np.ndarray) -> np.ndarray:
        """Which of ``values`` lie outside the interval (missing values never do)."""
        v = np.asarray(values, dtype=np.float64)
        bad = np.zeros(v.shape, dtype=bool)
        with np.errstate(invalid="ignore"):
            if self.low is not None:
                bad |= (v < self.low) if self.include_low else (v <= self.low)
            if self.high is not None:
                bad |= v > self.high
        return bad

    def allows(self, value: float) -> bool:
        """Whether one value lies inside the interval (NaN counts as missing, so it does)."""
        if math.isnan(value):
            return True
        if self.low is not None and (value < self.low if self.include_low else value <= self.low):
            return False
        return self.high is None or value <= self.high

    def json_schema(self) -> dict[str, float]:
        """The interval as JSON Schema (2020-12) keywords, for request documentation."""
        out: dict[str, float] = {}
        if self.low is not None:
            out["minimum" if self.include_low else "exclusiveMinimum"] = self.low
        if self.high is not None:
            out["maximum"] = self.high
        return out


NON_NEGATIVE = ValueRange(low=0.0, problem="a negative value")

# Numeric touchpoint columns and their ranges; ``amount`` has its own rule below.
TOUCHPOINT_RANGES: dict[str, ValueRange] = {
    "duration_s": NON_NEGATIVE,
    "pages": NON_NEGATIVE,
    "discount": NON_NEGATIVE,
    "sentiment": ValueRange(low=-1.0, high=1.0, problem="a value outside [-1, 1]"),
}
OUTREACH_RANGES: dict[str, ValueRange] = {
    "propensity": ValueRange(low=0.0, high=1.0, include_low=False, problem="a propensity outside (0, 1]"),
}

# A negative amount is a refund: only a return may carry one.
REFUND_KINDS: frozenset[str] = frozenset({"return"})
NEGATIVE_AMOUNT = "a negative amount on a kind other than return"


def negative_amount_misused(amount: np.ndarray, kind: Sequence[str | None]) -> np.ndarray:
    """Rows whose amount is negative although their kind is not a refund (``kind``: text, one per row; only
    looked at when some amount is negative)."""
    with np.errstate(invalid="ignore"):
        negative = np.asarray(amount, dtype=np.float64) < 0
    if not negative.any():
        return negative
    refund = np.isin(np.asarray(kind, dtype=object), list(REFUND_KINDS))
    return negative & ~refund


TIMESTAMP_HINT = "use ISO 8601 text, e.g. 2024-05-01T12:00:00Z"
NUMBER_AS_TIMESTAMP = f"a number where a timestamp is expected ({TIMESTAMP_HINT})"
_NUMBER_TEXT = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def amount_allowed(amount: float | None, kind: str) -> bool:
    """The refund rule for one touchpoint."""
    return amount is None or not amount < 0 or kind in REFUND_KINDS


def is_number_text(text: str) -> bool:
    """Whether ``text`` is a number written as text (``"1700000000"``): never read as a timestamp."""
    return _NUMBER_TEXT.fullmatch(text) is not None
