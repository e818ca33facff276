"""Settings files: a misspelt ``mlflow.yaml`` key and a YAML syntax error are refused, naming the file and the key
or the line, by every reader (trainers, the service, the policy config, the action catalogue)."""

from __future__ import annotations

import pytest

from features.contract.catalogue import load_catalogue
from features.contract.registry_settings import check_registry_settings
from features.decision.config import load_policy_config
from serving.loading import read_registry_config
from tests.paths import PROJECT
from training.registry import load_config
from training.retrain.settings import retrain_settings

READERS = [load_config, read_registry_config]


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("tracking_url: sqlite:///elsewhere.db\n", "unknown top-level keys ['tracking_url']"),
        ("aliases:\n  champoin: prod\n", "aliases has unknown keys ['champoin']; known: challenger, champion"),
        ("registered_models:\n  sytem: x\n", "registered_models has unknown keys ['sytem']"),
        ("experiments:\n  churn: ''\n", "experiments.churn must be a non-empty name"),
        ("aliases: champion\n", "aliases must be a mapping, got str"),
        ("- tracking_uri\n", "expected a mapping at the top level, got list"),
        ("tracking_uri: [unclosed\n", "not valid YAML at line 2, column 1"),
        ("promotion:\n  max_ece: 0.1\npromotion:\n  max_ece: 0.2\n",
         "line 3, column 1: key 'promotion' is given twice in one mapping"),
    ],
)
def test_a_bad_registry_config_is_refused_naming_what_is_wrong(tmp_path, reader, text, words):
    path = tmp_path / "mlflow.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"mlflow\.yaml") as err:
        reader(path)
    assert words in str(err.value)


def test_the_project_config_and_an_empty_one_are_accepted(tmp_path):
    check_registry_settings(None, "x")
    for reader in READERS:
        reader(PROJECT / "mlflow.yaml")
        (tmp_path / "empty.yaml").write_text("")
        reader(tmp_path / "empty.yaml")
    assert retrain_settings(PROJECT / "mlflow.yaml").work_dir.name == "retrain"


def test_every_experiment_the_commands_log_to_can_be_named(tmp_path):
    path = tmp_path / "mlflow.yaml"
    path.write_text("experiments: {churn: a, policy: b, value: c, retrain: d}\n")
    assert load_config(path).experiments["retrain"] == "d"


def test_trainers_and_the_service_agree_on_the_names_a_file_leaves_out(tmp_path):
    # a churn champion trained under a config without names must be what `engage score` and the service find
    path = tmp_path / "mlflow.yaml"
    path.write_text("tracking_uri: sqlite:///mlflow.db\n")
    trained = load_config(path).registered_models
    assert read_registry_config(path)["names"] == [trained["system"], trained["churn"]]
    path.write_text("registered_models:\n  churn: my-churn\n")
    assert read_registry_config(path)["names"] == [load_config(path).registered_models["system"], "my-churn"]


@pytest.mark.parametrize("reader", [retrain_settings, load_policy_config, load_catalogue])
def test_every_settings_reader_names_the_file_and_line_of_a_syntax_error(tmp_path, reader):
    path = tmp_path / "settings.yaml"
    path.write_text("retrain:\n  window_days: 7\n  max_auc_drop: [0.1\n")
    with pytest.raises(ValueError, match=r"settings.yaml: not valid YAML at line \d+, column \d+"):
        reader(path)
