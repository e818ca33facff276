"""Churn metrics: discrimination, calibration, lift/capture and per-segment tables (charts: :mod:`training.plots`)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


def expected_calibration_error(y, p, *, bins: int = 10) -> float:
    """ECE: the size-weighted mean |observed rate − mean prediction| over equal-width probability bins."""
    y = np.asarray(y, float)
    p = np.clip(np.asarray(p, float), 0.0, 1.0)
    if len(y) == 0:
        return float("nan")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    count = np.bincount(idx, minlength=bins)
    gap = np.abs(np.bincount(idx, y, minlength=bins) - np.bincount(idx, p, minlength=bins))
    return float(gap.sum() / count.sum())


def lift_capture(y, score, share: float) -> tuple[float, float]:
    """(lift, capture) of the top ``share`` of customers by ``score``: rate / base rate, positives caught."""
    y = np.asarray(y, float)
    n = len(y)
    k = max(1, round(n * share))
    top = np.argsort(-np.asarray(score, float), kind="stable")[:k]
    base = y.mean()
    if base == 0:
        return float("nan"), float("nan")
    return float(y[top].mean() / base), float(y[top].sum() / y.sum())


def churn_metrics(y, p) -> dict[str, float]:
    """AUC, PR-AUC, Brier, ECE, lift and capture at 10 % and 20 %, base rate and mean prediction."""
    y = np.asarray(y, int)
    p = np.asarray(p, float)
    both = len(np.unique(y)) == 2
    out = {
        "n": float(len(y)),
        "base_rate": float(y.mean()) if len(y) else float("nan"),
        "mean_prediction": float(p.mean()) if len(p) else float("nan"),
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, np.clip(p, 0, 1))) if len(y) else float("nan"),
        "ece": expected_calibration_error(y, p),
    }
    for share in (0.1, 0.2):
        lift, capture = lift_capture(y, p, share)
        out[f"lift_at_{round(share * 100)}"] = lift
        out[f"capture_at_{round(share * 100)}"] = capture
    return out


def ranking_auc(y, score) -> float:
    """ROC-AUC of any score (higher = more likely churn); NaN with a single class."""
    y = np.asarray(y, int)
    return float(roc_auc_score(y, score)) if len(np.unique(y)) == 2 else float("nan")


def segment_metrics(
    y, p, segments: Mapping[str, pd.Series | np.ndarray], *, min_rows: int = 30
) -> pd.DataFrame:
    """AUC, Brier, ECE, base rate and mean prediction per value of each segmenting column."""
    y = np.asarray(y, int)
    p = np.asarray(p, float)
    rows = []
    for name, values in segments.items():
        values = pd.Series(np.asarray(values)).astype(str).to_numpy()
        for value in sorted(set(values)):
            m = values == value
            if m.sum() < min_rows:
                continue
            met = churn_metrics(y[m], p[m])
            rows.append(
                {
                    "segment": name,
                    "value": value,
                    "n": int(m.sum()),
                    "base_rate": met["base_rate"],
                    "mean_prediction": met["mean_prediction"],
                    "auc": met["auc"],
                    "brier": met["brier"],
                    "ece": met["ece"],
                }
            )
    return pd.DataFrame(
        rows, columns=["segment", "value", "n", "base_rate", "mean_prediction", "auc", "brier", "ece"]
    )


def calibration_table(y, p, *, bins: int = 10) -> pd.DataFrame:
    """Mean prediction and observed rate per equal-width probability bin (non-empty bins only)."""
    y = np.asarray(y, float)
    p = np.clip(np.asarray(p, float), 0, 1)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    frame = pd.DataFrame({"bin": idx, "p": p, "y": y}).groupby("bin")
    return frame.agg(
        mean_prediction=("p", "mean"), observed_rate=("y", "mean"), n=("y", "size")
    ).reset_index()
