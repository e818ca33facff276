"""Where the project and the real datasets are, for tests in any sub-folder."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared" / "datasets"


def needs_shared(test):
    """Mark a test as reading ../shared/datasets and skip it when that folder is absent."""
    skip = pytest.mark.skipif(not SHARED.exists(), reason=f"{SHARED} not present (real public datasets)")
    return pytest.mark.shared(skip(test))
