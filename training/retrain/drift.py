"""Drift between the champion's training reference and the new data: PSI and a two-sample KS test per feature,
the same for the churn score, and the churn label rate over time.

Written with numpy and scipy rather than a drift library: alibi-detect pins numpy < 2 and pandas < 3, nannyml
pins lightgbm < 4.6 and pulls cloud and telemetry clients, and evidently pulls a web server, NLP and plotting
stack for two formulas; all of them also want the reference *rows*, while engage stores no
customer row with a model. The reference is a sketch per feature instead (:func:`sketch`): decile bin edges
with the share of rows in each bin (and of missing values) for PSI, and the empirical CDF on its percentile
grid for KS. PSI is exact on those bins; the KS statistic is the largest CDF gap on the grid (the exact
two-sample statistic evaluated at up to 101 points), its p-value from the Kolmogorov distribution with the
effective sample size ``n m / (n + m)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

# PSI's guard against empty bins (a share of 0 would make the log infinite).
EPS = 1e-4
GRID = np.linspace(0, 1, 101)


def _numeric(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def sketch(values: pd.Series) -> dict:
    """The reference summary of one feature: decile edges and bin shares, missing share, CDF grid, size."""
    x = _numeric(values)
    present = x[~np.isnan(x)]
    if not len(present):
        return {"n": len(x), "missing": 1.0, "edges": [], "shares": [], "grid": [], "cdf": []}
    edges = np.unique(np.quantile(present, np.linspace(0.1, 0.9, 9)))
    bins = np.searchsorted(edges, present, side="right")
    shares = np.bincount(bins, minlength=len(edges) + 1) / len(present)
    grid = np.unique(np.quantile(present, GRID))
    cdf = np.searchsorted(np.sort(present), grid, side="right") / len(present)
    return {"n": len(x), "missing": float(np.isnan(x).mean()), "edges": edges.tolist(),
            "shares": shares.tolist(), "grid": grid.tolist(), "cdf": cdf.tolist()}


def psi(reference: dict, values: pd.Series) -> float:
    """Population stability index of ``values`` against a reference sketch (missing values are one more bin)."""
    x = _numeric(values)
    present = x[~np.isnan(x)]
    miss_ref, miss_now = reference["missing"], float(np.isnan(x).mean()) if len(x) else 0.0
    ref = np.append(np.asarray(reference["shares"]) * (1 - miss_ref), miss_ref)
    counts = np.bincount(np.searchsorted(np.asarray(reference["edges"]), present, side="right"),
                         minlength=len(reference["edges"]) + 1)
    now = np.append(counts / max(len(present), 1) * (1 - miss_now), miss_now)
    ref, now = np.clip(ref, EPS, None), np.clip(now, EPS, None)
    return float(np.sum((now - ref) * np.log(now / ref)))


def ks_test(reference: dict, values: pd.Series) -> tuple[float, float]:
    """Two-sample KS statistic on the reference's percentile grid, and its p-value."""
    present = np.sort(_numeric(values))
    present = present[~np.isnan(present)]
    n_ref = reference["n"] * (1 - reference["missing"])
    if not len(present) or not reference["grid"] or n_ref < 1:
        return float("nan"), float("nan")
    now = np.searchsorted(present, np.asarray(reference["grid"]), side="right") / len(present)
    d = float(np.max(np.abs(now - np.asarray(reference["cdf"]))))
    n_eff = max(1, round(n_ref * len(present) / (n_ref + len(present))))
    return d, float(stats.kstwo.sf(d, n_eff))


def reference_sketches(features: pd.DataFrame, scores: pd.Series) -> dict:
    """Sketches of every feature column and of the churn score: what a version stores for later drift checks."""
    return {"features": {str(c): sketch(features[c]) for c in features.columns
                         if pd.api.types.is_numeric_dtype(features[c]) or pd.api.types.is_bool_dtype(features[c])},
            "score": sketch(scores)}


def drift_figures(reference: dict, features: pd.DataFrame, scores: pd.Series | None) -> dict:
    """PSI, KS statistic and p-value per feature (sorted, most drifted first) and for the churn score."""
    rows = []
    for name, ref in reference.get("features", {}).items():
        if name not in features:
            continue
        d, p = ks_test(ref, features[name])
        rows.append({"feature": name, "psi": round(psi(ref, features[name]), 6), "ks": round(d, 6), "ks_p": p})
    rows.sort(key=lambda r: (-r["psi"], -(r["ks"] if r["ks"] == r["ks"] else 0)))
    score = None
    if scores is not None and reference.get("score"):
        d, p = ks_test(reference["score"], scores)
        score = {"psi": round(psi(reference["score"], scores), 6), "ks": round(d, 6), "ks_p": p}
    return {"features": rows, "score": score}


def label_rates(tables, as_of: pd.Timestamp, settings, months: int = 6) -> list[dict]:
    """The churn label rate at the last ``months`` monthly cutoffs whose horizon ended before ``as_of``."""
    from training.churn.split import derived_labels

    last = as_of - pd.Timedelta(days=settings.horizon_days)
    first = last - pd.DateOffset(months=months)
    ts = pd.to_datetime(tables.touchpoints["ts"], utc=True)
    start = ts.min() + pd.Timedelta(days=settings.inactivity_days) if len(ts) else last
    cutoffs = [c for c in pd.date_range(max(first, start).normalize(), last, freq="MS", tz="UTC")]
    if not cutoffs:
        return []
    labels = derived_labels(tables, cutoffs, settings)
    grouped = labels.groupby("cutoff")["label"].agg(["mean", "size"])
    return [{"cutoff": str(c), "label_rate": round(float(r["mean"]), 6), "customers": int(r["size"])}
            for c, r in grouped.iterrows()]
