"""Three weekly runs on one simulated world: week 1 trains the first champion (the session fixture), week 2 sees
four more weeks and promotes or keeps with the reason shown, week 3 gets a broken export (the web channel's
events of the newest week missing) and the data gate refuses it with exit 3, champion and scores untouched."""

from __future__ import annotations

import pandas as pd
import pytest

from features.sources.io import write_tables
from tests.training.retrain.runs import (
    aliases,
    assert_untouched,
    broken_export,
    champion_state,
    retrain,
    version_tags,
)

pytestmark = pytest.mark.slow
SYSTEM = "engage-decision-system"


def test_three_weeks_first_champion_then_a_decision_then_a_refused_broken_export(week1, first_week, tmp_path):
    _, week_two, week_three = week1.weeks
    champion_one = first_week[2]["champion_after"]

    status, report, err = retrain(week1, week_two)
    assert status in (0, 4), err[-3000:]
    assert report["decision"] == ("promoted" if status == 0 else "kept")
    assert report["champion_before"] == champion_one
    challenger = report["challenger"]["system"]
    tags = version_tags(week1, SYSTEM, challenger)
    assert tags["promotion_reason"] == report["reason"] and tags["compared_with_version"] == champion_one
    assert report["backtest"]["champion"] is not None  # both measured in this run, on the same rows
    assert report["backtest"]["cutoff"] == str(pd.Timestamp(week_two, tz="UTC") - pd.Timedelta(days=90))
    assert report["drift"] and report["drift_report"]["label_rate"]
    served = aliases(week1)[(SYSTEM, "champion")]
    scores = pd.read_parquet(week1.published)
    if status == 0:
        assert served == int(challenger) and report["champion_after"] == challenger
        assert set(scores["model_version"]) == {f"{SYSTEM}/{challenger}"}
    else:
        assert served == int(champion_one) and set(scores["model_version"]) == {f"{SYSTEM}/{champion_one}"}

    after_week_two = champion_state(week1)
    broken = tmp_path / "broken"
    write_tables(broken_export(first_week[1], week_three, 7, drop_channel="web"), broken)
    status, report, err = retrain(week1, week_three, data=broken)
    assert status == 3, err[-3000:]
    assert report["decision"] == "refused" and "vanished" in report["reason"] and "channel:web" in report["reason"]
    assert_untouched(after_week_two, champion_state(week1))
