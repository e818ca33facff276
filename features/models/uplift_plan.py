"""How the uplift model's LightGBM parts are scored for every action without a pandas frame per action.

The pandas path costs LightGBM's dtype checks on every call, once per action. Here a *design row* is a
customer's features plus an action's columns encoded exactly as LightGBM encodes a frame (categories as
codes, unknown as NaN), so a float matrix gives the pandas path's numbers. A *plan* says how a model is
scored this way, and is only used after it reproduced the pandas path on probe rows:

* ``layout``: where each design column comes from (``None``: a design this path does not know);
* ``pruned``: the outcome model with its action splits resolved (:mod:`features.models.lgbm_trees`);
* ``merged``: the per-action effect regressors as one model.

Plans are plain dicts with a ``version`` so that models pickled with an older plan rebuild it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from features.models.lgbm import booster_of, booster_predict, feature_matrix, prediction_threads
from features.models.lgbm_trees import (
    merge_regressors,
    merged_predict,
    prune_action_splits,
    pruned_predict,
    put_features,
)

PLAN_VERSION = 1
_DESIGN_ROWS = 8_192  # design rows per chunk: reused from the heap (a larger block is a fresh mmap)
_PROBE_TOL = 1e-9
_PROBE_VALUES = (np.nan, 0.0, 1.0, -1.0, 1e9)

# The design frame of customers ``X`` with action indices ``a`` (``UpliftModel._design``).
Design = Callable[[pd.DataFrame, np.ndarray], pd.DataFrame]


def model_output(model, D: pd.DataFrame) -> np.ndarray:
    """What a fitted LightGBM wrapper predicts on design rows ``D``: a classifier's probability of class 1, a
    regressor's value (what the booster's ``predict`` gives for both)."""
    if hasattr(model, "predict_proba"):
        return model.predict_proba(D)[:, 1]
    return model.predict(D)


def design_layout(design: Design, names: list[str], n_actions: int, booster) -> dict | None:
    """Where a design row's columns come from for ``booster``: customer features, and per action the
    action columns encoded as LightGBM encodes a frame (codes in the booster's categories, -1 -> NaN).
    Derived from ``design`` itself; ``None`` when its columns do not fit the booster."""
    K = n_actions
    probes = [design(pd.DataFrame(np.full((K, len(names)), v), columns=names), np.arange(K)) for v in (np.nan, 1.0)]
    if probes[0].shape[1] != booster.num_feature():
        return None
    cats = list(booster.pandas_categorical or [])
    index = {c: j for j, c in enumerate(names)}
    feat_pos, feat_src, act_pos, act_values = [], [], [], []
    n_cat = 0
    for pos, col in enumerate(probes[0].columns):
        columns = [P.iloc[:, pos] for P in probes]
        if isinstance(columns[0].dtype, pd.CategoricalDtype):
            if n_cat >= len(cats):
                return None
            enc = []
            for s in columns:
                codes = s.cat.set_categories(cats[n_cat]).cat.codes.to_numpy(dtype=np.float64)
                enc.append(np.where(codes < 0, np.nan, codes))
            n_cat += 1
        elif col in index:
            feat_pos.append(pos)
            feat_src.append(index[col])
            continue
        else:
            enc = [s.to_numpy(dtype=np.float64, na_value=np.nan) for s in columns]
        if not np.array_equal(enc[0], enc[1], equal_nan=True):
            return None  # an action column that depends on the customer
        act_pos.append(pos)
        act_values.append(enc[0])
    if n_cat != len(cats):
        return None
    return {
        "width": probes[0].shape[1],
        "feat_pos": np.array(feat_pos, dtype=np.intp),
        "feat_src": np.array(feat_src, dtype=np.intp),
        "act_pos": np.array(act_pos, dtype=np.intp),
        "act_values": np.array(act_values, dtype=np.float64).reshape(len(act_pos), K).T.copy(),
    }


def prediction_plan(model, design: Design, names: list[str], n_actions: int, *, prune: bool) -> dict:
    """The numpy prediction plan of the classifier or regressor ``model`` over ``design`` rows, checked against the
    pandas path on probe rows (``prune``: also resolve its action splits)."""
    booster = booster_of(model)
    layout = design_layout(design, names, n_actions, booster)
    plan = {"version": PLAN_VERSION, "source": booster, "layout": layout, "pruned": None}
    if plan["layout"] is None:
        return plan
    probe = pd.DataFrame(np.array([np.full(len(names), v) for v in _PROBE_VALUES]), columns=names)
    K = n_actions
    want = np.column_stack([model_output(model, design(probe, np.full(len(probe), k))) for k in range(K)])
    Xf = feature_matrix(probe, names)
    if not np.allclose(design_predict(booster, plan["layout"], Xf, np.arange(K)), want, rtol=0, atol=_PROBE_TOL):
        plan["layout"] = None
        return plan
    if prune:
        pruned = prune_action_splits(booster, plan["layout"])
        close = pruned is not None and np.allclose(
            pruned_predict(pruned, plan["layout"], Xf), want, rtol=0, atol=_PROBE_TOL
        )
        if close:
            plan["pruned"] = pruned
    return plan


def effect_plan(sources: list, n_features: int) -> dict:
    """The per-action effect regressors ``sources`` (boosters; ``None`` for no contact) merged into one
    model (:func:`merge_regressors`), kept only if it matches the regressors on probe rows."""
    K = len(sources)
    boosters = {k: b for k, b in enumerate(sources) if b is not None}
    merged = merge_regressors(boosters, K) if boosters and set(boosters) == set(range(1, K)) else None
    if merged is not None:
        probe = np.array([np.full(n_features, v) for v in _PROBE_VALUES])
        want = np.zeros((len(probe), K))
        for k, b in boosters.items():
            want[:, k] = booster_predict(b, probe)
        if not np.allclose(merged_predict(merged, probe), want, rtol=0, atol=_PROBE_TOL):
            merged = None
    return {"version": PLAN_VERSION, "sources": sources, "merged": merged}


def design_predict(booster, layout: dict, Xf: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """``(n, len(actions))`` predictions of ``booster`` on the design rows (customer i, action k)."""
    n, m = len(Xf), len(actions)
    out = np.empty((n, m))
    step = max(1, _DESIGN_ROWS // max(m, 1))
    for start in range(0, n, step):
        part = Xf[start : start + step]
        rows = len(part)
        D = np.empty((m * rows, layout["width"]))
        for j in range(m):  # the customers' features once per action (no tiled temporary)
            put_features(D[j * rows : (j + 1) * rows], part, layout)
        D[:, layout["act_pos"]] = np.repeat(layout["act_values"][actions], rows, axis=0)
        pred = booster_predict(booster, D, num_threads=prediction_threads())
        out[start : start + rows] = pred.reshape(m, rows).T
    return out
