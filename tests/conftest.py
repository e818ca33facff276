"""Shared test set-up: tool state kept out of the home directory, and one cached world factory."""

from __future__ import annotations

import functools
import os
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
