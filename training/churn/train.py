"""Churn training and evaluation: point-in-time training sets, temporal validation, baselines, MLflow.

Pure part (no MLflow, no files): :func:`temporal_split`, :func:`labelled_features`, :func:`train_churn`
(derived labels, many cutoffs) and :func:`train_given_labels` (a ``labels`` table, cross-validated).
Edges: :func:`train_churn_command` (read data → train → log run → register challenger → promote) and
:func:`evaluate_churn_command` (score a registered model on a data folder). Both return the JSON report.

Time-based split (derived labels): the test cutoff ``T`` is the data's evaluation cutoff (the simulator
manifest's ``cutoff``; else the last full horizon before the end of the log). Validation cutoffs end
their label window at or before ``T``; training cutoffs end theirs at or before the first validation
cutoff, so no training label comes from after the training period.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.contract.cutoffs import evaluation_cutoff, utc_timestamp
from features.contract.schema import Tables
from features.labels import OUTREACH_REACTIONS, make_labels
from features.models.churn import BlendedChurnModel, ChurnModel, LinearScore, feature_labels_from
from features.models.lgbm import booster_predict, feature_matrix
from features.system import DecisionSystem
from training.metrics import (
    churn_metrics,
    plot_calibration,
    plot_gains,
    ranking_auc,
    segment_metrics,
)
from training.report import write_json

log = logging.getLogger("engage.churn")

RFM_COLUMNS = ("recency_days", "frequency", "monetary")
# The headline metrics copied into every churn report, however the model was trained.
REPORT_METRICS: tuple[str, ...] = (
    "auc", "pr_auc", "brier", "ece", "lift_at_10", "lift_at_20", "capture_at_10", "capture_at_20", "base_rate",
    "mean_prediction", "n",
)


@dataclass(frozen=True)
class ChurnSettings:
    """Training choices (``mlflow.yaml``'s ``churn`` section overrides the defaults)."""

    horizon_days: int = 90
    inactivity_days: int = 90
    cutoff_step_days: int = 30
    max_train_cutoffs: int = 10
    n_val_cutoffs: int = 1
    seed: int = 7
    activity_kinds: tuple[str, ...] | None = None
    # Kinds that keep a customer eligible but do not count as activity in the label's horizon: reactions
    # to our own outreach are not retention (and the simulator's truth does not count them either).
    outcome_excludes: tuple[str, ...] = tuple(sorted(OUTREACH_REACTIONS))
    test_cutoff: str | None = None
    params: dict = field(default_factory=dict)
    calibration: str = "auto"
    cv_folds: int = 5
    min_history_days: int | None = None
    validation: str = "temporal"
    holdout_share: float = 0.2
    seasonal_calibration: bool = False

    @classmethod
    def from_dict(cls, spec: dict | None) -> ChurnSettings:
        spec = dict(spec or {})
        unknown = set(spec) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"churn settings: unknown keys {sorted(unknown)}")
        if "outcome_excludes" in spec and spec["outcome_excludes"] is None:
            spec["outcome_excludes"] = ()  # ``outcome_excludes: null`` in YAML: every activity counts
        for key in ("activity_kinds", "outcome_excludes"):
            if spec.get(key) is not None:
                spec[key] = tuple(spec[key])
        return cls(**spec)


@dataclass(frozen=True)
class TemporalSplit:
    train: list[pd.Timestamp]
    val: list[pd.Timestamp]
    test: pd.Timestamp

    def as_dict(self) -> dict[str, Any]:
        return {
            "train": [str(c) for c in self.train],
            "val": [str(c) for c in self.val],
            "test": str(self.test),
        }



