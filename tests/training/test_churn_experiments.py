"""Experiments on given labels: ``engage train churn --test-data DIR --exclude-attributes a,b``, and the cutoff
``engage score`` picks for a labelled folder (and says it picked)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.sources.io import read_tables
from tests.paths import PROJECT, write_registry_config
from training.churn.experiments import parse_attributes, without_attributes
from training.cli import app

CONSENTS = {"consent_email": True, "consent_sms": False, "consent_push": False, "consent_call": False}


def labelled_folder(path: Path, n: int, seed: int, *, split: str) -> Path:
    """A CSV folder as a CRM export gives it: attributes with hostile category values, given labels, no touchpoints."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["yes", "no"], n, p=[0.3, 0.7])
    income = rng.choice(["1) < $100", "7) $1,000 +", "7) $1,000 -", "Zürich"], n)
    calls = rng.poisson(2, n)
    logit = -1.5 + 2.0 * (plan == "yes") + 1.0 * (income == "7) $1,000 +") + 0.4 * calls
    path.mkdir(parents=True)
    ids = [f"{split}{i:04d}" for i in range(n)]
    pd.DataFrame({"customer_id": ids, "signup_ts": "", **CONSENTS, "international_plan": plan,
                  "income bracket": income, "service calls": calls, "split": split}).to_csv(
        path / "customers.csv", index=False)
    pd.DataFrame(columns=["customer_id", "ts", "channel", "kind", "direction"]).to_csv(
        path / "touchpoints.csv", index=False)
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    pd.DataFrame({"customer_id": ids, "label": label}).to_csv(path / "labels.csv", index=False)
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("experiments")
    config = root / "mlflow.yaml"
    # two outer folds keep the nested cross-validation quick
    text = (PROJECT / "mlflow.yaml").read_text()
    assert "\nchurn:\n" in text, "mlflow.yaml's churn section moved: update this test"
    write_registry_config(config, text.replace("\nchurn:\n", "\nchurn:\n  cv_folds: 2\n", 1))
    return {"train": labelled_folder(root / "train", 700, 1, split="train"),
            "test": labelled_folder(root / "test", 500, 2, split="test"), "config": config, "root": root}


@pytest.fixture(scope="module")
def trained(folders) -> dict:
    report = folders["root"] / "report.json"
    result = CliRunner().invoke(app, ["train", "churn", "--data", str(folders["train"]), "--test-data",
                                      str(folders["test"]), "--exclude-attributes", "split",
                                      "--config", str(folders["config"]), "--report", str(report)])
    assert result.exit_code == 0, result.output
    return json.loads(report.read_text())


def test_test_data_measures_the_model_on_the_other_folder(trained, folders):
    test = trained["test"]
    assert test["dataset"] == "test" and test["n"] == 500 and test["shared_customers"] == 0
    assert trained["test_auc"] == test["auc"] and 0.65 < test["auc"] < 1.0
    for key in ("pr_auc", "brier", "ece", "lift_at_10", "base_rate"):
        assert np.isfinite(test[key]), key
    assert trained["mode"] == "given_labels_cv" and np.isfinite(trained["auc"])  # CV on the training folder
    assert trained["mlflow"]["promoted"]  # the first version: nothing to compare with


def test_excluded_attributes_never_become_features(trained):
    assert trained["excluded_attributes"] == ["split"]
    # every event feature of a folder without touchpoints is constant, so only attributes are read
    used = trained["features"]
    assert used["used"] + used["dropped_constant_or_missing"] == used["in_table"] and used["used"] <= 10


def test_exclusion_checks_the_names(folders):
    tables = read_tables(folders["train"])
    assert "split" not in without_attributes(tables, ["split"]).customers.columns
    assert without_attributes(tables, ()) is tables
    with pytest.raises(ValueError, match=r"'segment' not a customer attribute.*international_plan"):
        without_attributes(tables, ["segment"])
    with pytest.raises(ValueError, match="consent_email"):  # a contract column is not an attribute
        without_attributes(tables, ["consent_email"])
    assert parse_attributes(" split, ,region,split") == ("split", "region")
    result = CliRunner().invoke(app, ["train", "churn", "--data", str(folders["train"]), "--exclude-attributes",
                                      "segment", "--config", str(folders["config"]), "--no-register"])
    assert result.exit_code == 2 and "segment" in result.output


def test_score_uses_the_labels_cutoff_and_says_so(trained, folders, tmp_path):
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(app, ["score", "--data", str(folders["test"]), "--out", str(out),
                                      "--config", str(folders["config"])])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    # labels without any date: the nominal cutoff the model was trained at, not "now"
    assert summary["cutoff"] == "2000-01-01T00:00:00+00:00" and summary["cutoff_source"] == "labels_nominal"
    assert "labels' reference date" in result.stderr
    scores = pd.read_parquet(out)
    assert (pd.to_datetime(scores["cutoff"], utc=True) == pd.Timestamp("2000-01-01", tz="UTC")).all()
    # reasons about the plan state each customer's own plan (the folder's values, not the column's)
    plan = read_tables(folders["test"]).customers.set_index("customer_id")["international_plan"]
    stated = [(plan[cid], r["label"], r["value"]) for cid, text in zip(scores["customer_id"], scores["churn_reasons"],
                                                                       strict=True)
              for r in json.loads(text) if r["attribute"] == "international_plan"]
    assert stated and all(label == f"international_plan = {own}" and value == own for own, label, value in stated)
