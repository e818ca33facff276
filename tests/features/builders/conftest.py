"""Shared fixtures of the feature-builder tests; each module says which simulated ``world`` it builds on."""

from __future__ import annotations

import pytest

from features.contract.schema import Tables


@pytest.fixture(scope="module")
def cutoff(world: Tables) -> str:
    """The evaluation cutoff of the module's world."""
    return world.meta["manifest"]["cutoff"]
