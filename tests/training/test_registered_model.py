"""The registered decision system as integrators use it: the pyfunc on contract tables as read, its signature,
its code and pinned requirements, the runs' metadata, loading in a fresh virtual environment, and the same
answers from `engage features --model-uri` + `engage score --features` as from `engage score --data`."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.contract.flat import flat_frame
from features.sources.io import read_tables
from tests.paths import PROJECT
from tests.training.registered import register_churn_and_policy
from training.cli import app
from training.run_info import git_commit

pytestmark = pytest.mark.slow  # the fixture trains, logs and registers a churn model and a decision system

REQUIRED_OUTPUT = {
    "customer_id", "churn_probability", "channel", "offer", "expected_incremental_value", "defense_target",
    "model_version", "action", "churn_reasons", "defense_reasons", "no_contact_reason",
}
PINNED = ("numpy", "pandas", "scikit-learn", "lightgbm", "scipy", "PyYAML", "pyarrow", "pandera", "feature_engine")


@dataclass(frozen=True)
class Registered:
    config: object
    data: Path
    cutoff: str
    name: str
    version: str
    churn_run: str
    policy_run: str
    config_file: Path

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@pytest.fixture(scope="module")
def registered(tmp_path_factory, make_world) -> Registered:
    import mlflow
    from mlflow import MlflowClient

    done = register_churn_and_policy(tmp_path_factory.mktemp("registered"), make_world(800, 390, seed=4),
                                     "registered-test")
    config, report = done.config, done.report
    name = config.registered_models["system"]
    mlflow.set_tracking_uri(config.tracking_uri)
    client = MlflowClient(tracking_uri=config.tracking_uri)
    mv = client.get_model_version_by_alias(name, "challenger")  # champion only when the policy gate says so
    assert str(mv.version) == str(report["mlflow"]["version"])
    assert report["mlflow"]["promoted"] == report["beats_baselines"]
    return Registered(config, done.data, report["scenarios"]["configured"]["cutoff"], name, str(mv.version),
                      done.churn["run_id"], mv.run_id, done.config_file)


def _customers_flat(customers: pd.DataFrame) -> pd.DataFrame:
    return customers.rename(columns={c: f"customer.{c}" for c in customers.columns if c != "customer_id"})


def test_pyfunc_answers_the_full_decision_on_contract_tables_as_read(registered) -> None:
    import mlflow

    from training.registry import load_decision_system

    pyfunc = mlflow.pyfunc.load_model(registered.uri)
    tables = read_tables(registered.data)
    ids = tables.customers["customer_id"].head(30).tolist()
    sub = tables.subset(ids)
    flat = flat_frame(sub)
    assert str(flat["ts"].dt.tz) == "UTC" and isinstance(flat["channel"].dtype, pd.CategoricalDtype)
    out = pyfunc.predict(flat, params={"cutoff": registered.cutoff})
    assert set(out.columns) >= REQUIRED_OUTPUT
    assert out["customer_id"].tolist() == ids
    assert set(out["model_version"]) == {f"{registered.name}/{registered.version}"}
    expect = load_decision_system(registered.uri).score(sub, pd.Timestamp(registered.cutoff))
    np.testing.assert_allclose(out["churn_probability"], expect["churn_probability"])
    assert out["channel"].fillna("-").tolist() == expect["nba_channel"].fillna("-").tolist()
    np.testing.assert_allclose(out["expected_incremental_value"], expect["nba_expected_incremental_value"])
    assert out["defense_target"].tolist() == expect["defense_target"].tolist()
    assert all(isinstance(json.loads(v), list) for v in out["churn_reasons"])

    # the files as pd.read_parquet returns them, without the simulator's attributes
    tp = pd.read_parquet(registered.data / "touchpoints.parquet")
    tp = tp[tp["customer_id"].isin(ids)]
    cus = pd.read_parquet(registered.data / "customers.parquet").drop(columns=["region", "loyalty_member"])
    frame = tp.merge(_customers_flat(cus[cus["customer_id"].isin(ids)]), on="customer_id", how="left")
    plain = pyfunc.predict(frame, params={"cutoff": registered.cutoff})
    assert sorted(plain["customer_id"]) == sorted(ids)
    assert plain["churn_probability"].between(0, 1).all()
    # a bare touchpoints table: no consent given, so nobody may be contacted
    bare = pyfunc.predict(tp, params={"cutoff": registered.cutoff})
    assert bare["channel"].isna().all() and set(bare["no_contact_reason"]) == {"no_consent"}


def test_signature_declares_the_flat_contract_and_the_decision(registered) -> None:
    import mlflow
    from mlflow.types.schema import AnyType

    sig = mlflow.models.get_model_info(registered.uri).signature
    inputs = {c.name: c for c in sig.inputs.inputs}
    assert {n for n, c in inputs.items() if c.required} == {"customer_id", "ts", "channel", "kind", "direction"}
    assert isinstance(inputs["ts"].type, AnyType)
    assert not inputs["customer.region"].required and not inputs["customer.loyalty_member"].required
    assert "outreach.offer" in inputs and "customer.consent_email" in inputs
    assert set(sig.outputs.input_names()) >= REQUIRED_OUTPUT
    assert sig.params.to_dict()[0]["name"] == "cutoff"


def test_model_ships_its_code_and_pins_what_it_imports(registered, tmp_path) -> None:
    import mlflow
    import yaml

    folder = Path(mlflow.artifacts.download_artifacts(registered.uri, dst_path=str(tmp_path)))
    reqs = (folder / "requirements.txt").read_text().split()
    for dist in (*PINNED, "mlflow"):
        assert f"{dist}=={md.version(dist)}" in reqs, (dist, reqs)
    assert all("==" in r for r in reqs)
    conf = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["python_function"]
    assert conf["code"] == "code" and conf["loader_module"] == "features.system"
    shipped = folder / "code" / "features"
    assert (shipped / "system.py").is_file() and (shipped / "contract" / "actions.yaml").is_file()
    assert not list(shipped.rglob("__pycache__"))


def test_runs_record_data_code_plots_and_descriptions(registered) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registered.config.tracking_uri)
    commit = git_commit(PROJECT)
    for run_id in (registered.churn_run, registered.policy_run):
        run = client.get_run(run_id)
        (ds,) = [d.dataset for d in run.inputs.dataset_inputs]
        assert ds.digest == run.data.tags["data.sha256"][:32] and ds.name
        assert str(registered.data.resolve()) in ds.source
        assert run.data.tags.get("mlflow.source.git.commit") == (commit[0] if commit else None)
    churn_arts = {a.path for a in client.list_artifacts(registered.churn_run, "evaluation")}
    assert {f"evaluation/{f}" for f in ("roc_curve.png", "pr_curve.png", "shap_summary.png")} <= churn_arts
    policy = client.get_run(registered.policy_run)
    assert {"auuc", "qini_coefficient"} <= set(policy.data.metrics)
    assert "qini_curve.png" in {a.path for a in client.list_artifacts(registered.policy_run)}
    expected = (("churn", "1", ("AUC", "test cutoff")), ("system", registered.version, ("AUUC", "cutoff")))
    for key, version, words in expected:
        name = registered.config.registered_models[key]
        assert "pyfunc" in client.get_registered_model(name).description
        text = client.get_model_version(name, version).description
        assert "800 customers" in text and all(w in text for w in words), text


def test_no_git_commit_outside_a_checkout(tmp_path) -> None:
    from training.run_info import code_tags

    assert git_commit(tmp_path) is None and code_tags(tmp_path) == {}


SCRIPT = """
import json, sys
import mlflow, pandas as pd
tracking, uri, tp_file, cus_file, cutoff, out_file = sys.argv[1:]
mlflow.set_tracking_uri(tracking)
model = mlflow.pyfunc.load_model(uri)
import features
tp, cus = pd.read_parquet(tp_file), pd.read_parquet(cus_file)
cus = cus.rename(columns={c: "customer." + c for c in cus.columns if c != "customer_id"})
out = model.predict(tp.merge(cus, on="customer_id", how="left"), params={"cutoff": cutoff})
json.dump({"features": features.__file__, "prefix": sys.prefix, "rows": out.to_dict(orient="list")},
          open(out_file, "w"), default=str)
