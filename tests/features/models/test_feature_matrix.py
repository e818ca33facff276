"""feature_matrix's cached-positions path (requests' few rows) equals the reindexing path (large frames)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.models import lgbm
from features.models.lgbm import column_positions, feature_matrix


def _reference(F: pd.DataFrame, names, missing_as_nan: bool) -> np.ndarray:
    names = pd.Index(names)
    G = F.reindex(columns=names) if missing_as_nan else F[names]
    return np.ascontiguousarray(G.to_numpy(dtype=np.float64, na_value=np.nan))


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    cols = [f"f{i}" for i in range(30)]
    F = pd.DataFrame(rng.normal(size=(5, 30)), columns=pd.Index(cols, dtype="str"))
    F.iloc[1, 3] = np.nan
    F["ladder"] = np.arange(5, dtype=np.int64)  # an integer column, as the pipeline's ladders
    return F


@pytest.mark.parametrize("missing_as_nan", [False, True])
@pytest.mark.parametrize("pick", ["same", "permuted_subset", "with_int"])
def test_small_frames_equal_the_reindex_path(frame, pick, missing_as_nan):
    names = {"same": list(frame.columns), "permuted_subset": ["f7", "f3", "f29", "f0"],
             "with_int": ["ladder", "f1"]}[pick]
    got = feature_matrix(frame, pd.Index(names), missing_as_nan=missing_as_nan)
    assert got.flags.c_contiguous and got.dtype == np.float64
    np.testing.assert_array_equal(got, _reference(frame, names, missing_as_nan))


def test_absent_columns_are_missing_values_or_an_error(frame):
    got = feature_matrix(frame, ["f2", "not_there", "f1"], missing_as_nan=True)
    np.testing.assert_array_equal(got, _reference(frame, ["f2", "not_there", "f1"], True))
    assert np.isnan(got[:, 1]).all()
    with pytest.raises(KeyError):
        feature_matrix(frame, ["f2", "not_there"])


def test_repeated_labels_and_text_columns_take_the_general_path(frame):
    dup = pd.concat([frame[["f1"]], frame[["f1", "f2"]]], axis=1)
    assert column_positions(dup.columns, ["f1"]) is None
    with pytest.raises(ValueError):  # as reindex refuses an axis with repeated labels
        feature_matrix(dup, ["f2"], missing_as_nan=True)
    texty = frame.assign(segment=["a", "b", "c", "d", "e"])  # a column no model reads, not numeric
    np.testing.assert_array_equal(feature_matrix(texty, ["f4", "f5"]), _reference(frame, ["f4", "f5"], False))


def test_large_frames_keep_the_reindex_path(frame, monkeypatch):
    # Above SMALL_ROWS no position lookup happens (training frames: no conversion of unread columns).
    monkeypatch.setattr(lgbm, "SMALL_ROWS", 2)
    calls = []
    monkeypatch.setattr(lgbm, "column_positions", lambda *a: calls.append(a))
    got = feature_matrix(frame, ["f3", "f1"])
    assert calls == []
    np.testing.assert_array_equal(got, _reference(frame, ["f3", "f1"], False))


def test_shap_values_of_a_few_dozen_rows_are_split_over_threads_with_the_same_numbers(monkeypatch):
    import lightgbm as lgb

    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 6))
    y = (X[:, 0] + rng.normal(size=400) > 0).astype(int)
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_leaves": 7}, lgb.Dataset(X, y), 20)
    pools = []
    real = lgbm.ThreadPoolExecutor
    monkeypatch.setattr(lgbm, "ThreadPoolExecutor", lambda **kw: pools.append(kw) or real(**kw))
    rows = X[: lgbm.PARALLEL_MIN_ROWS_CONTRIB]
    one = lgbm.booster_predict(booster, rows, pred_contrib=True, num_threads=1)
    assert pools == []
    two = lgbm.booster_predict(booster, rows, pred_contrib=True, num_threads=2)
    assert len(pools) == 1
    np.testing.assert_array_equal(one, two)
    lgbm.booster_predict(booster, rows, num_threads=2)  # plain scores of as many rows: one thread
    assert len(pools) == 1
