"""What the churn model is compared with: logistic regressions, BG/NBD purchase models and the simulator's oracle.

A model earns its place only by beating simple references on the same rows: a logistic regression on
recency, frequency and monetary value, one on every feature, the BG/NBD (lifetimes) expected purchases
and P(alive), and, on simulated data, the truth's own churn probabilities (the best any model can do).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.contract.cutoffs import utc_timestamp
from features.contract.errors import error_line
from features.contract.schema import Tables
from training.metrics import churn_metrics, ranking_auc

log = logging.getLogger("engage.churn")

RFM_COLUMNS = ("recency_days", "frequency", "monetary")


def imputed_logistic(**params):
    """Median imputation, standard scaling and a logistic regression with ``params``, as one pipeline."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(**params),
    )


class RFMLogistic:
    """Baseline: logistic regression on log recency, frequency and monetary value."""

    def __init__(self, columns=RFM_COLUMNS):
        self.columns = tuple(columns)

    def _x(self, F: pd.DataFrame) -> np.ndarray:
        X = F.reindex(columns=list(self.columns)).to_numpy(float, na_value=np.nan)
        return np.log1p(np.clip(X, 0, None))

    def fit(self, F: pd.DataFrame, y) -> RFMLogistic:
        self.model_ = imputed_logistic(max_iter=1000)
        self.model_.fit(self._x(F), np.asarray(y, int))
        return self

    def predict_proba(self, F: pd.DataFrame) -> np.ndarray:
        return self.model_.predict_proba(self._x(F))[:, 1]


class AllFeaturesLogistic:
    """Baseline: a regularised logistic regression on every feature column."""

    def __init__(self, C: float = 0.5):
        self.C = C

    def fit(self, F: pd.DataFrame, y) -> AllFeaturesLogistic:
        self.model_ = imputed_logistic(max_iter=2000, C=self.C)
        self.model_.fit(F.to_numpy(float, na_value=np.nan), np.asarray(y, int))
        return self

    def predict_proba(self, F: pd.DataFrame) -> np.ndarray:
        return self.model_.predict_proba(F.to_numpy(float, na_value=np.nan))[:, 1]


def purchase_summary(tables: Tables, cutoff) -> pd.DataFrame:
    """BG/NBD inputs per customer from purchases before ``cutoff`` (days): frequency, recency, T."""
    tp = tables.touchpoints
    m = (tp["kind"].astype(str) == "purchase").to_numpy()
    ts = pd.to_datetime(tp.loc[m, "ts"], utc=True)
    before = (ts < utc_timestamp(cutoff)).to_numpy()
    frame = pd.DataFrame(
        {
            "customer_id": tp.loc[m, "customer_id"].astype(str).to_numpy()[before],
            "day": ts[before].dt.floor("D").to_numpy(),
        }
    )
    frame = frame.drop_duplicates()
    g = frame.groupby("customer_id")["day"]
    first, last, count = g.min(), g.max(), g.size()
    cut = utc_timestamp(cutoff).tz_localize(None)
    first_n = pd.to_datetime(first).dt.tz_localize(None)
    last_n = pd.to_datetime(last).dt.tz_localize(None)
    return pd.DataFrame(
        {
            "frequency": (count - 1).astype(float),
            "recency": (last_n - first_n).dt.days.astype(float),
            "T": ((cut - first_n).dt.total_seconds() / 86400).astype(float),
        }
    )


