"""The integer codes the simulator works in: time in seconds after the start, vocabulary indices, episode types.

The day loop handles millions of touches, so it keeps every categorical value as a small integer and turns
codes into text only once, when it builds the output tables (:mod:`features.sources.simulation.frames`).
"""

from __future__ import annotations

import numpy as np

from features.contract.schema import CHANNELS, CONTENT_TOPICS, DEVICES, KINDS, REFERRERS, SERVICE_TOPICS

DAY = 86_400  # seconds
NEVER = np.int64(2**62)  # churn time (seconds) of a customer who has not churned

CH: dict[str, int] = {c: i for i, c in enumerate(CHANNELS)}
KIND: dict[str, int] = {k: i for i, k in enumerate(KINDS)}
REF: dict[str, int] = {r: i for i, r in enumerate(REFERRERS)}
DEV: dict[str, int] = {d: i for i, d in enumerate(DEVICES)}
TOPICS: tuple[str, ...] = SERVICE_TOPICS + CONTENT_TOPICS
TOP: dict[str, int] = {t: i for i, t in enumerate(TOPICS)}
N_PRODUCTS = 200

# Episode types: each active episode yields at least one active (inbound, non-passive) touch.
WEB, APP, STORE, CALL, CHAT, SOCIAL, SURVEY, EVENT = range(8)
N_TYPES = 8
