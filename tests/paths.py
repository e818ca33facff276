"""Where the project and the real datasets are, for tests in any sub-folder."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared" / "datasets"


def needs_shared(test):
    """Mark a test as reading ../shared/datasets and skip it when that folder is absent."""
    skip = pytest.mark.skipif(not SHARED.exists(), reason=f"{SHARED} not present (real public datasets)")
    return pytest.mark.shared(skip(test))


def quick_config(cutoffs: int = 2) -> str:
    """The project's ``mlflow.yaml`` with ``cutoffs`` churn training cutoffs: for tests of what the commands do
    (registering, promoting, surviving a kill), where the model's quality is not what is measured."""
    text = (PROJECT / "mlflow.yaml").read_text()
    line = "  max_train_cutoffs: 10"
    assert line in text, "mlflow.yaml's churn cutoffs line changed: update tests/paths.py"
    return text.replace(line, f"  max_train_cutoffs: {cutoffs}")


@functools.cache
def _empty_registry() -> Path:
    """An MLflow SQLite database with MLflow's tables and nothing else, made once per test process."""
    from mlflow import MlflowClient

    folder = Path(tempfile.mkdtemp(prefix="engage-empty-registry-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder / "mlflow.db"


def write_registry_config(path: Path, text: str | None = None) -> Path:
    """Write ``text`` (default: the project's ``mlflow.yaml``) to ``path``; when its tracking URI is a SQLite file
    that does not exist yet, put a copy of an empty MLflow database there. MLflow makes every new store run its
    schema migrations (seconds each, dozens of times a test session); the copy is what they would create."""
    from training.registry import load_config

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((PROJECT / "mlflow.yaml").read_text() if text is None else text)
    uri = load_config(path).tracking_uri
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        if not db.exists():
            db.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_empty_registry(), db)
    return path