"""


def test_registered_model_loads_and_scores_in_a_fresh_virtual_environment(registered, tmp_path) -> None:
    """Only the model's own requirements.txt is installed (pip's cache and the package registry only)."""
    import mlflow

    folder = Path(mlflow.artifacts.download_artifacts(registered.uri, dst_path=str(tmp_path / "model")))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    venv = tmp_path / "venv"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env, timeout=300)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-compile", "-r", str(folder / "requirements.txt")],
        check=True, env=env, timeout=1500,
    )
    setup_s = time.perf_counter() - t0
    tables = read_tables(registered.data)
    ids = tables.customers["customer_id"].head(25).tolist()
    tp = pd.read_parquet(registered.data / "touchpoints.parquet")
    tp = tp[tp["customer_id"].isin(ids)]
    tp.to_parquet(tmp_path / "tp.parquet")
    cus = pd.read_parquet(registered.data / "customers.parquet")
    cus = cus[cus["customer_id"].isin(ids)]
    cus.to_parquet(tmp_path / "cus.parquet")
    (tmp_path / "score.py").write_text(SCRIPT)
    args = [registered.config.tracking_uri, registered.uri, str(tmp_path / "tp.parquet"), str(tmp_path / "cus.parquet"),
            registered.cutoff, str(tmp_path / "out.json")]
    subprocess.run([python, str(tmp_path / "score.py"), *args], check=True, env=env, cwd=tmp_path, timeout=600)
    got = json.loads((tmp_path / "out.json").read_text())
    print(f"fresh environment: venv + pip install {setup_s:.0f} s, total {time.perf_counter() - t0:.0f} s")
    assert got["prefix"] == str(venv) and "/code/features/" in got["features"]  # not the project's copy
    rows = pd.DataFrame(got["rows"])
    assert set(rows.columns) >= REQUIRED_OUTPUT and sorted(rows["customer_id"]) == sorted(ids)
    frame = tp.merge(_customers_flat(cus), on="customer_id", how="left")  # the script's input, in this process
    here = mlflow.pyfunc.load_model(registered.uri).predict(frame, params={"cutoff": registered.cutoff})
    here = here.set_index("customer_id").loc[rows["customer_id"]]
    np.testing.assert_allclose(rows["churn_probability"].to_numpy(float), here["churn_probability"], rtol=1e-9)
    assert rows["action"].tolist() == here["action"].tolist()


# ------------------------------------------------- the command line: features and score give the same answers


def engage(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


COMPARED = ["customer_id", "churn_probability", "nba_action", "nba_channel", "nba_offer",
            "nba_expected_incremental_value", "engagement_index", "defense_target", "no_contact_reason",
            "model_version", "cutoff"]


def test_score_of_the_models_features_equals_score_of_the_data(registered, tmp_path: Path) -> None:
    done, uri = registered, registered.uri
    model = ["--model-uri", uri, "--config", done.config_file]
    engage("features", "--data", done.data, "--out", tmp_path / "f.parquet", *model)
    table = pd.read_parquet(tmp_path / "f.parquet")
    assert table.columns[:2].tolist() == ["customer_id", "cutoff"] and table["cutoff"].nunique() == 1
    engage("score", "--features", tmp_path / "f.parquet", "--out", tmp_path / "from_features.parquet", *model)
    engage("score", "--data", done.data, "--out", tmp_path / "from_data.parquet", *model)
    a = pd.read_parquet(tmp_path / "from_features.parquet").set_index("customer_id", drop=False).sort_index()
    b = pd.read_parquet(tmp_path / "from_data.parquet").set_index("customer_id", drop=False).sort_index()
    assert len(a) == len(b) == 800
    assert a["nba_action"].notna().any() and a["engagement_index"].notna().all()
    pd.testing.assert_frame_equal(a[COMPARED], b[COMPARED], check_exact=True)


def test_features_without_a_model_differ_and_a_contrary_cutoff_is_refused(registered, tmp_path: Path) -> None:
    done, uri = registered, registered.uri
    model = ["--model-uri", uri, "--config", done.config_file]
    engage("features", "--data", done.data, "--out", tmp_path / "fresh.csv")  # a pipeline fitted on this data
    engage("score", "--features", tmp_path / "fresh.csv", "--out", tmp_path / "fresh_scores.csv", *model)
    engage("score", "--data", done.data, "--out", tmp_path / "data_scores.csv", *model)
    fresh = pd.read_csv(tmp_path / "fresh_scores.csv").set_index("customer_id").sort_index()
    data = pd.read_csv(tmp_path / "data_scores.csv").set_index("customer_id").sort_index()
    assert (fresh["cutoff"] == data["cutoff"]).all()  # the CSV's own cutoff column, not "now"
    assert not fresh["engagement_index"].equals(data["engagement_index"])  # why --model-uri matters
    result = CliRunner().invoke(app, ["score", "--features", str(tmp_path / "fresh.csv"), "--cutoff", "2020-01-01",
                                      "--out", str(tmp_path / "x.csv"), *map(str, model)])
    assert result.exit_code == 2 and "differs from the cutoff the features were built at" in result.stderr
    assert not (tmp_path / "x.csv").exists()


def test_serve_model_uri_downloads_a_registered_version_once(registered, tmp_path: Path, monkeypatch) -> None:
    """`engage serve --model-uri models:/...`: the version's files in work/models, with the version it serves."""
    from serving.loading import ModelSource, load_system
    from training.cli import _download_registered

    monkeypatch.chdir(tmp_path)
    folder = _download_registered(registered.uri, registered.config_file)
    assert folder == Path("work") / "models" / registered.name / registered.version
    system, info = load_system(ModelSource("path", str(folder)))
    assert info.version == f"{registered.name}/{registered.version}" and system.policy is not None
    mtime = (folder / "MLmodel").stat().st_mtime_ns
    assert _download_registered(registered.uri, registered.config_file) == folder  # reused, not fetched again
    assert (folder / "MLmodel").stat().st_mtime_ns == mtime