def data_span(tables: Tables) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First touchpoint and end of the observed log (manifest ``end`` when simulated, else last ts)."""
    ts = pd.to_datetime(tables.touchpoints["ts"], utc=True)
    if len(ts) == 0:
        raise ValueError("touchpoints: no rows, cannot derive churn labels")
    manifest = tables.meta.get("manifest") or {}
    end = utc_timestamp(manifest["end"]) if manifest.get("end") else ts.max() + pd.Timedelta(seconds=1)
    return ts.min(), end


def temporal_split(tables: Tables, settings: ChurnSettings, *, test_cutoff=None) -> TemporalSplit:
    """Train / validation / test cutoffs whose label windows never overlap the next period."""
    start, end = data_span(tables)
    H = pd.Timedelta(days=settings.horizon_days)
    step = pd.Timedelta(days=settings.cutoff_step_days)
    given = evaluation_cutoff(tables, test_cutoff or settings.test_cutoff, fallback="none")
    test = given if given is not None else (end - H).floor("D")
    if test + H > end:
        raise ValueError(
            f"test cutoff {test}: its {settings.horizon_days}-day horizon ends after the log ({end})"
        )
    if settings.validation not in ("temporal", "holdout"):
        raise ValueError(f"validation {settings.validation!r}: use 'temporal' or 'holdout'")
    # holdout: training cutoffs run up to the test period; early stopping and calibration use held-out
    # customers at those cutoffs instead of a later validation period
    val = (
        [test - H - k * step for k in range(settings.n_val_cutoffs)][::-1]
        if settings.validation == "temporal"
        else [test]
    )
    history = settings.min_history_days
    earliest = start + pd.Timedelta(days=min(settings.inactivity_days, 365) if history is None else history)
    train = []
    c = val[0] - H
    while c >= earliest and len(train) < settings.max_train_cutoffs:
        train.append(c)
        c = c - step
    if not train:
        raise ValueError(
            f"not enough history for a temporal split: the log starts {start.date()}, the test cutoff is "
            f"{test.date()}; training needs cutoffs at or before {(val[0] - H).date()} with "
            f"{settings.inactivity_days} days of history (simulate more --days or shorten the horizon)"
        )
    return TemporalSplit(train=train[::-1], val=val if settings.validation == "temporal" else [], test=test)


def labelled_features(
    tables: Tables, cutoffs, pipeline, settings: ChurnSettings, *, labels: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feature rows and labels for every customer active at each cutoff.

    Returns ``(F, keys)``: ``F`` indexed by customer_id (one row per labelled customer and cutoff) and
    ``keys`` with columns ``customer_id, cutoff, label`` aligned with ``F``'s rows.
    """
    if labels is None:
        labels = make_labels(
            tables,
            cutoffs,
            horizon_days=settings.horizon_days,
            inactivity_days=settings.inactivity_days,
            activity_kinds=settings.activity_kinds,
            outcome_excludes=settings.outcome_excludes,
        )
    blocks, keys = [], []
    data = tables.without_truth()
    for c in cutoffs:
        lab = labels[labels["cutoff"] == c]
        if lab.empty:
            continue
        t0 = time.perf_counter()
        F = pipeline.transform(data, cutoff=c)
        blocks.append(F.loc[lab["customer_id"].to_numpy()])
        keys.append(lab.reset_index(drop=True))
        log.info(
            "features at %s: %d labelled customers (churn rate %.3f) in %.1fs",
            c.date(),
            len(lab),
            lab["label"].mean(),
            time.perf_counter() - t0,
        )
    if not blocks:
        raise ValueError(f"no customer is active at any of the cutoffs {[str(c.date()) for c in cutoffs]}")
    return pd.concat(blocks), pd.concat(keys, ignore_index=True)


# ------------------------------------------------------------------------------------------ baselines


class RFMLogistic:
    """Baseline: logistic regression on log recency, frequency and monetary value."""

    def __init__(self, columns=RFM_COLUMNS):
        self.columns = tuple(columns)

    def _x(self, F: pd.DataFrame) -> np.ndarray:
        X = F.reindex(columns=list(self.columns)).to_numpy(float, na_value=np.nan)
        return np.log1p(np.clip(X, 0, None))

    def fit(self, F: pd.DataFrame, y) -> RFMLogistic:
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model_ = make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(max_iter=1000),
        )
        self.model_.fit(self._x(F), np.asarray(y, int))
        return self

    def predict_proba(self, F: pd.DataFrame) -> np.ndarray:
        return self.model_.predict_proba(self._x(F))[:, 1]


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
    with np.errstate(all="ignore"):  # the optimiser probes invalid parameters on its way
        bg.fit(summary["frequency"], summary["recency"], summary["T"])
        exp = bg.conditional_expected_number_of_purchases_up_to_time(
            horizon_days, summary["frequency"], summary["recency"], summary["T"]
        )
        alive = bg.conditional_probability_alive(summary["frequency"], summary["recency"], summary["T"])
    out = pd.DataFrame({"expected_purchases": exp, "p_alive": alive}, index=summary.index)
    out = out.reindex(pd.Index(customer_ids, name="customer_id").astype(str))
    out["expected_purchases"] = out["expected_purchases"].fillna(0.0)
    return out


# ------------------------------------------------------------------------------------------ training


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


def pipeline_dictionary(pipeline) -> dict[str, str]:
    """Readable meaning of every feature column of a fitted pipeline (its builders' ``describe()``)."""
    out: dict[str, str] = {}
    for builder in pipeline.families().values():
        out.update(dict(builder.describe()))
    return out


