"""One simulated world whose first weekly retrain made the first champion; each test starts from a copy of it.

The registry stores absolute paths, so every test works in the same folder, restored from the pristine copy.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from features.sources.io import write_tables
from tests.training.retrain.runs import Home, retrain, write_config

CUSTOMERS, DAYS = 1500, 400


@pytest.fixture(scope="session")
def first_week(tmp_path_factory, make_world):
    """(home, world, report of week 1): the first champion, trained on the world cut four weeks after its
    simulated cutoff; later weeks (+4 weeks, +5 weeks) still lie inside the simulated log."""
    base = tmp_path_factory.mktemp("retrain")
    world = make_world(CUSTOMERS, DAYS, seed=7)
    cutoff = pd.Timestamp(world.meta["manifest"]["cutoff"])
    weeks = tuple(str((cutoff + pd.Timedelta(days=d)).date()) for d in (28, 56, 63))
    home = Home(base / "home", base / "data", weeks)
    write_tables(world, home.data)
    write_config(home.folder)
    status, report, err = retrain(home, weeks[0])
    assert status == 0, err[-3000:]
    shutil.copytree(home.folder, base / "pristine", symlinks=True)
    return home, world, report


@pytest.fixture
def week1(first_week):
    """The home folder as the first week left it (restored before each test)."""
    home = first_week[0]
    shutil.rmtree(home.folder)
    shutil.copytree(home.folder.parent / "pristine", home.folder, symlinks=True)
    return home
