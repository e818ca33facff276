"""The README's walk "Using engage on your own campaign data", run for real: its commands, as written, on a
small randomised e-mail campaign exported as CSV files, reach a chosen policy with its off-policy value."""

from __future__ import annotations

import json
import re
import shlex

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.paths import PROJECT, write_registry_config
from tests.training.test_policy_objectives import write_csv_folder
from training.bench.campaign import randomised_campaign
from training.cli import app

SECTION = "## Using engage on your own campaign data"


def walk_commands() -> list[list[str]]:
    """The ``engage`` commands of the README section's code block, as argument lists."""
    text = (PROJECT / "README.md").read_text()
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    assert len(section.strip().splitlines()) <= 40
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line)[1:] for line in block.splitlines() if line.startswith("engage ")]


@pytest.mark.slow
def test_the_readme_walk_reaches_a_chosen_policy_with_its_off_policy_value(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_csv_folder(randomised_campaign(2500, np.random.default_rng(3)).tables, tmp_path / "campaign")
    write_registry_config(tmp_path / "mlflow.yaml", (PROJECT / "mlflow.yaml").read_text())
    commands = walk_commands()
    assert [c[:2] for c in commands] == [["validate", "--data"], ["evaluate", "policy"], ["train", "policy"]]
    for args in commands:
        if args[:2] == ["train", "policy"]:
            args = [*args, "--config", "mlflow.yaml"]  # the store in this folder, not the project's
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    for name in ("visit.json", "policy.json"):
        report = json.loads((tmp_path / name).read_text())
        assert report["objective"] == "visit" and report["horizon_days"] == 14
        assert report["headline"] and isinstance(report["beats_baselines"], bool)
        assert report["chosen_effect_model"]["name"] in ("plugin", "dr")
        chosen = report["chosen_policy"]
        value = report["off_policy"]["policies"][chosen]["dr"]
        assert value["low"] <= value["value"] <= value["high"]
        assert report["catalogue"]["source"] == "log" and report["dropped_decisions"] == {}
    assert report["mlflow"]["promoted"] == report["beats_baselines"]  # no champion before: the gate decides