def feature_dictionary_frame(pipeline) -> pd.DataFrame:
    """The feature dictionary of a fitted pipeline (name, family, meaning) for logging."""
    rows = []
    for family, builder in pipeline.families().items():
        rows += [{"name": n, "family": family, "meaning": m} for n, m in builder.describe()]
    return pd.DataFrame(rows)


def _segments(F: pd.DataFrame) -> dict[str, np.ndarray]:
    seg: dict[str, np.ndarray] = {}
    if "store_ladder" in F:
        from features.contract.schema import STORE_LADDER

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


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def _oracle(tables: Tables, keys: pd.DataFrame, test: pd.Timestamp) -> dict[str, float]:
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


def train_churn(
    tables: Tables, settings: ChurnSettings, rng: np.random.Generator, *, pipeline=None, dataset: str = ""
) -> ChurnResult:
    """Train the calibrated churn model on derived labels at many cutoffs and test it on the latest one.

    ``pipeline``: an unfitted ``FeaturePipeline`` (default one when ``None``); it is fitted on the
    training data at the last training cutoff.
    """
    from features.builders.pipeline import FeaturePipeline

    t0 = time.perf_counter()
    split = temporal_split(tables, settings)
    log.info(
        "cutoffs: train %s … %s (%d), val %s, test %s",
        split.train[0].date(),
        split.train[-1].date(),
        len(split.train),
        [str(c.date()) for c in split.val] or "held-out customers",
        split.test.date(),
    )
    all_cutoffs = [*split.train, *split.val, split.test]
    labels = make_labels(
        tables,
        all_cutoffs,
        horizon_days=settings.horizon_days,
        inactivity_days=settings.inactivity_days,
        activity_kinds=settings.activity_kinds,
        outcome_excludes=settings.outcome_excludes,
    )
    pipe = pipeline if pipeline is not None else FeaturePipeline()
    pipe.fit(tables.without_truth(), cutoff=split.train[-1])
    F_tr, k_tr = labelled_features(tables, split.train, pipe, settings, labels=labels)
    if split.val:
        F_va, k_va = labelled_features(tables, split.val, pipe, settings, labels=labels)
        latest = (k_va["cutoff"] == split.val[-1]).to_numpy()
    else:
        ids = k_tr["customer_id"].unique()
        held = set(rng.choice(ids, size=max(1, round(len(ids) * settings.holdout_share)), replace=False))
        is_held = k_tr["customer_id"].isin(held).to_numpy()
        F_va, k_va = F_tr[is_held], k_tr[is_held].reset_index(drop=True)
        F_tr, k_tr = F_tr[~is_held], k_tr[~is_held].reset_index(drop=True)
        latest = (k_va["cutoff"] == split.train[-1]).to_numpy()
    F_te, k_te = labelled_features(tables, [split.test], pipe, settings, labels=labels)
    names = feature_labels_from(pipeline_dictionary(pipe), list(F_tr.columns))
    log.info(
        "training LightGBM on %d rows × %d features (validation %d rows)", len(F_tr), F_tr.shape[1], len(F_va)
    )
    F_cal, y_cal, cal_cutoff = F_va[latest], k_va["label"][latest], (split.val or split.train)[-1]
    if settings.seasonal_calibration and not split.val:
        # churn rates move with the season: calibrate on the held-out customers one year before the
        # test cutoff (a past period whose labels are complete) instead of the latest training cutoff
        season = split.test - pd.Timedelta(days=364)
        if season + pd.Timedelta(days=settings.horizon_days) <= split.test and season > data_span(tables)[0]:
            F_s, k_s = labelled_features(tables, [season], pipe, settings)
            keep = k_s["customer_id"].isin(set(k_va["customer_id"])).to_numpy()
            if keep.sum() >= 200 and k_s["label"][keep].nunique() == 2:
                F_cal, y_cal, cal_cutoff = F_s[keep], k_s["label"][keep], season
    model = ChurnModel(settings.params, calibration=settings.calibration, seed=_seed(rng))
    model.fit(F_tr, k_tr["label"], F_va, k_va["label"], F_cal=F_cal, y_cal=y_cal, feature_labels=names)
    log.info("calibrated (%s) on %d rows at %s", model.calibration_method_, len(y_cal), cal_cutoff.date())
    p_te = model.predict_proba(F_te)
    y_te = k_te["label"].to_numpy()
    metrics = churn_metrics(y_te, p_te)
    uncal = churn_metrics(y_te, 1 / (1 + np.exp(-model.raw_score(F_te))))
    log.info(
        "test AUC %.4f, Brier %.4f, ECE %.4f (calibration: %s)",
        metrics["auc"],
        metrics["brier"],
        metrics["ece"],
        model.calibration_method_,
    )

    baselines: dict[str, dict[str, float]] = {}
    scores: dict[str, np.ndarray] = {}
    rfm = RFMLogistic().fit(F_tr, k_tr["label"])
    scores["logistic_rfm"] = rfm.predict_proba(F_te)
    baselines["logistic_rfm"] = churn_metrics(y_te, scores["logistic_rfm"])
    log.info("baseline logistic RFM AUC %.4f", baselines["logistic_rfm"]["auc"])
    bg = bgnbd_scores(tables, split.test, k_te["customer_id"], settings.horizon_days)
    if bg is not None:
        scores["bgnbd_expected_purchases"] = -bg["expected_purchases"].to_numpy()
        baselines["bgnbd_expected_purchases"] = {"auc": ranking_auc(y_te, scores["bgnbd_expected_purchases"])}
        alive = bg["p_alive"].to_numpy()
        has = ~np.isnan(alive)
        baselines["bgnbd_p_alive"] = {"auc": ranking_auc(y_te[has], -alive[has]), "n": float(has.sum())}
        log.info("baseline BG/NBD expected purchases AUC %.4f", baselines["bgnbd_expected_purchases"]["auc"])

    system = DecisionSystem(
        pipe,
        model,
        metadata={
            "trained_at_cutoffs": split.as_dict(),
            "horizon_days": settings.horizon_days,
            "inactivity_days": settings.inactivity_days,
            "outcome_excludes": list(settings.outcome_excludes),
            "dataset": dataset,
        },
    )
    seg = segment_metrics(y_te, p_te, _segments(F_te))
    report = {
        "dataset": dataset,
        "mode": "temporal",
        **{k: metrics[k] for k in REPORT_METRICS},
        "ece_uncalibrated": uncal["ece"],
        "brier_uncalibrated": uncal["brier"],
        "calibration": model.calibration_method_,
        "best_iteration": model.best_iteration_,
        "baselines": baselines,
        **_oracle(tables, k_te, split.test),
        "cutoffs": split.as_dict(),
        "rows": {"train": len(F_tr), "val": len(F_va), "test": len(F_te)},
        "validation": settings.validation,
        "calibration_cutoff": str(cal_cutoff),
        "train_label_window_end": str(max(split.train) + pd.Timedelta(days=settings.horizon_days)),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return ChurnResult(
        system=system,
        report=report,
        test_keys=k_te,
        test_prob=p_te,
        test_features=F_te,
        baseline_scores=scores,
        importance=model.importance(),
        segments=seg,
    )


# ------------------------------------------------------------------------------ given labels (e.g. telco)

# Small trees win on small tabular sets (31 leaves over-fit telco); column subsampling and L2 help too.
TUNING_GRID: tuple[dict, ...] = tuple(
    {
        "num_leaves": nl,
        "min_child_samples": mcs,
        "feature_fraction": ff,
        "learning_rate": 0.03,
        "lambda_l2": 5.0,
    }
    for nl in (4, 8)
    for mcs in (30, 100)
    for ff in (0.5, 0.9)
)


# Inverse regularisation of the linear blend partner, and the blend weights on LightGBM, both chosen by inner CV.
LINEAR_C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0)
BLEND_WEIGHTS: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


