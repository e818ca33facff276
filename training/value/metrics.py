"""How well predicted customer values match the spend (margin) customers went on to realise.

Ranking is what targeting needs (Spearman rank correlation; the share of all future value held by the
top tenth of customers by prediction); the level is what an expected-value rule needs (mean absolute error;
predicted against realised mean by predicted decile). The decile chart is logged with every value run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import spearmanr


def top_share_capture(predicted: np.ndarray, realised: np.ndarray, share: float = 0.1) -> float:
    """Share of the total realised value held by the top ``share`` of customers by predicted value.

    Ties in the prediction are broken by realised value's *opposite* order (the least favourable), so a
    model that ties many customers gains nothing from the order they happen to be listed in.
    """
    p, r = np.asarray(predicted, float), np.asarray(realised, float)
    total = r.sum()
    if len(p) == 0 or total <= 0:
        return float("nan")
    k = max(1, int(np.ceil(share * len(p))))
    order = np.lexsort((r, -p))  # by prediction descending, ties: smallest realised first
    return float(r[order[:k]].sum() / total)


def decile_calibration(predicted: np.ndarray, realised: np.ndarray) -> list[dict]:
    """Mean predicted and realised value per predicted decile (1 = lowest), by rank so ties split evenly."""
    p, r = np.asarray(predicted, float), np.asarray(realised, float)
    if len(p) == 0:
        return []
    rank = np.argsort(np.argsort(p, kind="stable"), kind="stable")
    decile = (rank * 10 // len(p)).astype(int) + 1
    out = []
    for d in range(1, 11):
        m = decile == d
        if m.any():
            out.append({"decile": d, "customers": int(m.sum()), "predicted_mean": float(p[m].mean()),
                        "realised_mean": float(r[m].mean())})
    return out


def value_metrics(predicted: np.ndarray, realised: np.ndarray) -> dict:
    """Spearman, top-decile capture, MAE, totals and calibration by decile of predicted vs realised value."""
    p, r = np.asarray(predicted, float), np.asarray(realised, float)
    if len(p) != len(r):
        raise ValueError(f"value metrics: {len(p)} predictions, {len(r)} realised values")
    rho = spearmanr(p, r).statistic if len(p) > 2 and np.ptp(p) > 0 and np.ptp(r) > 0 else float("nan")
    return {
        "customers": len(p),
        "spearman": float(rho),
        "top_decile_capture": top_share_capture(p, r),
        "mae": float(np.abs(p - r).mean()) if len(p) else float("nan"),
        "predicted_total": float(p.sum()),
        "realised_total": float(r.sum()),
        "calibration_by_decile": decile_calibration(p, r),
    }


def _spearman(p: np.ndarray, r: np.ndarray) -> float:
    return float(spearmanr(p, r).statistic) if np.ptp(p) > 0 and np.ptp(r) > 0 else float("nan")


def paired_difference(predicted: np.ndarray, baseline: np.ndarray, realised: np.ndarray,
                      rng: np.random.Generator, *, n_boot: int = 200) -> dict[str, dict[str, float]]:
    """Spearman and top-decile capture of ``predicted`` minus ``baseline``, with 95 % paired bootstrap intervals.

    The same resampled customers score both models, so the interval is that of the difference itself: a
    model "beats" the baseline when the interval is above zero, ties when it straddles zero.
    """
    p, b, r = (np.asarray(x, float) for x in (predicted, baseline, realised))
    metrics = {"spearman": _spearman, "top_decile_capture": top_share_capture}
    point = {k: f(p, r) - f(b, r) for k, f in metrics.items()}
    draws: dict[str, list[float]] = {k: [] for k in metrics}
    for _ in range(n_boot):
        i = rng.integers(0, len(r), len(r))
        for k, f in metrics.items():
            draws[k].append(f(p[i], r[i]) - f(b[i], r[i]))
    out = {}
    for k, v in point.items():
        low, high = np.nanpercentile(draws[k], [2.5, 97.5]) if n_boot else (np.nan, np.nan)
        out[k] = {"value": float(v), "low": float(low), "high": float(high)}
    return out


def verdict(difference: dict[str, dict[str, float]]) -> str:
    """``beats``, ``tie`` or ``behind`` the baseline on both headline metrics, by their intervals."""
    lows = [d["low"] for d in difference.values()]
    highs = [d["high"] for d in difference.values()]
    if all(lo > 0 for lo in lows):
        return "beats"
    if any(hi < 0 for hi in highs):
        return "behind"
    return "tie"


def decile_plot(calibration: dict[str, list[dict]], path: str | Path, title: str) -> Path:
    """Predicted and realised mean value per predicted decile, one panel line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (name, rows) in enumerate(calibration.items()):
        d = [row["decile"] for row in rows]
        ax.plot(d, [row["predicted_mean"] for row in rows], marker="o", ls="--", color=f"C{i}",
                label=f"{name}: predicted")
        ax.plot(d, [row["realised_mean"] for row in rows], marker="s", color=f"C{i}", label=f"{name}: realised")
    ax.set_xlabel("predicted value decile")
    ax.set_ylabel("mean value per customer")
    ax.set_yscale("symlog")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
