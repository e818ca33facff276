"""Judging customer value: metrics on a hand-made history with known future spend, the schedule, the command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.contract.schema import Tables
from training.value.metrics import decile_calibration, paired_difference, top_share_capture, value_metrics, verdict
from training.value.schedule import existing_customers, realised_spend, value_schedule

CUT = pd.Timestamp("2024-04-01", tz="UTC")


def hand_made() -> Tables:
    """Five customers: history before the cutoff, known purchases in the 90 days after it and later."""
    rows = [
        ("a", "2024-01-05", "purchase", 30.0), ("a", "2024-03-01", "purchase", 40.0),
        ("a", "2024-04-10", "purchase", 100.0), ("a", "2024-05-01", "purchase", 50.0),  # 150 in the window
        ("a", "2024-04-12", "return", -20.0),  # a return is not spend
        ("b", "2024-02-01", "purchase", 10.0), ("b", "2024-06-20", "purchase", 30.0),  # 30 in the window
        ("c", "2024-03-20", "visit", None),  # no purchase in the window: 0
        ("d", "2024-01-15", "purchase", 5.0), ("d", "2024-07-15", "purchase", 999.0),  # after the window: 0
        ("e", "2024-04-15", "purchase", 70.0),  # no history before the cutoff: not a customer yet
    ]
    tp = pd.DataFrame(rows, columns=["customer_id", "ts", "kind", "amount"])
    tp["ts"] = pd.to_datetime(tp["ts"], utc=True)
    return Tables(customers=pd.DataFrame({"customer_id": list("abcde")}), touchpoints=tp)


def test_realised_spend_of_a_hand_made_history() -> None:
    t = hand_made()
    ids = existing_customers(t, CUT)
    assert ids.tolist() == ["a", "b", "c", "d"]
    assert realised_spend(t, CUT, 90, ids).tolist() == [150.0, 30.0, 0.0, 0.0]


def test_metrics_against_known_future_spend() -> None:
    t = hand_made()
    ids = existing_customers(t, CUT)
    realised = 0.35 * realised_spend(t, CUT, 90, ids)  # margin
    predicted = np.array([40.0, 12.0, 1.0, 3.0])
    m = value_metrics(predicted, realised)
    assert m["customers"] == 4
    assert m["top_decile_capture"] == pytest.approx(150 / 180)  # the top customer (a) holds 150 of 180
    assert m["mae"] == pytest.approx(np.mean(np.abs(predicted - realised)))
    assert m["spearman"] == pytest.approx(pd.Series(predicted).corr(pd.Series(realised), method="spearman"))
    assert m["realised_total"] == pytest.approx(0.35 * 180)
    assert [row["customers"] for row in m["calibration_by_decile"]] == [1, 1, 1, 1]


def test_ties_are_broken_against_the_model() -> None:
    """A model that ties everyone captures what the worst order gives, not what the listing order gives."""
    assert top_share_capture(np.array([1.0, 1.0]), np.array([0.0, 10.0]), share=0.5) == 0.0
    assert top_share_capture(np.array([2.0, 1.0]), np.array([10.0, 0.0]), share=0.5) == 1.0
    cal = decile_calibration(np.arange(20.0), np.arange(20.0) * 2)
    assert len(cal) == 10 and all(r["customers"] == 2 for r in cal)
    assert cal[-1]["realised_mean"] == pytest.approx(2 * cal[-1]["predicted_mean"])


def test_paired_bootstrap_separates_a_better_model_from_a_tie() -> None:
    """A model that sees the future spend beats a noisy one; a model against itself is a tie at exactly 0."""
    rng = np.random.default_rng(0)
    realised = rng.gamma(0.5, 20.0, 2_000) * (rng.random(2_000) < 0.4)
    sharp, noisy = realised + rng.normal(0, 1, 2_000), realised + rng.normal(0, 40, 2_000)
    better = paired_difference(sharp, noisy, realised, np.random.default_rng(1), n_boot=100)
    assert better["spearman"]["low"] > 0 and verdict(better) == "beats"
    assert verdict(paired_difference(noisy, sharp, realised, np.random.default_rng(1), n_boot=100)) == "behind"
    same = paired_difference(noisy, noisy, realised, np.random.default_rng(1), n_boot=50)
    assert same["spearman"] == {"value": 0.0, "low": 0.0, "high": 0.0} and verdict(same) == "tie"


def test_horizon_falls_back_to_90_days_on_short_data() -> None:
    days = pd.date_range("2024-01-01", "2025-01-31", freq="7D", tz="UTC")
    tp = pd.DataFrame({"customer_id": "a", "ts": days, "kind": "purchase", "amount": 1.0})
    t = Tables(customers=pd.DataFrame({"customer_id": ["a"]}), touchpoints=tp)
    s = value_schedule(t)
    assert s.horizon_days == 90
    assert s.final.at + pd.Timedelta(days=90) <= s.data_end
    assert all(c + pd.Timedelta(days=90) <= s.final.at for c in s.final.training)
    assert all(c + pd.Timedelta(days=90) <= s.validation.at for c in s.validation.training)
    with pytest.raises(ValueError, match="too short"):
        value_schedule(t, horizon_days=365)


@pytest.mark.slow
def test_train_value_command_writes_the_report_and_logs_the_run(make_world, tmp_path) -> None:
    from features.sources.io import write_tables
    from tests.paths import PROJECT, write_registry_config
    from training.value.commands import train_value_command

    data = tmp_path / "world"
    write_tables(make_world(600, 300, seed=8), data)
    cfg = tmp_path / "mlflow.yaml"
    write_registry_config(cfg, (PROJECT / "mlflow.yaml").read_text())
    report = train_value_command(data, cfg, tmp_path / "value.json", horizon_days=90)
    saved = json.loads((tmp_path / "value.json").read_text())
    for key in ("spearman", "top_decile_capture", "mae"):
        assert np.isfinite(saved[key]) and np.isfinite(saved["baselines"]["bgnbd_gamma_gamma"][key])
    assert saved["chosen"] in ("bgnbd_gamma_gamma", "lgbm_tweedie", "blend")
    assert saved["truth"]["spearman_chosen"] > 0.3  # simulated: ranks the truth's expected value
    assert saved["versus_baseline"]["verdict"] in {"beats", "tie", "behind"}
    import mlflow

    run = mlflow.get_run(report["mlflow_run_id"])
    assert run.data.metrics["spearman"] == pytest.approx(saved["spearman"])
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"value_by_decile.png", "value_report.json", "value_model.pkl"} <= arts
