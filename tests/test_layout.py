"""The design card's import rules and the no-side-effects-on-import rule, checked on the source itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(package: str) -> dict[str, set[str]]:
    """Top-level modules imported (anywhere, including inside functions) by each file of a package."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("features", {"mlflow", "bentoml", "training", "serving"}), ("serving", {"training"})],
)
def test_import_rules(package: str, forbidden: set[str]) -> None:
    offenders = {f: sorted(mods & forbidden) for f, mods in imported_modules(package).items() if mods & forbidden}
    assert not offenders, f"{package} must not import {sorted(forbidden)}: {offenders}"


def test_importing_packages_has_no_side_effects(tmp_path: Path) -> None:
    """Importing every module writes no file and loads neither MLflow nor BentoML from features."""
    modules = [
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for pkg in ("features", "training", "serving")
        for p in sorted((ROOT / pkg).rglob("*.py"))
        if p.name != "__main__.py"
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    if m.startswith('features'):\n"
        "        importlib.import_module(m)\n"
        "assert 'mlflow' not in sys.modules and 'bentoml' not in sys.modules, 'features pulled in mlflow/bentoml'\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
    )
    before = set(tmp_path.iterdir())
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=300)
    assert set(tmp_path.iterdir()) == before, "importing the packages created files in the working folder"


# training may import serving only where it starts or drives the service: the CLI (serve, score), the demo's
# scoring step and the service load test. Everything else in training stays independent of the service.
SERVING_IMPORTERS = ("training/cli.py", "training/demo.py", "training/bench/serve.py")


@pytest.mark.parametrize(("package", "forbidden", "allowed"), [("training", {"serving"}, SERVING_IMPORTERS)])
def test_import_rules_with_named_exceptions(package: str, forbidden: set[str], allowed: tuple[str, ...]) -> None:
    missing = [f for f in allowed if not (ROOT / f).is_file()]
    assert not missing, f"allowed importers that no longer exist: {missing}"
    offenders = {
        f: sorted(mods & forbidden)
        for f, mods in imported_modules(package).items()
        if mods & forbidden and f not in allowed
    }
    assert not offenders, f"in {package}, only {list(allowed)} may import {sorted(forbidden)}: {offenders}"
