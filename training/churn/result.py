"""What a churn training run hands back, however it was trained: the system, the report and the test frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.contract.schema import STORE_LADDER
from features.system import DecisionSystem

# The headline metrics copied into every churn report, however the model was trained.
REPORT_METRICS: tuple[str, ...] = (
    "auc", "pr_auc", "brier", "ece", "lift_at_10", "lift_at_20", "capture_at_10", "capture_at_20", "base_rate",
    "mean_prediction", "n",
)


@dataclass
class ChurnResult:
    """Everything a run produced: the decision system, the split, test metrics, baselines, frames."""

    system: DecisionSystem
    report: dict[str, Any]
    test_keys: pd.DataFrame
    test_prob: np.ndarray
    test_features: pd.DataFrame
    baseline_scores: dict[str, np.ndarray] = field(default_factory=dict)
    importance: pd.DataFrame | None = None
    segments: pd.DataFrame | None = None


def draw_seed(rng: np.random.Generator) -> int:
    """A model seed drawn from the run's generator."""
    return int(rng.integers(0, 2**31 - 1))


def report_segments(F: pd.DataFrame) -> dict[str, np.ndarray]:
    """The segments the report breaks metrics down by: store ladder, tenure band, channel mix."""
    seg: dict[str, np.ndarray] = {}
    if "store_ladder" in F:
        seg["store_ladder"] = np.array([STORE_LADDER[int(v)] if v == v else "na" for v in F["store_ladder"]])
    if "tenure_days" in F:
        seg["tenure_band"] = (
            pd.cut(F["tenure_days"], [-np.inf, 90, 365, 730, np.inf], labels=["<3m", "3-12m", "1-2y", ">2y"])
            .astype(str)
            .to_numpy()
        )
    if "breadth_channels_90d" in F:
        seg["channel_mix"] = (
            pd.cut(
                F["breadth_channels_90d"],
                [-np.inf, 1, 2, np.inf],
                labels=["1 channel", "2 channels", "3+ channels"],
            )
            .astype(str)
            .to_numpy()
        )
    return seg


def feature_use(model) -> dict[str, int]:
    """How many of the feature table's columns the model reads, and how many it dropped at fit as constant or
    all missing on its training rows (every event feature of a folder without touchpoints)."""
    used = len(model.feature_names_)
    dropped = len(getattr(model, "dropped_features_", ()))
    return {"in_table": used + dropped, "used": used, "dropped_constant_or_missing": dropped}
