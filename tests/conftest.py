"""Shared test set-up: tool state kept out of the home directory, and one cached world factory."""

from __future__ import annotations

import os

# README's test command runs two test processes on two cores: one OpenMP thread each (inherited by the engage
# processes they start), set before numpy or LightGBM load their thread pools. Two pools of two threads each on two
# cores spin-wait for one another and burn CPU time the other process needs.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import functools
from collections.abc import Callable

import numpy as np
import pytest

from features.contract.schema import Tables
from features.sources.simulation.config import SimConfig
from features.sources.simulation.world import simulate_world


@pytest.fixture(scope="session", autouse=True)
def _isolated_tool_state(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Telemetry off and BentoML's home in a temporary folder for the whole test session."""
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["DO_NOT_TRACK"] = "true"
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"
    os.environ.setdefault("BENTOML_HOME", str(tmp_path_factory.mktemp("bentoml_home")))


@functools.cache
def _world(n_customers: int, days: int, seed: int, rng_seed: int) -> Tables:
    return simulate_world(SimConfig(n_customers=n_customers, days=days, seed=seed), np.random.default_rng(rng_seed))


@pytest.fixture(scope="session")
def make_world() -> Callable[..., Tables]:
    """``make_world(n_customers, days, seed, rng_seed=seed)``: a simulated world, built once per session.

    Worlds are shared between tests: a test that changes a table works on a copy (``Tables`` is frozen, its
    frames are not).
    """

    def make(n_customers: int, days: int, seed: int = 0, rng_seed: int | None = None) -> Tables:
        return _world(n_customers, days, seed, seed if rng_seed is None else rng_seed)

    return make


# ----------------------------------------------------------- order and groups for two test processes (pytest -n 2)
# README's test command runs the suite in two processes (pytest-xdist). Work goes out one group at a time in
# collection order (--no-loadscope-reorder), so the heaviest groups go first: a long group started last would
# leave one core idle at the end. A group is a module, or a folder whose modules share a session fixture (built
# once, in one process). Seconds measured serially (`--durations=0`), 2026-12-02.
HEAVY_FIRST = (
    "training/retrain",  # ~250 s, one session world and registry shared by its modules
    "e2e/test_faults.py",  # ~150 s
    "training/test_registered_model.py",  # ~85 s
    "training/test_starbucks.py",  # ~70 s
    "e2e/test_notebooks.py",  # ~125 s, each notebook its own group
    "serving/test_serving_integration.py",
    "serving/test_startup.py",
    "training/test_churn_baselines.py",
    "serving/test_abuse.py",
    "training/engine",  # its modules share a session world
    "training/test_bench_scale.py",
    "training/test_registry_pii.py",
    "training/test_cli.py",
    "serving/test_reload.py",
)
# modules whose tests share nothing but the session worlds: one group per test
PER_TEST = ("e2e/test_notebooks.py",)


def _heavy(nodeid: str) -> str | None:
    """The entry of HEAVY_FIRST a test id (``tests/PATH::NAME[...]``) falls under, if any."""
    path = nodeid.split("::")[0].removeprefix("tests/")
    return next((heavy for heavy in HEAVY_FIRST if path == heavy or path.startswith(heavy + "/")), None)


def group_of(nodeid: str) -> str:
    """The group of a test id: what one test process runs together."""
    heavy = _heavy(nodeid)
    if heavy is None:
        return nodeid.split("::")[0]
    return nodeid if heavy in PER_TEST else heavy


def _rank(nodeid: str) -> int:
    heavy = _heavy(nodeid)
    return len(HEAVY_FIRST) if heavy is None else HEAVY_FIRST.index(heavy)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Heaviest groups first (stable: collection order inside a rank)."""
    items.sort(key=lambda item: _rank(item.nodeid))


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """pytest-xdist's scope scheduler with :func:`group_of` as the scope (its own ``loadgroup`` marks do not
    reach the test ids under pytest 9.2, so they would not group anything)."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return GroupScheduling(config, log)
