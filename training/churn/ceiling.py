"""How much better churn could be predicted if the features also knew the customers' true latent traits.

Between the model (what the features recover) and the oracle (the simulator's true churn probability, which also
knows each customer's current state) sits a ceiling: the same test rows, the features plus the truth's
``trait_*`` columns, a LightGBM scored out of fold. The same protocol on the features alone is its reference, so
the gap between the two is what the features leave of the traits (simulated data only).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from features.contract.schema import Tables
from training.metrics import ranking_auc


def trait_matrix(truth: pd.DataFrame, ids: pd.Series) -> pd.DataFrame:
    """The ``trait_*`` columns of the truth for ``ids`` (in order), categories as integer codes."""
    traits = truth.set_index(truth["customer_id"].astype(str)).filter(like="trait_").reindex(ids.astype(str))
    for col in traits.columns:
        if not pd.api.types.is_numeric_dtype(traits[col]) or pd.api.types.is_bool_dtype(traits[col]):
            traits[col] = traits[col].astype("category").cat.codes.astype(float)
    return traits.astype(float).reset_index(drop=True)


def out_of_fold_auc(X: pd.DataFrame, y: np.ndarray, *, folds: int = 5, seed: int = 0) -> float:
    """AUC of a small LightGBM scored out of fold on ``X``."""
    import lightgbm as lgb

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
