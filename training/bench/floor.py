"""engage's service figures as ratios to the trivial BentoML floor measured in the same run.

The floor (:mod:`training.bench.floor_service`) is a LightGBM model scoring one numpy row per request on the
same BentoML, workers and load generator. The three ratios the issue sets targets on:

- ``c1_p50_ratio``: engage's p50 at concurrency 1 over the floor's (target <= 3);
- ``c16_customers_per_s_over_floor_rps``: engage's customers/s at concurrency 16 over the floor's requests/s
  (target >= 0.5);
- ``batch_1000_over_floor_p50``: one 1,000-customer request's time over the floor's single-request p50
  (target <= 200).
"""

from __future__ import annotations

import json

import numpy as np

from training.bench.floor_service import FLOOR_FEATURES

TARGETS = {
    "c1_p50_ratio": ("<=", 3.0),
    "c16_customers_per_s_over_floor_rps": (">=", 0.5),
    "batch_1000_over_floor_p50": ("<=", 200.0),
}


def floor_bodies(n: int, seed: int) -> list[bytes]:
    """``n`` request bodies of one random numpy row each (``{"x": [[...]]}``)."""
    rng = np.random.default_rng(seed)
    return [json.dumps({"x": [rng.normal(size=FLOOR_FEATURES).round(6).tolist()]}).encode() for _ in range(n)]


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not np.isfinite(a) or not np.isfinite(b) or b == 0:
        return None
    return round(float(a) / float(b), 3)


def floor_ratios(engage: dict, floor: dict) -> dict:
    """The ratios of engage's figures (``run_load``'s result) to the floor's, and whether each meets its target."""
    ratios = {
        "c1_p50_ratio": _ratio(engage["c1"]["p50_ms"], floor["c1"]["p50_ms"]),
        "c16_customers_per_s_over_floor_rps": _ratio(engage["c16"]["customers_per_s"], floor["c16"]["rps"]),
        "batch_1000_over_floor_p50": _ratio(engage["batch_1000"]["ms"], floor["c1"]["p50_ms"]),
    }
    met = {}
    for key, (op, target) in TARGETS.items():
        value = ratios[key]
        met[key] = None if value is None else (value <= target if op == "<=" else value >= target)
    return {**ratios, "targets": {k: f"{op} {t:g}" for k, (op, t) in TARGETS.items()}, "target_met": met}
