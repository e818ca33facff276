"""Charts of churn models and of the data behind them, drawn on a given matplotlib axis or written as PNG.

Each ``draw_*`` function draws on an axis the caller owns (a notebook's ``plt.subplots()``), so the same
chart shows inline and is logged to MLflow; :func:`write_chart` draws one on an off-screen figure and writes
it, with no pyplot state and no backend switch (a notebook's inline backend stays as it is).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve

from training.metrics import calibration_table, ranking_auc

Curves = Mapping[str, tuple[np.ndarray, np.ndarray]]  # name -> (labels, scores)


def write_chart(path: str | Path, draw: Callable, *args, size: tuple[float, float] = (5, 5), **kwargs) -> Path:
    """``draw(ax, *args, **kwargs)`` on an off-screen figure of ``size`` inches, written as PNG to ``path``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    draw(fig.subplots(), *args, **kwargs)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)


def _diagonal(ax, label: str) -> None:
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label=label)


def draw_roc(ax, curves: Curves) -> None:
    """ROC curves (true vs false positive rate), AUC in the legend."""
    _diagonal(ax, "random")
    for name, (y, score) in curves.items():
        fpr, tpr, _ = roc_curve(np.asarray(y, int), np.asarray(score, float))
        ax.plot(fpr, tpr, label=f"{name} (AUC {ranking_auc(y, score):.3f})")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right", fontsize="small")


def draw_pr(ax, curves: Curves) -> None:
    """Precision-recall curves, the base rate as the random line, average precision in the legend."""
    base = None
    for name, (y, score) in curves.items():
        y = np.asarray(y, int)
        precision, recall, _ = precision_recall_curve(y, np.asarray(score, float))
        ap = float(np.sum(np.diff(recall[::-1]) * precision[::-1][1:]))
        ax.plot(recall, precision, label=f"{name} (AP {ap:.3f})")
        base = y.mean()
    if base is not None:
        ax.axhline(base, ls="--", color="grey", lw=1, label=f"base rate {base:.3f}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall", ylim=(0, 1.02))
    ax.legend(loc="upper right", fontsize="small")


def draw_calibration(ax, curves: Curves) -> None:
    """Reliability diagram: observed churn rate per bin of predicted probability, one line per model."""
    _diagonal(ax, "perfect")
    for name, (y, p) in curves.items():
        t = calibration_table(y, p)
        ax.plot(t["mean_prediction"], t["observed_rate"], marker="o", label=name)
    ax.set(xlabel="mean predicted churn probability", ylabel="observed churn rate", title="Calibration")
    ax.legend(loc="upper left", fontsize="small")


def draw_gains(ax, curves: Curves) -> None:
    """Cumulative gains: share of churners caught vs share of customers contacted, highest score first."""
    _diagonal(ax, "random")
    for name, (y, score) in curves.items():
        y = np.asarray(y, float)
        order = np.argsort(-np.asarray(score, float), kind="stable")
        caught = np.concatenate([[0.0], np.cumsum(y[order]) / max(y.sum(), 1)])
        ax.plot(np.linspace(0, 1, len(caught)), caught, label=name)
    ax.set(xlabel="share of customers (highest score first)", ylabel="share of churners captured", title="Gains")
    ax.legend(loc="lower right", fontsize="small")


def draw_shap_summary(ax, contributions: pd.DataFrame, values: pd.DataFrame, *, top: int = 15, seed: int = 0) -> None:
    """SHAP summary (beeswarm): per feature, each customer's contribution to the churn log-odds, coloured by
    the feature's value (rank within the feature, low blue to high red); features by mean |contribution|."""
    contrib = contributions.drop(columns=["__base__"], errors="ignore")
    order = contrib.abs().mean().sort_values(ascending=False).index[:top][::-1]
    rng = np.random.default_rng(seed)
    for row, name in enumerate(order):
        x = contrib[name].to_numpy(float)
        v = (pd.Series(values[name].to_numpy(float)).rank(pct=True).to_numpy() if name in values
             else np.full(len(x), 0.5))
        ax.scatter(x, row + rng.uniform(-0.3, 0.3, len(x)), c=np.nan_to_num(v, nan=0.5), cmap="coolwarm", s=6,
                   vmin=0, vmax=1, alpha=0.7, linewidths=0)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(order)), list(order), fontsize="small")
    ax.set(xlabel="contribution to churn log-odds (SHAP)", title="SHAP summary (colour: feature value, low→high)")


def draw_distributions(ax, groups: Mapping[str, np.ndarray], *, bins: int = 30, xlabel: str = "") -> None:
    """Overlaid density histograms of one value per group (e.g. the engagement index by true trend)."""
    finite = [np.asarray(v, float)[np.isfinite(v)] for v in groups.values()]
    edges = np.histogram_bin_edges(np.concatenate(finite) if finite else [0.0], bins=bins)
    for (name, _), v in zip(groups.items(), finite, strict=True):
        label = f"{name} (n={len(v):,}, median {np.median(v):.1f})"
        ax.hist(v, bins=edges, density=True, histtype="step", lw=1.5, label=label)
    ax.set(xlabel=xlabel, ylabel="density")
    ax.legend(fontsize="small")


def draw_funnel(ax, reached: pd.Series, *, title: str = "") -> None:
    """A funnel: customers who reached each rung (top rung last), with the share of the first rung."""
    top = max(float(reached.iloc[0]), 1.0)
    names = list(reached.index)[::-1]
    counts = reached.to_numpy(float)[::-1]
    ax.barh(names, counts, color="tab:blue")
    for y, c in enumerate(counts):
        ax.text(c, y, f" {int(c):,} ({c / top:.0%})", va="center", fontsize="small")
    ax.set(xlabel="customers", title=title, xlim=(0, top * 1.3))


def draw_grouped_bars(ax, table: pd.DataFrame, *, ylabel: str = "", title: str = "") -> None:
    """One group of bars per row of ``table``, one bar per column (e.g. micro-moment share by true stage)."""
    n = max(len(table.columns), 1)
    width = 0.8 / n
    x = np.arange(len(table))
    for k, col in enumerate(table.columns):
        ax.bar(x + (k - (n - 1) / 2) * width, table[col].to_numpy(float), width, label=str(col))
    ax.set_xticks(x, [str(i) for i in table.index])
    ax.set(ylabel=ylabel, title=title)
    ax.legend(fontsize="small")


def draw_bars(ax, values: pd.Series, *, xlabel: str = "", title: str = "", digits: int = 3) -> None:
    """Horizontal bars of named values (e.g. AUC of baselines, model, ceiling and oracle), values written on."""
    ax.barh(list(values.index), values.to_numpy(float), color="tab:blue")
    for y, v in enumerate(values.to_numpy(float)):
        ax.text(v, y, f" {v:.{digits}f}", va="center", fontsize="small")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set(xlabel=xlabel, title=title)
