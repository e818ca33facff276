"""The ``engage`` command line: every command and sub-command answers ``--help``; a cheap benchmark runs."""

from __future__ import annotations

import json

import pytest
import typer.main
from typer.core import TyperGroup
from typer.testing import CliRunner

from training.cli import app


def command_paths(group: TyperGroup, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command group of ``group`` as the words that call it (the group itself first)."""
    paths = [prefix]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, TyperGroup):
            paths += command_paths(command, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


COMMANDS = command_paths(typer.main.get_command(app))


def test_every_benchmark_and_diagnostic_is_a_sub_command():
    assert {p for p in COMMANDS if p[:1] in {("bench",), ("diagnose",)} and len(p) == 2} == {
        ("bench", name)
        for name in ("features", "serve", "abuse", "system", "simulate", "validate", "policy", "churn-data")
    } | {("diagnose", "ceiling")}


@pytest.mark.parametrize("words", COMMANDS, ids=lambda words: " ".join(words) or "engage")
def test_help_works(words):
    result = CliRunner().invoke(app, [*words, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def _run_json(args: list[str], path) -> dict:
    result = CliRunner().invoke(app, [*args, "--json", str(path)])
    assert result.exit_code == 0, result.output
    written = json.loads(path.read_text())
    assert json.loads(result.stdout) == written  # what is printed is what is written
    return written


def test_bench_validate_prints_and_writes_its_figures(tmp_path):
    figures = _run_json(["bench", "validate", "--events", "3000", "--seed", "1"], tmp_path / "out" / "validate.json")
    assert figures["events"] == 3000 and figures["customers"] == 30
    assert set(figures["seconds"]) == {
        "typed_sorted", "typed_time_ordered", "text_time_ordered", "write_tables_parquet", "read_tables_parquet"
    }


def test_bench_simulate_prints_and_writes_its_figures(tmp_path):
    figures = _run_json(["bench", "simulate", "--customers", "200", "--days", "60"], tmp_path / "simulate.json")
    assert figures["customers"] == 200 and figures["touchpoints"] > 0 and figures["bytes_written"] > 0


def test_bench_rejects_bad_options():
    result = CliRunner().invoke(app, ["bench", "validate", "--events", "10"])
    assert result.exit_code == 2
