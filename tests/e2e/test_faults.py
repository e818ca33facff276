"""Faults with real processes: SIGKILL at four points of training and scoring, and two trainings promoting at once
(the policy fit is killed inside engage retrain: tests/training/retrain/test_faults.py).

Each killed command is the real ``engage`` command in its own process, stopped at a named function by
:mod:`tests.faultpoints` and killed with SIGKILL there. After every kill the champions, their aliases and the
published scores are byte-identical to before; the next run of each command exits 0, marks the killed run
FAILED and tags the version it left unevaluated; no run stays RUNNING and no alias points at a version that
was not evaluated. Two ``engage train churn`` meeting at the promotion lock leave one champion, compared with
the version it replaced.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.paths import PROJECT, quick_config, write_registry_config

pytestmark = pytest.mark.slow

ENGAGE = [sys.executable, "-m", "training.cli"]
PAUSED = [sys.executable, "-m", "tests.faultpoints"]
TIMEOUT = 600  # generous: a loaded CI machine runs two other test processes beside these


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(PROJECT), "MLFLOW_DISABLE_TELEMETRY": "true"}


def engage(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*ENGAGE, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)


def start_paused(target: str, markers: Path, args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """An engage command that stops at ``target`` (``module:function``) and waits there."""
    with open(log, "w") as out:
        return subprocess.Popen([*PAUSED, target, str(markers), *args], cwd=cwd, env=_env(), stdout=out,
                                stderr=subprocess.STDOUT)


def wait_reached(markers: Path, procs: list[subprocess.Popen], logs: list[Path]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while len(list(markers.glob("reached.*"))) < len(procs):
        for proc, log in zip(procs, logs, strict=True):
            if proc.poll() is not None:
                pytest.fail(f"exited ({proc.returncode}) before its pause point:\n{log.read_text()[-3000:]}")
        assert time.monotonic() < deadline, "pause point not reached in time"
        time.sleep(0.05)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def registry_state(config_file: Path, published: list[Path]) -> dict:
    """Champion and challenger versions, the champion's tags and model-file bytes, and the published files."""
    import mlflow
    from mlflow import MlflowClient

    from features.system import model_folder_file
    from training.registry import load_config

    config = load_config(config_file)
    client = MlflowClient(tracking_uri=config.tracking_uri)
    mlflow.set_tracking_uri(config.tracking_uri)
    state: dict = {}
    for key in ("churn", "system"):
        name = config.registered_models[key]
        champ = client.get_model_version_by_alias(name, "champion")
        local = mlflow.artifacts.download_artifacts(f"models:/{name}/{champ.version}")
        state[name] = {
            "champion": str(champ.version),
            "challenger": str(client.get_model_version_by_alias(name, "challenger").version),
            "tags": dict(champ.tags),
            "model_sha256": _sha(model_folder_file(local)),
        }
    state.update({str(p): _sha(p) for p in published})
    return state


def _runs_and_versions(config_file: Path):
    from mlflow import MlflowClient

    from training.registry import experiment_id, load_config

    config = load_config(config_file)
    client = MlflowClient(tracking_uri=config.tracking_uri)
    runs = client.search_runs([experiment_id(config, k) for k in ("churn", "policy")], max_results=1000)
    versions = {
        name: client.search_model_versions(f"name = '{name}'") for name in config.registered_models.values()
    }
    aliases = {
        name: {a: str(client.get_model_version_by_alias(name, a).version) for a in ("champion", "challenger")}
        for name, found in versions.items()
        if found
    }
    return runs, versions, aliases


@pytest.fixture(scope="module")
def trained(make_world, tmp_path_factory):
    """A data folder, a registry with churn and decision-system champions, and published scores."""
    from features.sources.io import write_tables
    from serving.batch import score_data
    from training.churn.commands import train_churn_command
    from training.policy.commands import train_policy_command
    from training.policy.config import PolicyTrainConfig

    root = tmp_path_factory.mktemp("faults")
    write_tables(make_world(1000, 365, seed=3), root / "data")
    write_registry_config(root / "mlflow.yaml", quick_config())
    t0 = time.perf_counter()
    train_churn_command(root / "data", root / "mlflow.yaml")
    report = train_policy_command(root / "data", root / "mlflow.yaml",
                                  train=PolicyTrainConfig(max_campaigns=3, n_boot=20, outcome_estimators=30,
                                                            effect_estimators=20))
    if not report["mlflow"]["promoted"]:
        # The policy gate may refuse a learned policy on a world this small; these tests need a served
        # champion, so the fixture moves the alias by hand, as an operator's manual rollback would.
        from mlflow import MlflowClient

        from training.registry import load_config

        cfg = load_config(root / "mlflow.yaml")
        MlflowClient(tracking_uri=cfg.tracking_uri).set_registered_model_alias(
            report["mlflow"]["registered_model"], cfg.champion, report["mlflow"]["version"]
        )
    score_data(root / "data", root / "scores.parquet", defense_out=root / "defense.csv",
               mlflow_config=root / "mlflow.yaml")
    print(f"\nset-up (in process: churn, policy, scores): {time.perf_counter() - t0:.1f} s")
    return root


KILL_POINTS = [
    ("feature building", "training.churn.split:labelled_features", ["train", "churn"]),
    ("churn fit", "training.churn.train:fit_model", ["train", "churn"]),
    ("registering (version created, not evaluated)", "training.registry:register_and_promote", ["train", "churn"]),
    ("batch scoring (outputs staged, not published)", "features.sources.outputs:_publish",
     ["score", "--out", "scores.parquet", "--defense-out", "defense.csv", "--overwrite"]),
]


