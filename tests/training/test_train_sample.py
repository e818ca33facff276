"""Training at scale: the reproducible customer sample, drawn on Dask from a partitioned folder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.training.partitioned_world import write_partitioned_world
from training.engine.options import EngineSettings
from training.engine.sampled_read import SampleRequest, sampled_tables, training_tables
from training.engine.sampling import FOOTPRINTS, in_sample, sample_fraction

IDS = pd.Index([f"C{i:06d}" for i in range(1, 20_001)])


def test_sample_is_reproducible_nested_and_of_its_size():
    a, b = in_sample(IDS, 0.1, 3), in_sample(IDS, 0.1, 3)
    assert np.array_equal(a, b)
    assert abs(a.mean() - 0.1) < 0.01  # 20,000 draws: sd 0.002
    assert not np.array_equal(a, in_sample(IDS, 0.1, 4))  # another seed, other customers
    assert abs((a & in_sample(IDS, 0.1, 4)).mean() - 0.01) < 0.004  # seeds independent
    small = in_sample(IDS, 0.03, 3)
    assert small.sum() < a.sum() and not (small & ~a).any()  # nested
    shuffled = IDS[np.random.default_rng(0).permutation(len(IDS))]
    assert set(shuffled[in_sample(shuffled, 0.1, 3)]) == set(IDS[a])  # membership is per id, not per position
    assert in_sample(IDS, 1.0, 3).all()


def test_sample_fraction_follows_the_budget():
    churn = FOOTPRINTS["churn"]
    budget = churn.fixed_bytes + 10_000 * churn.bytes_per_customer
    assert sample_fraction(1_000_000, "churn", budget) == pytest.approx(0.01)
    assert sample_fraction(5_000, "churn", budget) == 1.0
    assert sample_fraction(1_000_000, "policy", budget) < 0.01  # policy costs more per customer
    assert sample_fraction(100_000, "churn", budget, sample_customers=5_000) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="below what `engage train churn` needs"):
        sample_fraction(100_000, "churn", churn.fixed_bytes // 2)


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


def test_sample_drawn_from_partitions_is_validated_and_independent_of_the_partitioning(tmp_path, make_world,
                                                                                       client):
    world = make_world(400, 60, seed=3)
    request = SampleRequest(EngineSettings("dask"), "churn", customers=120, seed=5)
    three = sampled_tables(write_partitioned_world(world, tmp_path / "p3", 3), request, 10**10, client)
    two = sampled_tables(write_partitioned_world(world, tmp_path / "p2", 2), request, 10**10, client)
    ids = world.customers["customer_id"].astype(str)
    expected = sorted(ids[in_sample(ids, 120 / 400, 5)])
    assert three.customers["customer_id"].astype(str).tolist() == expected
    pd.testing.assert_frame_equal(three.touchpoints, two.touchpoints)
    want = world.subset(expected).touchpoints
    assert len(three.touchpoints) == len(want) and three.outreach is not None and three.truth is not None
    assert three.meta["sample"] | {"partitions": 0} == two.meta["sample"] | {"partitions": 0}
    assert three.meta["sample"]["base_customers"] == 400 and three.meta["sample"]["customers"] == len(expected)
    assert three.meta["base_fingerprint"] == {**two.meta["base_fingerprint"], "partitioned": str(tmp_path / "p3")}
    assert three.meta["base_fingerprint"]["touchpoints"] == len(world.touchpoints)
    whole = sampled_tables(tmp_path / "p3", SampleRequest(EngineSettings("dask"), "churn", 400), 10**10, client)
    assert len(whole.customers) == 400 and len(whole.touchpoints) == len(world.touchpoints)


def test_dask_training_needs_a_partitioned_folder(tmp_path, make_world):
    from features.sources.io import write_tables

    write_tables(make_world(100, 60, seed=3), tmp_path / "flat")
    with pytest.raises(ValueError, match=r"not a partitioned data folder.*engage partition"):
        training_tables(tmp_path / "flat", SampleRequest(EngineSettings("dask"), "churn"))


@pytest.mark.slow
def test_train_churn_and_policy_on_dask_register_models_that_score_without_dask(tmp_path, make_world):
    import json
    import subprocess
    import sys

    from typer.testing import CliRunner

    from tests.paths import PROJECT, quick_config, write_registry_config
    from training.cli import app
    from training.policy.commands import train_policy_command
    from training.policy.config import PolicyTrainConfig

    data = write_partitioned_world(make_world(300, 300, seed=1), tmp_path / "data", 3)
    cfg = tmp_path / "mlflow.yaml"
    write_registry_config(cfg, quick_config())
    churn = CliRunner().invoke(app, ["train", "churn", "--data", str(data), "--config", str(cfg), "--engine",
                                     "dask", "--sample-customers", "240", "--quiet"])
    assert churn.exit_code == 0, churn.output
    report = json.loads(churn.stdout)
    assert report["sample"]["base_customers"] == 300 and 180 < report["sample"]["customers"] < 300
    assert report["mlflow"]["promoted"]
    # the policy as `engage train policy --engine dask` trains it, with a lighter training configuration
    out = train_policy_command(data, cfg, train=PolicyTrainConfig(max_campaigns=3, outcome_estimators=30,
                                                                  effect_estimators=20, n_boot=30, seed=1),
                               sample=SampleRequest(EngineSettings("dask"), "policy", 200))
    assert out["sample"]["customers"] < report["sample"]["customers"]  # nested in churn's: the same base
    assert out["churn_model"].startswith("churn champion")
    # the registered system loads and scores in a process where Dask cannot be imported
    script = (
        "import sys; sys.modules.update(dask=None, distributed=None)\n"
        "import mlflow; from training.registry import load_config, load_decision_system\n"
        f"config = load_config({str(cfg)!r}); mlflow.set_tracking_uri(config.tracking_uri)\n"
        "system = load_decision_system('models:/engage-decision-system@challenger')\n"
        "from features.sources.simulation.config import SimConfig\n"
        "from features.sources.simulation.world import simulate_world\nimport numpy as np\n"
        "w = simulate_world(SimConfig(n_customers=50, days=120, seed=4), np.random.default_rng(4))\n"
        "s = system.score(w, w.meta['manifest']['cutoff'])\n"
        "assert len(s) == 50 and s['churn_probability'].between(0, 1).all(), s\n"
        "assert not any(m.startswith(('dask', 'distributed')) for m in sys.modules if sys.modules[m]), 'dask'\n"
        "print('scored', type(system).__module__)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT,
                         env={**__import__("os").environ, "PYTHONPATH": str(PROJECT)})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "scored features." in run.stdout


def test_sample_options_need_the_dask_engine():
    from training.cli_train import sample_request

    assert sample_request("churn", "local", None, None, None, 0) is None
    with pytest.raises(ValueError, match="apply to --engine dask only"):
        sample_request("churn", "local", None, None, 5_000, 0)
    request = sample_request("policy", "dask", None, "6GB", 5_000, 2)
    assert (request.trainer, request.customers, request.seed, request.engine.memory_limit) == \
        ("policy", 5_000, 2, 6 * 10**9)
