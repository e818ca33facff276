"""The service and social family's compiled pass: service contacts by topic and recency, and the sentiment sums
(all, last 90 days, negative, surveys, recommendations) of one block, in one sweep over its events.

Sentiment sums add the same values in the same row order as numpy's ``bincount`` with weights (no other
arithmetic), so every result equals the numpy path exactly. Compiled at import with explicit signatures and
``cache=True``, like :mod:`features.builders.kernel`.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from features.builders.kernel import frozen
from features.builders.kernel import readonly_1d as _ro

_SIG = nb.void(
    _ro(nb.int32), _ro(nb.int16), _ro(nb.int8), _ro(nb.int8), _ro(nb.int8), _ro(nb.float64),  # cust kd kind topic b s
    nb.int64[::1], nb.float64[::1],  # codes: service_contact, survey_response, review, social_comment; thresholds
    nb.int64[:, :, ::1], nb.int64[:, ::1], nb.float64[:, ::1],  # topics (n, 5, 2), counts (n, 5), sums (n, 3)
)


@nb.njit(_SIG, cache=True, nogil=True)
def _service_pass(cust, kind_dir, kind, topic, bucket, sentiment, codes, limits, topics, counts, sums):
    service, survey, review, comment = codes[0], codes[1], codes[2], codes[3]
    negative, promoter = limits[0], limits[1]
    has_sentiment = sentiment.shape[0] == cust.shape[0]
    for i in range(cust.shape[0]):
        c = cust[i]
        recent = bucket[i] <= 2
        if kind_dir[i] == service:
            t = topic[i]
            if 0 <= t < 5:
                topics[c, t, 1 if recent else 0] += 1
        if not has_sentiment:
            continue
        v = sentiment[i]
        if v != v:  # NaN: no sentiment on this touch
            continue
        counts[c, 0] += 1
        sums[c, 0] += v
        if recent:
            counts[c, 1] += 1
            sums[c, 1] += v
            if v < negative:
                counts[c, 2] += 1
        k = kind[i]
        if k == survey:
            counts[c, 3] += 1
            sums[c, 2] += v
        if (k == review or k == comment) and v >= promoter:  # noqa: SIM109 - plain scalar tests in compiled code
            counts[c, 4] += 1


def service_pass(ev, sentiment: np.ndarray | None, service: int, survey: int, review: int, comment: int,
                 negative: float, promoter: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Service contacts per (customer, topic 0-4, older / last 90 days), sentiment counts (n, 5: all, 90 days,
    negative in 90 days, surveys, recommendations) and sums (n, 3: all, 90 days, surveys) of the block ``ev``."""
    topics = np.zeros((ev.n, 5, 2), dtype=np.int64)
    counts = np.zeros((ev.n, 5), dtype=np.int64)
    sums = np.zeros((ev.n, 3))
    _service_pass(
        frozen(ev.cust, np.int32), frozen(ev.kind_dir, np.int16), frozen(ev.kind, np.int8), frozen(ev.topic, np.int8),
        frozen(ev.window_bucket(), np.int8), frozen(np.zeros(0) if sentiment is None else sentiment, np.float64),
        np.array([service, survey, review, comment], dtype=np.int64), np.array([negative, promoter], dtype=np.float64),
        topics, counts, sums,
    )
    return topics, counts, sums
