"""The freshness gate on a real export: the Online Retail import without December 2011 is refused as stale for
``--as-of 2011-12-31`` (exit 3, the gate and its figures named), before anything is trained."""

from __future__ import annotations

import pandas as pd
import pytest

from features.sources.importers.registry import import_dataset
from features.sources.io import write_tables
from tests.paths import SHARED, needs_shared
from tests.training.retrain.runs import Home, retrain, write_config


@pytest.mark.slow
@needs_shared
def test_online_retail_without_december_is_refused_as_stale(tmp_path):
    tables = import_dataset("online_retail", SHARED / "online_retail")
    tp = tables.touchpoints
    tp = tp[pd.to_datetime(tp["ts"], utc=True) < pd.Timestamp("2011-12-01", tz="UTC")].reset_index(drop=True)
    write_tables(tables.with_(touchpoints=tp), tmp_path / "data")
    home = Home(tmp_path / "home", tmp_path / "data", ())
    write_config(home.folder)
    status, report, err = retrain(home, "2011-12-31")
    assert status == 3, err[-3000:]
    assert report["decision"] == "refused" and report["champion_before"] is None
    fresh = report["gates"][0]
    assert fresh["name"] == "freshness" and not fresh["passed"]
    assert fresh["figures"]["staleness_days"] > 30
    assert "stale" in err and "freshness" in err
    assert not (home.folder / "work" / "retrain").exists()  # nothing was trained
