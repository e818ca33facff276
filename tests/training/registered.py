"""A churn model and a decision system trained on a small simulated world and registered in a temporary store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from features.sources.io import read_tables, write_tables
from tests.paths import PROJECT, write_registry_config
from training.churn.split import ChurnSettings
from training.churn.tracking import log_churn_run
from training.churn.train import train_churn
from training.policy.commands import train_policy_command
from training.policy.config import PolicyTrainConfig
from training.registry import load_config


@dataclass(frozen=True)
class Registration:
    config: object
    config_file: Path
    data: Path
    churn: dict  # log_churn_run's answer
    report: dict  # the policy report, with its registration under "mlflow"


def register_churn_and_policy(folder: Path, world, dataset: str, report_path: Path | None = None) -> Registration:
    """Write ``world`` to ``folder/data``, train, log and register the churn model, then the decision system."""
    write_tables(world, folder / "data")
    cfg_file = folder / "mlflow.yaml"
    write_registry_config(cfg_file, (PROJECT / "mlflow.yaml").read_text())
    config = load_config(cfg_file)
    settings = ChurnSettings(max_train_cutoffs=2)
    churn = train_churn(world, settings, np.random.default_rng(1), dataset=dataset)
    tables = read_tables(folder / "data")  # as a user's run reads it: the folder is the dataset's source
    churn_out = log_churn_run(churn, tables, config, settings, dataset=dataset)
    train = PolicyTrainConfig(max_campaigns=3, outcome_estimators=30, effect_estimators=20, n_boot=30, seed=1)
    report = train_policy_command(folder / "data", cfg_file, report_path, train=train)
    return Registration(config, cfg_file, folder / "data", churn_out, report)
