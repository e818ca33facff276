"""The command line's surface: the committed command reference is the one the commands generate, one name per
option across commands (old names still work, with a warning), and ``engage --version``."""

from __future__ import annotations

import importlib.metadata as md
import json

import pytest
import typer.main
from typer.testing import CliRunner

from tests.paths import PROJECT
from training.cli import app
from training.cli_common import DEPRECATED_OPTIONS
from training.cli_docs import command_reference


def test_committed_reference_is_what_the_commands_generate() -> None:
    committed = (PROJECT / "docs" / "cli.md").read_text()
    assert committed == command_reference(app), "docs/cli.md is stale: run `engage docs > docs/cli.md`"


def test_engage_docs_prints_the_reference() -> None:
    result = CliRunner().invoke(app, ["docs"])
    assert result.exit_code == 0 and result.stdout == command_reference(app)


def test_version_comes_from_the_installed_distribution() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"engage {md.version('engage')}"


def _options() -> dict[str, set[str]]:
    """Every visible option name of every command."""
    found: dict[str, set[str]] = {}

    def walk(command, path: str) -> None:
        if hasattr(command, "list_commands"):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}".strip())
            return
        found[path] = {o for p in command.params if not getattr(p, "hidden", False)
                       for o in (*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ()))}

    walk(typer.main.get_command(app), "")
    return found


def test_one_name_per_option_across_commands() -> None:
    options = _options()
    for command, names in options.items():
        assert not names & set(DEPRECATED_OPTIONS), (command, names & set(DEPRECATED_OPTIONS))
    for command in ("score", "features", "serve", "personas", "register", "evaluate churn", "bench serve",
                    "bench abuse", "bench system", "diagnose ceiling"):
        assert "--model-uri" in options[command], command
    for command, names in options.items():
        if command.startswith(("bench", "diagnose", "train", "evaluate")) or command == "personas":
            assert "--report" in names, command
    assert "--data" in options["validate"]
    long_running = ("simulate", "validate", "import", "features", "score", "demo", "personas", "train churn",
                    "train value", "train policy", "evaluate churn", "evaluate policy", "evaluate starbucks")
    assert all("--quiet" in options[c] for c in long_running)


def test_config_and_policy_config_say_which_file_they_are() -> None:
    policy = typer.main.get_command(app).commands["train"].commands["policy"]
    helps = {p.opts[0]: " ".join(p.help.split()) for p in policy.params if getattr(p, "opts", None)}
    assert "MLflow settings YAML" in helps["--config"]
    assert "Not the decision settings: those are --policy-config" in helps["--config"]
    assert helps["--policy-config"].startswith("Decision settings YAML (policy.yaml")
    assert "Not the MLflow settings: those are --config" in helps["--policy-config"]


def test_old_option_names_still_work_and_warn(tmp_path) -> None:
    result = CliRunner().invoke(app, ["bench", "validate", "--events", "1000", "--no-io", "--json",
                                      str(tmp_path / "b.json")])
    assert result.exit_code == 0, result.stderr
    assert "--json is deprecated; use --report" in result.stderr
    assert json.loads((tmp_path / "b.json").read_text())["events"] == 1000
    assert json.loads(result.stdout)["events"] == 1000  # stdout is the JSON alone


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli") / "data"
    result = CliRunner().invoke(app, ["simulate", "--out", str(folder), "--customers", "60", "--days", "90"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""  # no progress output without a terminal
    json.loads(result.stdout)
    return folder


def test_validate_takes_data_and_the_former_positional(small_data) -> None:
    new = CliRunner().invoke(app, ["validate", "--data", str(small_data)])
    old = CliRunner().invoke(app, ["validate", str(small_data)])
    assert new.exit_code == old.exit_code == 0
    assert new.stdout.splitlines()[:-1] == old.stdout.splitlines()[:-1]  # the last line is the time it took
    assert new.stdout.startswith("valid:") and "bare argument is deprecated" in old.stderr


def test_overwrite_refusal_names_the_flags(small_data) -> None:
    result = CliRunner().invoke(app, ["simulate", "--out", str(small_data), "--customers", "60", "--days", "90"])
    assert result.exit_code == 2
    assert f"--out {small_data} exists and is not empty; pass --overwrite to replace it" in result.stderr


def test_features_write_their_cutoff_and_json_only_on_stdout(small_data, tmp_path) -> None:
    import pandas as pd

    out = tmp_path / "f.csv"
    result = CliRunner().invoke(app, ["features", "--data", str(small_data), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    table = pd.read_csv(out)
    assert table.columns[:2].tolist() == ["customer_id", "cutoff"]
    assert (pd.to_datetime(table["cutoff"]) == pd.Timestamp(summary["cutoff"])).all()
    assert summary["cutoff_source"] == "the manifest's cutoff" and summary["pipeline"] == "fitted on --data"
