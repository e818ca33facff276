"""Scoring fast path: numpy predictions and top-k reason codes equal the plain (pandas) reference path."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from features import models
from features.labels import make_labels
from features.models import ChurnModel, booster_predict
from features.pipeline import FeaturePipeline
from features.simulate import SimConfig, simulate_world
from features.system import IN_MARKET, SOCIAL_LADDER, STORE_LADDER, DecisionSystem, _names

TOL = 1e-9


@pytest.fixture(scope="module")
def system() -> tuple[DecisionSystem, pd.DataFrame, pd.Timestamp, object]:
    world = simulate_world(SimConfig(n_customers=600, days=300, seed=8), np.random.default_rng(8))
    cutoff = pd.Timestamp(world.meta["manifest"]["cutoff"])
    train_at, val_at = cutoff - pd.Timedelta(days=180), cutoff - pd.Timedelta(days=90)
    tables = world.without_truth()
    pipe = FeaturePipeline(n_jobs=1).fit(tables, cutoff=train_at)
    labels = make_labels(world, [train_at, val_at])

    def frame(at):
        keys = labels[labels["cutoff"] == at]
        return pipe.transform(tables, cutoff=at).loc[keys["customer_id"]], keys["label"].to_numpy()

    F_tr, y_tr = frame(train_at)
    F_va, y_va = frame(val_at)
    model = ChurnModel({"min_child_samples": 20}, num_boost_round=60, early_stopping_rounds=20, seed=3)
    model.fit(F_tr, y_tr, F_va, y_va)
    return DecisionSystem(pipe, model, metadata={"model_version": "t1"}), F_va, cutoff, world


def reference_probability(model: ChurnModel, F: pd.DataFrame) -> np.ndarray:
    """The pre-fast-path computation: LightGBM on the reindexed pandas frame, default threads."""
    raw = model.booster_.predict(
        F.reindex(columns=model.feature_names_), raw_score=True, num_iteration=model.best_iteration_
    )
    return np.clip(model.calibrator_.transform(raw), 0, 1) if model.calibrator_ else 1 / (1 + np.exp(-raw))


def reference_reasons(model: ChurnModel, F: pd.DataFrame, top: int) -> list[list[dict]]:
    """The pre-fast-path reason codes: full SHAP matrix on the frame, full argsort per row."""
    contrib = model.booster_.predict(
        F.reindex(columns=model.feature_names_), pred_contrib=True, num_iteration=model.best_iteration_
    )[:, :-1]
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :top]
    out = []
    for i in range(len(contrib)):
        row = []
        for j in order[i]:
            if contrib[i, j] <= 0:
                break
            name = model.feature_names_[j]
            row.append({"feature": name, "label": model.feature_labels_[name], "contribution": float(contrib[i, j])})
        out.append(row)
    return out


def assert_same_reasons(got: list[list[dict]], want: list[list[dict]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert [r["feature"] for r in g] == [r["feature"] for r in w]
        assert [r["label"] for r in g] == [r["label"] for r in w]
        np.testing.assert_allclose([r["contribution"] for r in g], [r["contribution"] for r in w], rtol=0, atol=TOL)


@pytest.mark.parametrize("top", [1, 3, 5])
def test_fast_path_equals_reference(system, top):
    ds, F, _, _ = system
    model = ds.churn_model
    p, reasons = model.predict_with_reasons(F, top=top)
    np.testing.assert_allclose(p, reference_probability(model, F), rtol=0, atol=TOL)
    np.testing.assert_allclose(model.predict_proba(F), p, rtol=0, atol=TOL)
    assert_same_reasons(reasons, reference_reasons(model, F, top))
    assert_same_reasons(model.reason_codes(F, top=top), reasons)
    assert any(len(r) == top for r in reasons)  # the comparison covers full top-k lists


def test_single_rows_equal_the_batch(system):
    ds, F, _, _ = system
    p_all, r_all = ds.churn_model.predict_with_reasons(F)
    for i in range(0, len(F), max(1, len(F) // 15)):
        p, r = ds.churn_model.predict_with_reasons(F.iloc[[i]])
        assert abs(p[0] - p_all[i]) <= TOL
        assert_same_reasons(r, [r_all[i]])


def test_columns_matched_by_name_whatever_their_order_or_absence(system):
    ds, F, _, _ = system
    model = ds.churn_model
    shuffled = F[F.columns[::-1]]
    np.testing.assert_allclose(model.predict_proba(shuffled), model.predict_proba(F), rtol=0, atol=TOL)
    dropped = F.drop(columns=F.columns[:5])
    np.testing.assert_allclose(model.predict_proba(dropped), reference_probability(model, dropped), rtol=0, atol=TOL)
    assert_same_reasons(model.reason_codes(dropped), reference_reasons(model, dropped, 3))
    with pytest.raises(ValueError, match="none of the model's"):
        model.predict_proba(pd.DataFrame({"unrelated": [1.0]}))


def test_reasons_only_above_a_probability(system):
    ds, F, _, _ = system
    p, full = ds.churn_model.predict_with_reasons(F)
    threshold = float(np.quantile(p, 0.7))
    _, part = ds.churn_model.predict_with_reasons(F, min_probability=threshold)
    for pi, f, r in zip(p, full, part, strict=True):
        assert r == (f if pi >= threshold else [])
    out = ds.score_features(F, reasons=0)
    assert all(r == [] for r in out["churn_reasons"])


def test_score_features_output(system):
    ds, F, _, _ = system
    out = ds.score_features(F)
    assert list(out["customer_id"]) == list(F.index.astype(str))
    np.testing.assert_allclose(out["churn_probability"], reference_probability(ds.churn_model, F), rtol=0, atol=TOL)
    assert_same_reasons(list(out["churn_reasons"]), reference_reasons(ds.churn_model, F, 3))
    assert (out["model_version"] == "t1").all()
    assert out["nba_action"].isna().all()  # no policy in this system
    empty = ds.score_features(F.iloc[:0])
    assert len(empty) == 0 and list(empty.columns) == list(out.columns)


def test_ladder_names_match_the_plain_lookup():
    values = pd.Series([0, 1.0, 3, 4, -1, np.nan, 2.7, -0.5], dtype=float)
    for names in (STORE_LADDER, SOCIAL_LADDER, IN_MARKET):
        plain = [names[int(c)] if np.isfinite(c) and 0 <= c < len(names) else None for c in values]
        assert list(_names(values, names, len(values))) == plain
    assert list(_names(None, STORE_LADDER, 2)) == [None, None]


def test_pickled_system_scores_the_same(system):
    ds, _, cutoff, world = system
    ids = world.customers["customer_id"].iloc[:40]
    tables = world.without_truth().subset(ids)
    before = ds.score(tables, cutoff)
    loaded = pickle.loads(pickle.dumps(ds))
    after = loaded.score(tables, cutoff)
    pd.testing.assert_frame_equal(before, after)
    # A model pickled before the cached column index existed still scores (the cache is rebuilt).
    del loaded.churn_model.__dict__["feature_index_"]
    old = pickle.loads(pickle.dumps(loaded))
    pd.testing.assert_frame_equal(old.score(tables, cutoff), before)
    for i in range(3):
        one = old.score(world.without_truth().subset(ids.iloc[[i]]), cutoff)
        assert abs(one["churn_probability"].iloc[0] - before["churn_probability"].iloc[i]) <= TOL
        assert_same_reasons(list(one["churn_reasons"]), [before["churn_reasons"].iloc[i]])


def test_chunked_threads_give_the_same_numbers(system, monkeypatch):
    ds, F, _, _ = system
    model = ds.churn_model
    p1, r1 = model.predict_with_reasons(F)
    X = model._matrix(F)
    single = booster_predict(model.booster_, X, num_iteration=model.best_iteration_, pred_contrib=True)
    monkeypatch.setattr(models, "PARALLEL_MIN_ROWS", 10)  # split even this small table across threads
    chunked = booster_predict(model.booster_, X, num_iteration=model.best_iteration_, num_threads=3, pred_contrib=True)
    np.testing.assert_array_equal(chunked, single)
    p2, r2 = model.predict_with_reasons(F)
    np.testing.assert_array_equal(p2, p1)
    assert r2 == r1