def test_sigkill_at_four_points_leaves_champions_and_scores_intact(trained):
    root = trained
    config = root / "mlflow.yaml"
    published = [root / "scores.parquet", root / "defense.csv"]
    before = registry_state(config, published)
    for n, (label, target, args) in enumerate(KILL_POINTS):
        t0 = time.perf_counter()
        markers, log = root / f"kill{n}", root / f"kill{n}.log"
        proc = start_paused(target, markers, [*args, "--data", "data", "--config", "mlflow.yaml"], root, log)
        wait_reached(markers, [proc], [log])
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
        assert registry_state(config, published) == before, f"state changed by a kill during {label}"
        if "registering" in label:  # the killed run stays RUNNING until the next training command starts
            assert [r.info.status for r in _runs_and_versions(config)[0]].count("RUNNING") == 1
        print(f"killed during {label}: {time.perf_counter() - t0:.1f} s")

    # the next run of each killed command (the policy fit is killed, and re-run, in the retrain suite)
    for args in (["train", "churn"],
                 ["score", "--out", "scores.parquet", "--defense-out", "defense.csv", "--overwrite"]):
        t0 = time.perf_counter()
        done = engage([*args, "--data", "data", "--config", "mlflow.yaml"], root)
        assert done.returncode == 0, done.stderr[-3000:]
        print(f"next `engage {' '.join(args[:2])}`: exit 0 in {time.perf_counter() - t0:.1f} s")

    runs, versions, aliases = _runs_and_versions(config)
    assert not [r.info.run_id for r in runs if r.info.status == "RUNNING"]
    failed = [r for r in runs if r.info.status == "FAILED"]
    assert len(failed) == 1 and "killed" in failed[0].data.tags["engage.failure"]
    for name, found in versions.items():
        decisions = {str(mv.version): mv.tags.get("promotion_decision") for mv in found}
        assert all(decisions.values()), f"{name}: a version without a decision tag: {decisions}"
        assert all(decisions[v] in ("promoted", "rejected") for v in aliases[name].values()), (name, decisions)
    churn = {str(mv.version): mv.tags for mv in versions["engage-churn"]}
    assert churn["2"]["promotion_decision"] == "not evaluated"  # registered by the killed run
    assert churn["3"]["compared_with_version"] == "1"


def _weak_champion(world, config_file: Path) -> None:
    """Register, as churn champion v1, a model fitted on shuffled labels: any real training beats it."""
    from features.models.churn import ChurnModel
    from features.system import DecisionSystem
    from training.churn.split import ChurnSettings
    from training.churn.train import train_churn
    from training.registry import load_config, log_decision_system, register_and_promote
    from training.runs import tracked_run

    config = load_config(config_file)
    result = train_churn(world, ChurnSettings(max_train_cutoffs=2), np.random.default_rng(0))
    F, y = result.test_features, result.test_keys["label"].to_numpy()
    rng = np.random.default_rng(1)
    weak = ChurnModel(seed=0).fit(F, rng.permutation(y), F, rng.permutation(y))
    import mlflow

    mlflow.set_tracking_uri(config.tracking_uri)
    with tracked_run(config, "churn", "weak"):
        logged = log_decision_system(DecisionSystem(result.system.pipeline, weak), registered_model_name="engage-churn")
        register_and_promote(config, logged, challenger_metrics={"auc": 0.5, "brier": 0.25, "ece": 0.0},
                             champion_metrics_fn=lambda uri: {})


def test_two_trainings_at_once_leave_one_champion_compared_with_the_one_it_replaced(make_world, tmp_path):
    from features.sources.io import write_tables

    world = make_world(1000, 365, seed=3)
    write_tables(world, tmp_path / "data")
    config = tmp_path / "mlflow.yaml"
    write_registry_config(config, quick_config())
    _weak_champion(world, config)
    t0 = time.perf_counter()
    markers = tmp_path / "meet"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    args = ["train", "churn", "--data", "data", "--config", "mlflow.yaml"]
    procs = [start_paused("training.registry:promotion_lock", markers, args, tmp_path, log) for log in logs]
    try:
        wait_reached(markers, procs, logs)  # both measured champion v1 and wait at the lock
        (markers / "go").write_text("")
        assert [p.wait(timeout=TIMEOUT) for p in procs] == [0, 0], [log.read_text()[-2000:] for log in logs]
    finally:  # a failed wait must not leave a process paused for ever
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    print(f"\ntwo trainings at once: {time.perf_counter() - t0:.1f} s")

    _, versions, aliases = _runs_and_versions(config)
    tags = {str(mv.version): mv.tags for mv in versions["engage-churn"]}
    first = next(v for v in ("2", "3") if tags[v]["compared_with_version"] == "1")
    second = "3" if first == "2" else "2"
    assert tags[first]["promotion_decision"] == "promoted"
    # the second found the champion moved under the lock and was measured again, against the first
    assert tags[second]["compared_with_version"] == first
    assert "moved from v1" in "".join(log.read_text() for log in logs)
    champion = aliases["engage-churn"]["champion"]
    expected_previous = "1" if champion == first else first
    assert champion in (first, second) and tags[champion]["compared_with_version"] == expected_previous
    decisions = [tags[v]["promotion_decision"] for v in (first, second)]
    assert decisions.count("promoted") == 1 + (champion == second)