def _inner_folds(y: np.ndarray, seed: int, folds: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def _mean_fold_auc(y: np.ndarray, score: np.ndarray, folds) -> float:
    return float(np.mean([ranking_auc(y[va], score[va]) for _, va in folds]))


def _cv_rounds(
    F: pd.DataFrame, y: np.ndarray, params: dict, seed: int, folds: int = 3
) -> tuple[float, int, np.ndarray]:
    """Inner cross-validated AUC, mean best iteration and out-of-fold raw scores of one parameter set."""
    oof = np.zeros(len(y))
    iters = []
    splits = _inner_folds(y, seed, folds)
    for tr, va in splits:
        m = ChurnModel(params, calibration="none", class_weight=None, seed=seed)
        m.fit(F.iloc[tr], y[tr], F.iloc[va], y[va])
        oof[va] = m.raw_score(F.iloc[va])
        iters.append(m.best_iteration_)
    return _mean_fold_auc(y, oof, splits), int(np.mean(iters)), oof


def tune_params(F: pd.DataFrame, y: np.ndarray, seed: int, grid=TUNING_GRID) -> tuple[dict, int, float]:
    """Best LightGBM parameters from ``grid`` by inner 3-fold CV AUC; returns (params, rounds, auc)."""
    choice = tune_blend(F, y, seed, grid, weights=(1.0,))
    return choice.params, choice.rounds, choice.gbm_auc


@dataclass(frozen=True)
class BlendChoice:
    """What the inner CV chose: LightGBM parameters and rounds, the linear model's C, the blend weight."""

    params: dict
    rounds: int
    linear_c: float
    weight: float
    gbm_auc: float
    linear_auc: float
    auc: float

    def summary(self) -> dict[str, Any]:
        return {**self.params, "rounds": self.rounds, "linear_c": self.linear_c, "weight": self.weight,
                "inner_auc": self.auc, "inner_auc_gbm": self.gbm_auc, "inner_auc_linear": self.linear_auc}


def tune_blend(
    F: pd.DataFrame,
    y: np.ndarray,
    seed: int,
    grid=TUNING_GRID,
    *,
    linear_grid: tuple[float, ...] = LINEAR_C_GRID,
    weights: tuple[float, ...] = BLEND_WEIGHTS,
) -> BlendChoice:
    """LightGBM parameters, linear C and blend weight on LightGBM, all by inner 3-fold CV AUC on ``F, y``.

    Both models are scored on the same inner folds and the weight is picked on their out-of-fold log-odds,
    so every choice uses ``F, y`` only. LightGBM's inner scores come from early stopping on the scored fold
    (slightly optimistic), which can only tilt the weight towards LightGBM, the status quo.
    """
    splits = _inner_folds(y, seed)
    best_gbm: tuple[dict, int, float, np.ndarray] | None = None
    for params in grid:
        auc, rounds, oof = _cv_rounds(F, y, params, seed)
        if best_gbm is None or auc > best_gbm[2]:
            best_gbm = (params, rounds, auc, oof)
    assert best_gbm is not None, "empty tuning grid"
    best_lin: tuple[float, float, np.ndarray] = (linear_grid[0], -1.0, np.zeros(len(y)))
    if any(w < 1 for w in weights):
        X = feature_matrix(F, F.columns)
        for C in linear_grid:
            oof = np.zeros(len(y))
            for tr, va in splits:
                oof[va] = LinearScore(C).fit(X[tr], y[tr]).raw_score(X[va])
            auc = _mean_fold_auc(y, oof, splits)
            if auc > best_lin[1]:
                best_lin = (C, auc, oof)
    blends = [(_mean_fold_auc(y, w * best_gbm[3] + (1 - w) * best_lin[2], splits), w) for w in weights]
    auc, weight = max(blends)  # ties go to the larger LightGBM weight
    return BlendChoice(
        params=best_gbm[0],
        rounds=max(best_gbm[1], 10),
        linear_c=best_lin[0],
        weight=float(weight),
        gbm_auc=best_gbm[2],
        linear_auc=best_lin[1],
        auc=auc,
    )


def given_labels_cutoff(tables: Tables) -> pd.Timestamp:
    """The cutoff of a ``labels`` table: its ``cutoff`` column, else the manifest's, else the log's end.

    Snapshot data without dates (telco) gets a fixed nominal cutoff: only attributes matter there.
    """
    labels = tables.labels
    if labels is None or labels.empty:
        raise ValueError("labels: table missing or empty")
    return evaluation_cutoff(tables) or utc_timestamp("2000-01-01")


def given_labels_frame(tables: Tables, pipeline) -> tuple[pd.DataFrame, np.ndarray, pd.Timestamp]:
    """Features (pipeline fitted here) at the labels' cutoff for the customers of the ``labels`` table."""
    cutoff = given_labels_cutoff(tables)
    F = pipeline.fit_transform(tables.without_truth(), cutoff=cutoff)
    ids = tables.labels["customer_id"].astype(str).to_numpy()
    return F.loc[ids], tables.labels["label"].astype(int).to_numpy(), cutoff


def train_given_labels(
    tables: Tables,
    settings: ChurnSettings,
    rng: np.random.Generator,
    *,
    pipeline=None,
    dataset: str = "",
    grid=TUNING_GRID,
) -> ChurnResult:
    """Nested cross-validation on a given ``labels`` table, then a final calibrated model on all rows.

    Each outer fold tunes on its training part only (inner 3-fold CV): LightGBM over ``grid``, the C of a
    logistic model with log terms, and the weight blending the two in log-odds (``weight=1``: LightGBM
    alone). The outer AUC is thus an honest estimate of the whole tuned procedure.
    """
    from sklearn.model_selection import StratifiedKFold, train_test_split

    from features.builders.pipeline import FeaturePipeline

    t0 = time.perf_counter()
    pipe = pipeline if pipeline is not None else FeaturePipeline()
    F, y, cutoff = given_labels_frame(tables, pipe)
    seed = _seed(rng)
    log.info(
        "given labels: %d customers, churn rate %.3f, %d features; %d-fold nested CV",
        len(y),
        y.mean(),
        F.shape[1],
        settings.cv_folds,
    )
    oof = np.zeros(len(y))
    oof_lr = np.zeros(len(y))
    oof_gbm = np.zeros(len(y))
    fold_auc = []
    chosen = []
    for k, (tr, te) in enumerate(
        StratifiedKFold(settings.cv_folds, shuffle=True, random_state=seed).split(F, y)
    ):
        choice = tune_blend(F.iloc[tr], y[tr], seed, grid)
        m = _blend_model(choice, seed).fit(F.iloc[tr], y[tr])
        oof[te] = m.predict_proba(F.iloc[te])
        # the tuned LightGBM part alone, for the report: what the blend adds on top of it
        oof_gbm[te] = booster_predict(
            m.booster_, feature_matrix(F.iloc[te], m.feature_names_), num_iteration=m.best_iteration_
        )
        oof_lr[te] = _logistic_all(F.iloc[tr], y[tr]).predict_proba(F.iloc[te])
        fold_auc.append(ranking_auc(y[te], oof[te]))
        chosen.append(choice.summary())
        log.info(
            "fold %d: AUC %.4f (num_leaves %d, %d rounds, linear C %g, weight on LightGBM %.1f)",
            k + 1,
            fold_auc[-1],
            choice.params["num_leaves"],
            choice.rounds,
            choice.linear_c,
            choice.weight,
        )
    metrics = churn_metrics(y, oof)
    # Final model: tuned on all rows, calibrated on a stratified 20 % holdout.
    choice = tune_blend(F, y, seed, grid)
    tr, cal = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=seed)
    names = feature_labels_from(pipeline_dictionary(pipe), list(F.columns))
    model = _blend_model(choice, seed, calibration=settings.calibration)
    model.fit(F.iloc[tr], y[tr], F_cal=F.iloc[cal], y_cal=y[cal], feature_labels=names)
    system = DecisionSystem(
        pipe, model, metadata={"cutoff": str(cutoff), "dataset": dataset, "mode": "given_labels"}
    )
    report = {
        "dataset": dataset,
        "mode": "given_labels_cv",
        **{k: metrics[k] for k in REPORT_METRICS},
        "auc_folds": fold_auc,
        "auc_fold_std": float(np.std(fold_auc)),
        "tuned": chosen,
        "calibration": model.calibration_method_,
        "blend_weight": choice.weight,
        "baselines": {
            "logistic_all_features": churn_metrics(y, oof_lr),
            "lightgbm_tuned": churn_metrics(y, oof_gbm),
        },
        "cutoffs": {"test": str(cutoff)},
        "rows": {"labelled": len(y)},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return ChurnResult(
        system=system,
        report=report,
        test_keys=pd.DataFrame({"customer_id": F.index.astype(str), "cutoff": cutoff, "label": y}),
        test_prob=oof,
        test_features=F,
        baseline_scores={"logistic_all_features": oof_lr, "lightgbm_tuned": oof_gbm},
        importance=model.importance(),
        segments=segment_metrics(y, oof, _segments(F)),
    )


def _blend_model(choice: BlendChoice, seed: int, *, calibration: str = "none") -> BlendedChurnModel:
    """The unfitted blended model of an inner-CV choice (fixed rounds, no class weights)."""
    return BlendedChurnModel(
        choice.params,
        weight=choice.weight,
        linear_c=choice.linear_c,
        num_boost_round=choice.rounds,
        calibration=calibration,
        class_weight=None,
        seed=seed,
    )


def _logistic_all(F: pd.DataFrame, y):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    class _Model:
        def __init__(self):
            self.m = make_pipeline(
                SimpleImputer(strategy="median", keep_empty_features=True),
                StandardScaler(),
                LogisticRegression(max_iter=2000, C=0.5),
            )

        def predict_proba(self, X):
            return self.m.predict_proba(X.to_numpy(float, na_value=np.nan))[:, 1]

    out = _Model()
    out.m.fit(F.to_numpy(float, na_value=np.nan), np.asarray(y, int))
    return out


# ------------------------------------------------------------------------------------------- fingerprint


def data_fingerprint(tables: Tables, name: str, cutoffs: dict[str, Any]) -> dict[str, Any]:
    """Dataset name, row counts, cutoff range and a content hash (ids, timestamps, kinds, labels)."""
    h = hashlib.sha256()
    h.update(
        pd.util.hash_pandas_object(tables.customers["customer_id"].astype(str), index=False)
        .to_numpy()
        .tobytes()
    )
    tp = tables.touchpoints
    if len(tp):
        cols = tp[["customer_id", "ts", "kind"]].astype({"customer_id": str, "kind": str})
        h.update(pd.util.hash_pandas_object(cols, index=False).to_numpy().tobytes())
    if tables.labels is not None:
        h.update(pd.util.hash_pandas_object(tables.labels.astype(str), index=False).to_numpy().tobytes())
    return {
        "dataset": name,
        "customers": len(tables.customers),
        "touchpoints": len(tp),
        "outreach": 0 if tables.outreach is None else len(tables.outreach),
        "labels": 0 if tables.labels is None else len(tables.labels),
        "cutoff_first": (cutoffs.get("train") or [cutoffs.get("test")])[0],
        "cutoff_last": cutoffs.get("test"),
        "sha256": h.hexdigest(),
    }


# -------------------------------------------------------------------------------------------- edges


def settings_for(config, overrides: dict | None = None) -> ChurnSettings:
    """Churn settings from the config's ``churn`` section plus explicit overrides."""
    return ChurnSettings.from_dict({**(config.churn if config is not None else {}), **(overrides or {})})


def fit_for_tables(
    tables: Tables, settings: ChurnSettings, rng: np.random.Generator, *, dataset: str = "", pipeline=None
) -> ChurnResult:
    """Given labels → cross-validated training on them; otherwise derived labels at many cutoffs."""
    if tables.labels is not None and len(tables.labels):
        return train_given_labels(tables, settings, rng, pipeline=pipeline, dataset=dataset)
    return train_churn(tables, settings, rng, pipeline=pipeline, dataset=dataset)


def score_registered(model_uri: str, tables: Tables, keys: pd.DataFrame, cutoff) -> dict[str, float]:
    """Metrics of a registered decision system on the labelled customers ``keys`` at ``cutoff``."""
    from training.registry import load_decision_system

    system = load_decision_system(model_uri)
    scored = system.score(tables, cutoff).set_index("customer_id")
    p = scored["churn_probability"].reindex(keys["customer_id"].astype(str)).to_numpy()
    return churn_metrics(keys["label"].to_numpy(), p)


def log_churn_run(
    result: ChurnResult,
    tables: Tables,
    config,
    settings: ChurnSettings,
    *,
    dataset: str,
    register: bool = True,
) -> dict[str, Any]:
    """Log params, fingerprint, metrics, plots, dictionary and model; register and maybe promote."""
    import tempfile

    import mlflow

    from training.registry import (
        experiment_id,
        input_example,
        log_decision_system,
        register_and_promote,
    )

    report = result.report
    exp = experiment_id(config, "churn")
    model_name = config.registered_models.get("churn", "engage-churn")
    with mlflow.start_run(experiment_id=exp, run_name=f"churn-{dataset or 'data'}") as run:
        settings_params = {
            k: (json.dumps(v) if isinstance(v, dict | list | tuple) else v)
            for k, v in asdict(settings).items()
        }
        mlflow.log_params(
            {
                **settings_params,
                "calibration_chosen": report["calibration"],
                "best_iteration": report.get("best_iteration", ""),
                "mode": report["mode"],
            }
        )
        fp = data_fingerprint(tables, dataset, report["cutoffs"])
        mlflow.set_tags({f"data.{k}": str(v) for k, v in fp.items()})
        flat = {k: v for k, v in report.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        for name, met in report.get("baselines", {}).items():
            for k, v in met.items():
                flat[f"baseline_{name}_{k}"] = v
        mlflow.log_metrics({k: float(v) for k, v in flat.items() if v == v})
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            y = result.test_keys["label"].to_numpy()
            curves = {"churn model": (y, result.test_prob)}
            for name, s in result.baseline_scores.items():
                if name == "logistic_rfm" or name == "logistic_all_features":
                    curves[name] = (y, s)
            plot_calibration(curves, tmp / "calibration_curve.png")
            plot_gains(
                {
                    "churn model": (y, result.test_prob),
                    **{k: (y, v) for k, v in result.baseline_scores.items()},
                },
                tmp / "gains_chart.png",
            )
            feature_dictionary_frame(result.system.pipeline).to_csv(
                tmp / "feature_dictionary.csv", index=False
            )
            if result.importance is not None:
                result.importance.to_csv(tmp / "feature_importance.csv", index=False)
            if result.segments is not None:
                result.segments.to_csv(tmp / "metrics_by_segment.csv", index=False)
            (tmp / "report.json").write_text(json.dumps(report, indent=2, default=str))
            mlflow.log_artifacts(str(tmp), artifact_path="evaluation")
        test_cutoff = utc_timestamp(report["cutoffs"]["test"])
        system = result.system
        system.metadata["run_id"] = run.info.run_id
        info = log_decision_system(
            system,
            example=input_example(tables),
            cutoff=test_cutoff,
            registered_model_name=model_name if register else None,
        )
        out: dict[str, Any] = {"run_id": run.info.run_id, "model_uri": info.model_uri}
    if register:
        system.metadata["model_version"] = f"{model_name}/{info.registered_model_version}"

        def champion_metrics(uri: str) -> dict[str, float]:
            if report["mode"] != "temporal":
                # given labels: compare cross-validated figures recorded on the champion's version
                return _recorded_metrics(config, uri)
            return score_registered(uri, tables, result.test_keys, test_cutoff)

        out.update(
            register_and_promote(
                config,
                info,
                challenger_metrics={k: report[k] for k in ("auc", "brier", "ece")},
                champion_metrics_fn=champion_metrics,
            )
        )
    return out


def _recorded_metrics(config, uri: str) -> dict[str, float]:
    from mlflow import MlflowClient

    name, version = uri.removeprefix("models:/").split("/")
    mv = MlflowClient(tracking_uri=config.tracking_uri).get_model_version(name, version)
    return {k: float(mv.tags[f"test_{k}"]) for k in ("auc", "brier", "ece") if f"test_{k}" in mv.tags}


def train_churn_command(
    data: Path,
    config_path: Path | None = None,
    report_path: Path | None = None,
    *,
    register: bool = True,
    overrides: dict | None = None,
) -> dict[str, Any]:
    """``engage train churn``: read a data folder, train, log to MLflow, register, promote; the report."""
    from features.sources.io import read_tables
    from training.registry import load_config

    config = load_config(config_path)
    settings = settings_for(config, overrides)
    data = Path(data)
    log.info("reading %s", data)
    tables = read_tables(data)
    result = fit_for_tables(tables, settings, np.random.default_rng(settings.seed), dataset=data.name)
    registry = log_churn_run(result, tables, config, settings, dataset=data.name, register=register)
    report = {**result.report, "mlflow": registry}
    if report_path is not None:
        write_json(report_path, report)
    return report


def evaluate_churn_command(
    data: Path,
    config_path: Path | None = None,
    report_path: Path | None = None,
    *,
    model_uri: str | None = None,
    cutoff: str | None = None,
) -> dict[str, Any]:
    """``engage evaluate churn``: score the champion (or ``model_uri``) on a data folder's test cutoff."""
    import mlflow

    from features.sources.io import read_tables
    from training.registry import load_config, load_decision_system

    config = load_config(config_path)
    settings = settings_for(config)
    tables = read_tables(Path(data))
    mlflow.set_tracking_uri(config.tracking_uri)
    uri = model_uri or f"models:/{config.registered_models.get('churn', 'engage-churn')}@{config.champion}"
    system = load_decision_system(uri)
    if tables.labels is not None and len(tables.labels):
        labels = tables.labels.assign(customer_id=tables.labels["customer_id"].astype(str))
        test = given_labels_cutoff(tables)
    else:
        test = temporal_split(tables, settings, test_cutoff=cutoff).test
        labels = make_labels(
            tables,
            [test],
            horizon_days=settings.horizon_days,
            inactivity_days=settings.inactivity_days,
            activity_kinds=settings.activity_kinds,
            outcome_excludes=settings.outcome_excludes,
        )
    scored = system.score(tables, test).set_index("customer_id")
    p = scored["churn_probability"].reindex(labels["customer_id"].astype(str)).to_numpy()
    y = labels["label"].astype(int).to_numpy()
    metrics = churn_metrics(y, p)
    keys = labels[["customer_id", "label"]].reset_index(drop=True)
    report = {
        "model_uri": uri,
        "dataset": Path(data).name,
        "cutoff": str(test),
        **{k: metrics[k] for k in REPORT_METRICS},
        **_oracle(tables, keys, test),
    }
    if report_path is not None:
        write_json(report_path, report)
    return report


__all__ = [
    "ChurnResult",
    "ChurnSettings",
    "TemporalSplit",
    "evaluate_churn_command",
    "fit_for_tables",
    "labelled_features",
    "temporal_split",
    "train_churn",
    "train_churn_command",
    "train_given_labels",
]
