"""How well can any churn model rank from these features? The churn ceiling on simulated data.

The simulator's oracle scores customers with their *true* churn probability, which depends on hidden traits
the features cannot see, so "within 0.02 AUC of the oracle" can be out of reach for every model. The
ceiling is the reachable yardstick: a LightGBM regressor trained on the truth's churn probability itself
(no label noise) from the same features, cross-fitted over customers so that every row is predicted by a
regressor that did not see it, and scored on the realised labels. Reported beside the model and the oracle
on the same rows: model / ceiling / oracle.

A second, looser reference for notebooks: the features plus the truth's ``trait_*`` columns, scored out of
fold on the same test rows (:func:`trait_ceiling`), shows how much the traits themselves would add.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from features.contract.cutoffs import utc_timestamp
from features.contract.schema import Tables
from features.models.lgbm import lgbm_params
from training.metrics import churn_metrics, ranking_auc


def truth_probability(tables: Tables, keys: pd.DataFrame, cutoff: pd.Timestamp) -> np.ndarray | None:
    """The truth's churn probability of the ``keys`` customers, or ``None`` when ``cutoff`` is not the truth's."""
    truth = tables.truth
    manifest = tables.meta.get("manifest") or {}
    if truth is None or "p_churn_no_contact" not in truth or not manifest.get("cutoff"):
        return None
    if utc_timestamp(manifest["cutoff"]) != utc_timestamp(cutoff):
        return None
    p = truth.set_index(truth["customer_id"].astype(str))["p_churn_no_contact"]
    return p.reindex(keys["customer_id"].astype(str)).to_numpy(float)


def ceiling_scores(
    F: pd.DataFrame, target: np.ndarray, rng: np.random.Generator, *, folds: int = 5, n_estimators: int = 300
) -> np.ndarray:
    """Cross-fitted predictions of ``target`` (the true churn probability) from the features ``F``."""
    X = F.to_numpy(dtype=np.float64, na_value=np.nan)
    fold = rng.permutation(len(X)) % folds
    pred = np.empty(len(X))
    for k in range(folds):
        model = lgb.LGBMRegressor(
            **lgbm_params(
                "regression",
                sklearn=True,
                n_estimators=n_estimators,
                num_leaves=31,
                min_child_samples=40,
                random_state=int(rng.integers(2**31 - 1)),
                n_jobs=1,  # LightGBM's thread pool spin-waits on a shared machine
            )
        )
        model.fit(X[fold != k], target[fold != k])
        pred[fold == k] = model.predict(X[fold == k])
    return np.clip(pred, 0.0, 1.0)


def ceiling_metrics(
    F: pd.DataFrame, keys: pd.DataFrame, tables: Tables, cutoff: pd.Timestamp, rng: np.random.Generator
) -> dict[str, float]:
    """``ceiling_auc``, ``ceiling_brier``, ``ceiling_ece`` on the labelled rows ``keys`` (aligned with ``F``),
    and how much of the true probability's variance the features explain; empty without the truth."""
    p_true = truth_probability(tables, keys, cutoff)
    if p_true is None:
        return {}
    ok = ~np.isnan(p_true)
    if ok.sum() < 100:
        return {}
    pred = ceiling_scores(F[ok], p_true[ok], rng)
    met = churn_metrics(keys["label"].to_numpy()[ok], pred)
    resid = p_true[ok] - pred
    centred = p_true[ok] - p_true[ok].mean()
    return {
        "ceiling_auc": met["auc"],
        "ceiling_brier": met["brier"],
        "ceiling_ece": met["ece"],
        "ceiling_r2_true_probability": float(1 - (resid @ resid) / max(centred @ centred, 1e-12)),
    }


def side_by_side(report: dict) -> dict:
    """Model / ceiling / oracle AUC, Brier and ECE from a churn report, and the model's gap to the ceiling."""
    out = {
        name: {m: report.get(f"{prefix}{m}") for m in ("auc", "brier", "ece")}
        for name, prefix in (("model", ""), ("ceiling", "ceiling_"), ("oracle", "oracle_"))
    }
    model, ceiling = out["model"]["auc"], out["ceiling"]["auc"]
    out["model_minus_ceiling_auc"] = None if model is None or ceiling is None else model - ceiling
    return out


def trait_matrix(truth: pd.DataFrame, ids: pd.Series) -> pd.DataFrame:
    """The ``trait_*`` columns of the truth for ``ids`` (in order), categories as integer codes."""
    traits = truth.set_index(truth["customer_id"].astype(str)).filter(like="trait_").reindex(ids.astype(str))
    for col in traits.columns:
        if not pd.api.types.is_numeric_dtype(traits[col]) or pd.api.types.is_bool_dtype(traits[col]):
            traits[col] = traits[col].astype("category").cat.codes.astype(float)
    return traits.astype(float).reset_index(drop=True)


def out_of_fold_auc(X: pd.DataFrame, y: np.ndarray, *, folds: int = 5, seed: int = 0) -> float:
    """AUC of a small LightGBM scored out of fold on ``X``."""
    p = np.zeros(len(y))
    for fit, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
        model = lgb.LGBMClassifier(n_estimators=100, learning_rate=0.1, num_leaves=15, n_jobs=1, random_state=seed,
                                   verbose=-1)
        model.fit(X.iloc[fit], y[fit])
        p[held] = model.predict_proba(X.iloc[held])[:, 1]
    return ranking_auc(y, p)


def trait_ceiling(tables: Tables, keys: pd.DataFrame, features: pd.DataFrame, *, seed: int = 0) -> dict[str, float]:
    """Out-of-fold AUC on the labelled test rows (``keys``: ``customer_id, label``, rows of ``features``) of the
    features alone and of the features plus the true traits; empty without truth or with too few of a class."""
    y = keys["label"].to_numpy(int)
    if tables.truth is None or len(np.unique(y)) < 2 or np.bincount(y).min() < 5:
        return {}
    F = features.reset_index(drop=True).astype(float)
    with_traits = pd.concat([F, trait_matrix(tables.truth, keys["customer_id"])], axis=1)
    return {"features_out_of_fold_auc": out_of_fold_auc(F, y, seed=seed),
            "trait_ceiling_auc": out_of_fold_auc(with_traits, y, seed=seed)}


def auc_ladder(report: dict, ceiling: dict[str, float]) -> pd.Series:
    """Test AUC of the baselines, the model, the same-rows references, the trait ceiling and the oracle."""
    out = {name: met.get("auc") for name, met in report.get("baselines", {}).items()}
    out["churn model"] = report.get("auc")
    out["features, out of fold on the test rows"] = ceiling.get("features_out_of_fold_auc")
    out["ceiling: features + true traits"] = ceiling.get("trait_ceiling_auc")
    out["oracle (true probability)"] = report.get("oracle_auc")
    return pd.Series({k: v for k, v in out.items() if v is not None and v == v}, dtype=float).sort_values()
