"""Shared test set-up: keep MLflow/BentoML state out of the home directory and quiet."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(scope="session", autouse=True)
def _isolated_tool_state(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Telemetry off and BentoML's home in a temporary folder for the whole test session."""
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["DO_NOT_TRACK"] = "true"
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"
    os.environ.setdefault("BENTOML_HOME", str(tmp_path_factory.mktemp("bentoml_home")))
