"""The ``retrain:`` section of ``mlflow.yaml``: every threshold of the job's gates, and where it keeps its files.

Read once by the command (:mod:`training.retrain.commands`) and passed down, like the rest of the config.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from features.contract.settings_file import read_yaml


@dataclass(frozen=True)
class Thresholds:
    """When the data gates refuse, when drift is severe, and how the challenger may differ from the champion."""

    # data gates (the profile covers the last ``window_days`` before --as-of)
    window_days: int = 7
    max_staleness_days: float = 2.0        # newest touchpoint at most this long before --as-of
    min_volume_ratio: float = 0.5          # touchpoints and active customers per day >= this x the reference
    min_reference_share: float = 0.01      # a channel or kind carrying at least this share of the reference...
    min_share_ratio: float = 0.2           # ...must keep at least this fraction of its share
    max_missing_increase: float = 0.2      # a column's share of missing values may rise by at most this
    # drift (a warning that forces the retrain, never a refusal)
    psi_severe: float = 0.25
    top_features: int = 10
    # backtest: besides the promotion section's max_ece, max_brier_increase and min_improvement
    max_auc_drop: float = 0.005            # challenger AUC >= champion AUC - this
    max_policy_value_drop: float = 0.0     # policy DR value >= champion's - this (per decision)


@dataclass(frozen=True)
class RetrainSettings:
    """Thresholds, the job's folders, and training overrides for its churn and policy steps."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    work_dir: Path = Path("work/retrain")
    scores_dir: Path = Path("work/scores")
    churn: dict[str, Any] = field(default_factory=dict)
    policy_train: dict[str, Any] = field(default_factory=dict)


def retrain_settings(config_path: str | Path) -> RetrainSettings:
    """The ``retrain:`` section of the config file (defaults where absent); folders relative to the file."""
    path = Path(config_path)
    spec = (read_yaml(path) or {}).get("retrain") or {}
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: retrain must be a mapping")
    known = {f.name for f in fields(Thresholds)} | {"work_dir", "scores_dir", "churn", "policy_train"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(f"{path}: retrain has unknown keys {unknown}")
    base = path.resolve().parent
    thresholds = Thresholds(**{f.name: type(getattr(Thresholds, f.name))(spec[f.name])
                               for f in fields(Thresholds) if f.name in spec})
    return RetrainSettings(
        thresholds=thresholds,
        work_dir=base / str(spec.get("work_dir", "work/retrain")),
        scores_dir=base / str(spec.get("scores_dir", "work/scores")),
        churn=dict(spec.get("churn") or {}),
        policy_train=dict(spec.get("policy_train") or {}),
    )
