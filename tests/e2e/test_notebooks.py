"""Notebooks hold no logic of their own, but they must keep running against the packages, and they are committed
with their outputs so that they read on a code host without running."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.paths import PROJECT

NOTEBOOKS = sorted((PROJECT / "notebooks").glob("*.ipynb"))
EXPECTED = ("01_data_and_features", "02_churn_experiment", "03_uplift_and_policy", "04_your_own_data")


def test_the_four_notebooks_are_committed_with_their_outputs() -> None:
    assert tuple(p.stem for p in NOTEBOOKS) == EXPECTED
    for path in NOTEBOOKS:
        cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        assert all(c.execution_count is not None for c in cells), f"{path.name}: not executed and saved"
        outputs = [o for c in cells for o in c.get("outputs", [])]
        assert not [o for o in outputs if o.output_type == "error"], f"{path.name}: saved with an error"
        if path.stem != "04_your_own_data":  # without ../shared the real-data notebook only prints a note
            assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name}: no chart"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
