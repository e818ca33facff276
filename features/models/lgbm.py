"""LightGBM as every model of engage uses it: the one parameter block, the one thread cap, fast prediction.

All models start from the same parameters (:func:`lgbm_params`): shallow trees on bagged rows and
features, quiet. Prediction never goes through pandas or LightGBM's own thread pool: a float matrix in the
model's column order (:func:`feature_matrix`) is predicted on one thread per row chunk
(:func:`booster_predict`), with at most :func:`prediction_threads` chunks. Models train on the columns that
vary (:func:`informative_columns`): constant ones cannot be split on and would only fill reason codes.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import pandas as pd

# The parameters every model starts from, in LightGBM's own names (what ``lgb.train`` reads).
_SHARED: dict = {
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "verbosity": -1,
}
# The scikit-learn wrappers' names for the same parameters: a wrapper always passes its own argument too,
# so a native name beside it would be a second, conflicting value.
_SKLEARN_NAMES: dict[str, str] = {
    "feature_fraction": "colsample_bytree",
    "bagging_fraction": "subsample",
    "bagging_freq": "subsample_freq",
    "lambda_l2": "reg_lambda",
    "verbosity": "verbose",
    "seed": "random_state",
    "num_threads": "n_jobs",
}

# Below this many rows a prediction runs on one thread (see ``booster_predict``); SHAP values cost about
# 0.2 ms per row, so those are split from far fewer rows (a 40-customer slice of a large request: 7 ms).
PARALLEL_MIN_ROWS = 1_000
PARALLEL_MIN_ROWS_CONTRIB = 32


def lgbm_params(objective: str, *, sklearn: bool = False, **overrides) -> dict:
    """The shared LightGBM parameters for ``objective``, with ``overrides`` on top.

    Names are LightGBM's own (for ``lgb.train``); ``sklearn=True`` gives the same values under the
    scikit-learn wrapper's argument names (for ``LGBMClassifier(**...)``), and ``overrides`` are then
    wrapper arguments too (``n_estimators``, ``random_state``, ...).
    """
    params = {"objective": objective, **_SHARED}
    if sklearn:
        params = {_SKLEARN_NAMES.get(k, k): v for k, v in params.items()}
    return {**params, **overrides}


def prediction_threads() -> int:
    """Threads for a large prediction: the machine's cores, at most 4 (see :func:`booster_predict`)."""
    return min(4, os.cpu_count() or 1)


def booster_of(model):
    """The ``lgb.Booster`` of a fitted scikit-learn wrapper (a booster is returned as it is)."""
    return getattr(model, "booster_", model)


def booster_predict(booster, X: np.ndarray, *, num_iteration: int | None = None, num_threads: int = 1, **kwargs):
    """``booster.predict`` on a float matrix with an explicit thread count (fast for one row).

    A call without ``num_threads`` uses every OpenMP thread, whose start-up and spin-waiting cost more
    than a small prediction itself on a shared machine, so LightGBM always runs on one thread here.
    Inputs of ``PARALLEL_MIN_ROWS`` rows or more (``PARALLEL_MIN_ROWS_CONTRIB`` for SHAP values) are split
    into ``num_threads`` row chunks predicted in Python threads (LightGBM releases the GIL; rows are
    independent, so the numbers do not depend on the split). A pandas frame costs a further dtype check per
    call in LightGBM: pass a numpy matrix in the model's column order.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)

    def run(part: np.ndarray) -> np.ndarray:
        return booster.predict(part, num_iteration=num_iteration, num_threads=1, **kwargs)

    smallest = PARALLEL_MIN_ROWS_CONTRIB if kwargs.get("pred_contrib") else PARALLEL_MIN_ROWS
    if len(X) < smallest or num_threads <= 1:
        return run(X)
    parts = np.array_split(X, int(num_threads))
    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        return np.concatenate(list(pool.map(run, parts)))


# Rows per chunk when a large frame is predicted: its float matrix is made a chunk at a time (about 100 MB
# at 200 features), not all at once (1.5 GB for the policy trainer's fitting rows at 100,000 customers).
PREDICT_ROWS = 65_536


def feature_matrix(F: pd.DataFrame, names, *, missing_as_nan: bool = False) -> np.ndarray:
    """``F[names]`` as a C-contiguous float64 matrix in that column order (no reindex when already aligned).

    A column of ``names`` that ``F`` lacks raises ``KeyError``, or with ``missing_as_nan`` becomes missing
    values (which LightGBM routes like unseen NaNs).
    """
    if len(F) <= SMALL_ROWS:
        # A request's few rows: the per-call cost of reindexing is most of the work, so the column positions
        # are looked up once per column layout and the rows gathered by them.
        pos = column_positions(F.columns, names)
        if pos is not None and (missing_as_nan or pos.min(initial=0) >= 0):
            try:
                X = float_values(F)
            except (TypeError, ValueError):  # a column the model does not read is not numeric
                X = None
            if X is not None:
                return _gather(X, pos)
    names = pd.Index(names)
    if F.columns.equals(names):
        X = float_values(F)
    elif missing_as_nan:
        X = float_values(F.reindex(columns=names))
    else:
        X = float_values(F[names])
    return np.ascontiguousarray(X)


# Frames up to this many rows take feature_matrix's cached-positions path (scoring requests); larger ones
# (training, batch scoring) reindex as before, which never converts columns the model does not read.
SMALL_ROWS = 4_096


def column_positions(columns: pd.Index, names) -> np.ndarray | None:
    """Where each of ``names`` sits in ``columns`` (-1: absent), cached per column layout; ``None`` when
    ``columns`` repeats a label."""
    # tolist(): iterating a pandas string Index item by item costs ten times as much
    wanted = names.tolist() if isinstance(names, pd.Index) else list(names)
    return _positions(tuple(columns.tolist()), tuple(wanted))


@lru_cache(maxsize=256)
def _positions(columns: tuple, names: tuple) -> np.ndarray | None:
    index = pd.Index(columns, dtype=object)
    if not index.is_unique:
        return None
    pos = index.get_indexer(pd.Index(names, dtype=object))
    pos.flags.writeable = False  # shared by every later call with the same layout
    return pos


def _gather(X: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``X``'s columns at ``pos`` as a new C-contiguous matrix; NaN where ``pos`` is -1."""
    if pos.size and pos.min() < 0:
        out = np.full((X.shape[0], pos.size), np.nan)
        ok = np.flatnonzero(pos >= 0)
        out[:, ok] = X[:, pos[ok]]
        return out
    return np.ascontiguousarray(X[:, pos])


def float_values(F: pd.DataFrame) -> np.ndarray:
    """``F.to_numpy(dtype=float64, na_value=nan)``, without its copy and mask when every column is float64
    already (NaN is then the missing value): a view of a frame that holds one float block."""
    if len(F.columns) and all(dt == np.float64 for dt in F.dtypes):
        return F.to_numpy()
    return F.to_numpy(dtype=np.float64, na_value=np.nan)


def informative_columns(F: pd.DataFrame) -> list[str]:
    """The columns of ``F`` that vary over its rows: neither all missing nor one value on every row.

    A column holding one value on some rows and missing values on the others is kept: whether a value
    is missing can carry signal. Checked column by column, so a wide training table is never copied.
    """
    if not len(F):
        return [str(c) for c in F.columns]
    kept = []
    for c in F.columns:
        v = F[c].to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(v)
        if missing.all():
            continue
        if missing.any() or v.min() < v.max():
            kept.append(str(c))
    return kept
