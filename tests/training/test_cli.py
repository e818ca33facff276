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
        for name in ("features", "serve", "abuse", "system", "simulate", "validate", "policy", "churn-data",
                     "policy-scenarios", "scale", "sample-loss")
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


def test_simulate_writes_a_named_scenario_and_rejects_an_unknown_one(tmp_path):
    out = tmp_path / "short"
    result = CliRunner().invoke(app, ["simulate", "--scenario", "short_history", "--customers", "200", "--seed", "2",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"]["scenario"] == "short_history" and manifest["params"]["days"] == 90
    assert manifest["horizon_days"] == 30  # the scenario's, not the command's usual default
    bad = CliRunner().invoke(app, ["simulate", "--scenario", "crm", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "known scenarios: retention" in bad.output
    assert not (tmp_path / "bad").exists()


def test_diagnose_ceiling_churn_puts_model_ceiling_and_oracle_side_by_side(tmp_path):
    data = tmp_path / "world"
    assert CliRunner().invoke(app, ["simulate", "--customers", "1200", "--days", "400", "--seed", "4",
                                    "--out", str(data)]).exit_code == 0
    figures = _run_json(["diagnose", "ceiling", "churn", "--data", str(data)], tmp_path / "ceiling.json")
    assert set(figures) >= {"model", "ceiling", "oracle", "model_minus_ceiling_auc"}
    assert 0.5 < figures["ceiling"]["auc"] <= figures["oracle"]["auc"] + 0.02
    assert 0.5 < figures["model"]["auc"] <= figures["oracle"]["auc"] + 0.02
    wrong = CliRunner().invoke(app, ["diagnose", "ceiling", "uplift", "--data", str(data)])
    assert wrong.exit_code == 2 and "use churn or policy" in wrong.output


@pytest.mark.slow
def test_bench_policy_scenarios_on_a_tiny_matrix(tmp_path):
    """Two scenarios (a campaign world without opens, a 90-day history) at a tiny size: every figure is there."""
    figures = _run_json(["bench", "policy-scenarios", "--customers", "600", "--seeds", "0",
                         "--scenarios", "visit_campaign,short_history", "--n-boot", "20"], tmp_path / "matrix.json")
    assert [c["scenario"] for c in figures["cells"]] == ["visit_campaign", "short_history"]
    for cell in figures["cells"]:
        pol = cell["policy"]
        assert pol["violations_total"] == 0
        assert pol["beats_best_baseline"] == (pol["true_value"] >= pol["best_baseline_value"])
        assert set(pol["baselines"]) >= {"no_contact", "best_single_action", "top_churn_most_opened"}
        assert {"captured_uplift_ratio", "ceiling_captured_uplift_ratio", "dr_contains_truth"} <= set(pol)
        assert set(cell["churn"]) >= {"model", "ceiling", "oracle", "meets_target"}
    assert figures["cells"][0]["scenario_objective"]["objective"] == "visit"
    assert figures["cells"][1]["scenario_objective"] is None and figures["cells"][1]["horizon_days"] == 30
    summary = figures["summary"]
    assert summary["cells"] == 2 and 0 <= summary["dr_coverage"]["share"] <= 1
    assert set(figures["scenarios"]) == {"visit_campaign", "short_history"}
    bad = CliRunner().invoke(app, ["bench", "policy-scenarios", "--scenarios", "nope", "--customers", "300"])
    assert bad.exit_code == 2 and "unknown; known scenarios" in bad.output
