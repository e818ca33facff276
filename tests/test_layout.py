"""The design card's import rules and the no-side-effects-on-import rule, checked on the source itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import PROJECT as ROOT


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
# scoring step, the service load test and its trivial floor service (which spreads connections over its
# workers as the service does), and the Dask engine of engage score (which runs the batch scoring on each
# partition). Everything else in training stays independent of the service.
SERVING_IMPORTERS = ("training/cli.py", "training/demo.py", "training/bench/serve.py",
                     "training/bench/floor_service.py", "training/engine/commands.py", "training/engine/scoring.py")


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


PACKAGES = ("features", "training", "serving")
MAX_LINES = 500


def source_files() -> list[Path]:
    return [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_source_file_is_over_the_size_cap() -> None:
    long = {str(p.relative_to(ROOT)): n for p in source_files() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines (split them by idea): {long}"


def project_imports(path: Path, known: set[str]) -> set[str]:
    """Project modules a file imports, anywhere in it (function bodies included), resolved to known modules."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for name in targets:
            # the longest known module that the imported name starts with
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name.split(".")[0] in PACKAGES:
                found.add(name)
    found.discard(module_name(path))
    return found


def import_graph() -> dict[str, set[str]]:
    files = source_files()
    known = {module_name(p) for p in files}
    # a package's __init__ is not an edge worth following when it is empty
    empty = {module_name(p) for p in files if p.name == "__init__.py" and not p.read_text().strip()}
    return {module_name(p): project_imports(p, known) - empty for p in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a path that returns to its start), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_find_cycle_finds_a_cycle_and_accepts_a_tree() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles_counting_imports_inside_functions() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"
