"""Champion safety: ``engage retrain`` killed with SIGKILL at three of the issue's six points (the other three,
feature building, the churn fit and registering, are killed in tests/e2e/test_faults.py) leaves the champion
alias, every file of the registry's artifact store and the published scores byte-identical; each next run starts
where the killed one left off (and reaches its own, later, point), and the run after the last kill finishes cleanly.
Then a rejected challenger exits 4 with its reason on the model version, the champion untouched."""

from __future__ import annotations

import pytest

from tests.training.retrain.runs import (
    assert_untouched,
    champion_state,
    kill,
    retrain,
    start_paused,
    version_tags,
    wait_reached,
    write_config,
)

pytestmark = pytest.mark.slow

# (what the job is doing, the function it is stopped in): in the order the job reaches them
# (the commands' own kill tests, tests/e2e/test_faults.py, stop training in the churn fit and in registering; here
# the job's own steps around them, kept to three points because each later point re-runs the training before it)
KILL_POINTS = [
    ("validation", "features.sources.io:read_tables"),
    ("policy fit", "training.policy.commands:train_and_evaluate"),
    ("batch scoring", "serving.batch:score_data"),
]


def test_sigkill_at_every_step_leaves_the_champion_and_scores_as_they_were(week1, tmp_path):
    week2 = week1.weeks[1]
    before = champion_state(week1)
    assert before["scores"] is not None
    for i, (_what, target) in enumerate(KILL_POINTS):
        markers = tmp_path / f"kill{i}"
        # every run after the first starts where a killed run left its lock, run record and staged files: reaching
        # its own (later) pause point shows the job starts cleanly after a kill
        proc = start_paused(week1, target, markers, week2)
        wait_reached(proc, markers)
        kill(proc)
        assert_untouched(before, champion_state(week1))
    status, report, err = retrain(week1, week1.weeks[0])  # the next full run: lock free, registry usable
    assert status == 0, err[-2000:]
    assert report["decision"] == "unchanged"
    assert any("ended without finishing" in w for w in report["warnings"]), report["warnings"]
    assert_untouched(before, champion_state(week1))
    # a challenger that fails the backtest (here: an ECE bound no model meets) exits 4 and changes nothing served
    strict = write_config(week1.folder, "promotion:\n  max_ece: 0.0001\n", name="strict.yaml")  # same registry
    status, report, err = retrain(week1, week2, config=strict)
    assert status == 4, err[-3000:]
    assert report["decision"] == "kept" and report["reason"].startswith("rejected: churn ECE")
    assert report["champion_after"] == report["champion_before"]
    tags = version_tags(week1, "engage-decision-system", report["challenger"]["system"])
    assert tags["promotion_decision"] == "rejected" and tags["promotion_reason"] == report["reason"]
    assert_untouched(before, champion_state(week1))