def bgnbd_scores(tables: Tables, cutoff, customer_ids, horizon_days: int) -> pd.DataFrame | None:
    """BG/NBD (lifetimes) fitted on purchases before ``cutoff``: expected purchases in the horizon, P(alive).

    Customers without a purchase get expected purchases 0 and P(alive) NaN. ``None`` when there are too
    few repeat buyers to fit.
    """
    import warnings

    with warnings.catch_warnings():  # lifetimes sets a pandas option that pandas 3 deprecates
        warnings.simplefilter("ignore")
        from lifetimes import BetaGeoFitter

    summary = purchase_summary(tables, cutoff)
    summary = summary[summary["T"] > 0]
    if len(summary) < 50 or (summary["frequency"] > 0).sum() < 20:
        return None
    bg = BetaGeoFitter(penalizer_coef=0.001)
    # the optimiser probes invalid parameters on its way; lifetimes prints its optimiser's state to stdout
    # when it fails to converge, and stdout is where the commands print their JSON. A ConvergenceError is
    # reported by the caller under ``baselines_failed`` and training goes on.
    with np.errstate(all="ignore"), contextlib.redirect_stdout(io.StringIO()):
        bg.fit(summary["frequency"], summary["recency"], summary["T"])
    with np.errstate(all="ignore"):
        exp = bg.conditional_expected_number_of_purchases_up_to_time(
            horizon_days, summary["frequency"], summary["recency"], summary["T"]
        )
        alive = bg.conditional_probability_alive(summary["frequency"], summary["recency"], summary["T"])
    out = pd.DataFrame({"expected_purchases": exp, "p_alive": alive}, index=summary.index)
    out = out.reindex(pd.Index(customer_ids, name="customer_id").astype(str))
    out["expected_purchases"] = out["expected_purchases"].fillna(0.0)
    return out


@dataclass
class BaselineScores:
    """Each baseline's metrics on the test rows and, where it ranks every row, its scores; the baselines that
    failed, with their error (a reference that cannot be fitted never stops the model's training)."""

    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def attempt(self, name: str, step: Callable[[], None]) -> None:
        """Run one baseline's ``step``; an error is recorded under ``name`` and logged instead of raised."""
        try:
            step()
        except Exception as exc:  # any failure of a reference model is a result to report, not a crash
            self.failed[name] = error_line(exc)
            log.warning("baseline %s failed: %s", name, self.failed[name])


def temporal_baselines(
    tables: Tables,
    F_train: pd.DataFrame,
    y_train,
    F_test: pd.DataFrame,
    test_keys: pd.DataFrame,
    test: pd.Timestamp,
    horizon_days: int,
) -> BaselineScores:
    """The RFM logistic regression (fitted on the training rows) and BG/NBD, scored on the test rows."""
    out = BaselineScores()
    y_te = test_keys["label"].to_numpy()

    def rfm() -> None:
        scores = RFMLogistic().fit(F_train, y_train).predict_proba(F_test)
        out.metrics["logistic_rfm"] = churn_metrics(y_te, scores)
        out.scores["logistic_rfm"] = scores
        log.info("baseline logistic RFM AUC %.4f", out.metrics["logistic_rfm"]["auc"])

    def bgnbd() -> None:
        bg = bgnbd_scores(tables, test, test_keys["customer_id"], horizon_days)
        if bg is None:
            return
        expected = -bg["expected_purchases"].to_numpy()
        alive = bg["p_alive"].to_numpy()
        has = ~np.isnan(alive)
        out.metrics["bgnbd_expected_purchases"] = {"auc": ranking_auc(y_te, expected)}
        out.metrics["bgnbd_p_alive"] = {"auc": ranking_auc(y_te[has], -alive[has]), "n": float(has.sum())}
        out.scores["bgnbd_expected_purchases"] = expected
        log.info("baseline BG/NBD expected purchases AUC %.4f", out.metrics["bgnbd_expected_purchases"]["auc"])

    out.attempt("logistic_rfm", rfm)
    out.attempt("bgnbd", bgnbd)
    return out


def oracle_metrics(tables: Tables, keys: pd.DataFrame, test: pd.Timestamp) -> dict[str, float]:
    """The simulator's true churn probabilities scored on ``keys`` (empty unless ``test`` is its cutoff)."""
    truth = tables.truth
    manifest = tables.meta.get("manifest") or {}
    if truth is None or "p_churn_no_contact" not in truth or not manifest.get("cutoff"):
        return {}
    if utc_timestamp(manifest["cutoff"]) != test:
        return {}
    p = truth.set_index(truth["customer_id"].astype(str))["p_churn_no_contact"].reindex(keys["customer_id"])
    ok = p.notna().to_numpy()
    met = churn_metrics(keys["label"].to_numpy()[ok], p.to_numpy()[ok])
    return {"oracle_auc": met["auc"], "oracle_brier": met["brier"], "oracle_ece": met["ece"]}
