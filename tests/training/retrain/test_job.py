"""``engage retrain`` end to end as a scheduler runs it: every exit status, the lock, the data gates on broken
exports, and the report's fixed fields. Real subprocesses on one simulated world (see conftest.py here)."""

from __future__ import annotations

import shutil
import time

import pytest

from features.sources.io import write_tables
from tests.training.retrain.runs import (
    aliases,
    assert_untouched,
    broken_export,
    champion_state,
    retrain,
    start_paused,
    version_tags,
    versions,
    wait_reached,
    write_config,
)

pytestmark = pytest.mark.slow
SYSTEM = "engage-decision-system"
FIELDS = {"decision", "reason", "gates", "drift", "champion_before", "champion_after", "seconds", "peak_memory_mb"}


def test_week_one_trains_the_first_champion_and_stores_its_reference(first_week):
    home, _, report = first_week
    assert set(report) >= FIELDS
    assert report["decision"] == "promoted" and report["champion_before"] is None
    assert report["champion_after"] == report["challenger"]["system"]
    assert [g["name"] for g in report["gates"]] == ["freshness", "volume", "vanished", "missing"]
    assert report["peak_memory_mb"] > 50 and report["seconds"] > 0
    tags = version_tags(home, SYSTEM, report["champion_after"])
    assert tags["promotion_decision"] == "promoted" and tags["promotion_reason"] == report["reason"]
    assert {"retrain.data_sha256", "retrain.code_version", "retrain.as_of"} <= set(tags)
    assert home.published.exists()
    assert aliases(home)[("engage-churn", "champion")] == int(report["challenger"]["churn"])


def test_exit_0_unchanged_data_registers_nothing(week1):
    before, count = champion_state(week1), versions(week1)
    status, report, _ = retrain(week1, week1.weeks[0])
    assert status == 0
    assert report["decision"] == "unchanged" and "same data" in report["reason"]
    assert report["champion_before"] == report["champion_after"]
    assert versions(week1) == count
    assert_untouched(before, champion_state(week1))


def test_exit_2_bad_input_changes_nothing(week1, tmp_path):
    before = champion_state(week1)
    bad = tmp_path / "bad"
    shutil.copytree(week1.data, bad)
    (bad / "touchpoints.parquet").write_bytes(b"not a parquet file")
    status, report, err = retrain(week1, week1.weeks[1], data=bad)
    assert status == 2 and "touchpoints" in err and report is None
    status, _, err = retrain(week1, "next tuesday")
    assert status == 2 and "--as-of" in err
    assert_untouched(before, champion_state(week1))


@pytest.mark.parametrize(
    ("case", "gate", "broken"),
    [
        ("stale", "freshness", None),
        ("volume collapse", "volume", {"keep_every": 5}),
        ("vanished channel", "vanished", {"drop_channel": "web"}),
        ("missing-share jump", "missing", {"blank": "device"}),
    ],
)
def test_exit_3_a_data_gate_refuses_a_broken_export(week1, first_week, tmp_path, case, gate, broken):
    before, count = champion_state(week1), versions(week1)
    data, as_of = week1.data, week1.weeks[1]
    if broken is None:  # the export stopped at week 2; the job runs at week 3
        data, as_of = tmp_path / "data", week1.weeks[2]
        write_tables(broken_export(first_week[1], week1.weeks[1], 7, stopped=True), data)
    else:
        data = tmp_path / "data"
        write_tables(broken_export(first_week[1], as_of, 7, **broken), data)
    status, report, err = retrain(week1, as_of, data=data)
    assert status == 3, (case, err[-2000:])
    assert report["decision"] == "refused"
    failed = [g for g in report["gates"] if not g["passed"]]
    assert gate in [g["name"] for g in failed]
    assert f"{gate}:" in report["reason"] and gate in err
    assert versions(week1) == count  # nothing trained
    assert_untouched(before, champion_state(week1))


def test_exit_5_two_jobs_at_once_exactly_one_runs(week1, tmp_path):
    """Both processes stop just before taking the lock, then go together: one runs, the other exits 5."""
    markers = tmp_path / "markers"
    procs = [start_paused(week1, "training.retrain.commands:_job_lock", markers, week1.weeks[0],
                          report=f"report{i}.json") for i in range(2)]
    wait_reached(procs[0], markers, count=2)
    (markers / "go").write_text("")
    codes = sorted(p.wait(timeout=300) for p in procs)
    assert codes == [0, 5], [p.stderr.read()[-2000:] for p in procs]
    time.sleep(0.1)
    status, _, _ = retrain(week1, week1.weeks[0])
    assert status == 0  # the lock was released


def test_the_help_documents_the_exit_statuses():
    import subprocess
    import sys

    from tests.training.retrain.runs import environment

    out = subprocess.run([sys.executable, "-m", "training.cli", "retrain", "--help"], env=environment(),
                         capture_output=True, text=True, timeout=120).stdout
    for code in ("0", "2", "3", "4", "5"):
        assert f"  {code}  " in out
    assert "--as-of" in out and "data gate" in out


def test_a_config_with_an_unknown_retrain_key_is_bad_input(week1, tmp_path):
    config = write_config(tmp_path / "cfg", "  max_stalenes_days: 3\n")
    status, _, err = retrain(week1, week1.weeks[0], config=config)
    assert status == 2 and "max_stalenes_days" in err
