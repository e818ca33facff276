"""Benchmarks that carry their yardsticks: ``bench features`` beside the pandas reference, ``bench serve`` beside
a trivial BentoML service, both as ratios measured in the same run (small sizes)."""

from __future__ import annotations

import numpy as np
import pytest

from training.bench import reference as yardstick
from training.bench.features import bench_features
from training.bench.floor import floor_ratios

REFERENCE_PRESENT = (yardstick.DEFAULT_REFERENCE_DIR / "features.py").is_file()


@pytest.mark.skipif(not REFERENCE_PRESENT, reason=f"{yardstick.DEFAULT_REFERENCE_DIR} absent (shared reference)")
def test_bench_features_reports_its_ratio_to_the_pandas_reference():
    figures = bench_features(3_000, np.random.default_rng(3), n_jobs=1, repeats=1)
    same, own = figures["pandas_reference"], figures["pandas_reference_own_log"]
    assert same["events"] == figures["events"] and same["features"] == 77
    assert own["events"] > 0 and own["log"] == "reference gen.py log"
    expected = figures["events_per_s_median"] / same["events_per_s_median"]
    assert figures["ratio_to_pandas_reference"] == pytest.approx(expected, rel=1e-2)
    assert figures["ratio_to_pandas_reference_own_log"] > 0
    assert len(figures["load_average"]) == 3 and figures["peak_memory_ratio"] > 0
    assert figures["feature_path"] in ("numba", "numpy")


def test_bench_features_without_the_reference_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv(yardstick.REFERENCE_ENV, str(tmp_path))
    figures = bench_features(2_000, np.random.default_rng(3), n_jobs=1, repeats=1)
    assert figures["ratio_to_pandas_reference"] is None and figures["pandas_reference"] is None
    assert str(tmp_path) in figures["pandas_reference_skipped"]
    assert figures["events_per_s"] > 0 and len(figures["load_average"]) == 3


@pytest.mark.skipif(not REFERENCE_PRESENT, reason=f"{yardstick.DEFAULT_REFERENCE_DIR} absent (shared reference)")
def test_the_reference_does_not_shadow_our_features_package():
    import sys

    import features

    ref, reason = yardstick.load_reference()
    assert reason is None and hasattr(ref.features, "features_pandas")
    assert sys.modules["features"] is features and "gen" not in sys.modules


def test_floor_ratios_divide_engage_by_the_floor_and_judge_the_targets():
    engage = {"c1": {"p50_ms": 6.0}, "c16": {"customers_per_s": 200.0}, "batch_1000": {"ms": 500.0}}
    floor = {"c1": {"p50_ms": 1.5}, "c16": {"rps": 500.0}}
    r = floor_ratios(engage, floor)
    assert r["c1_p50_ratio"] == 4.0 and r["c16_customers_per_s_over_floor_rps"] == 0.4
    assert r["batch_1000_over_floor_p50"] == pytest.approx(333.333)
    assert r["target_met"] == {"c1_p50_ratio": False, "c16_customers_per_s_over_floor_rps": False,
                               "batch_1000_over_floor_p50": False}
    assert floor_ratios({**engage, "batch_1000": {"ms": float("nan")}}, floor)["batch_1000_over_floor_p50"] is None


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_bench_serve_reports_ratios_to_the_bentoml_floor(tmp_path, make_world):
    from features.system import save_system
    from training.bench.serve import bench_serve
    from training.churn.split import ChurnSettings
    from training.churn.train import train_churn

    tables = make_world(1200, 400, seed=11)
    result = train_churn(tables, ChurnSettings(max_train_cutoffs=3, seed=11), np.random.default_rng(11))
    model = save_system(result.system, tmp_path / "model")
    figures = bench_serve(workers=1, model_path=str(model), touchpoints=20, requests_c1=20, requests_c16=32,
                          batch_customers=20, time_limit_s=20.0)
    floor = figures["floor"]
    assert floor["c1"]["errors"] == 0 and floor["c1"]["requests"] == 20 and floor["c16"]["requests"] == 32
    assert floor["server"]["workers"] == figures["server"]["workers"] == 1
    ratios = figures["floor_ratios"]
    assert ratios["c1_p50_ratio"] == pytest.approx(figures["c1"]["p50_ms"] / floor["c1"]["p50_ms"], rel=1e-2)
    assert ratios["c16_customers_per_s_over_floor_rps"] > 0 and ratios["batch_1000_over_floor_p50"] > 0
    assert set(ratios["target_met"]) == set(ratios["targets"])
    assert len(figures["load_average"]) == 3 and len(floor["load_average"]) == 3
