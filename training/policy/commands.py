"""``engage train policy`` and ``engage evaluate policy``: train the policy on a data folder and report on it.

Training adds the policy to the churn champion's pipeline and model and registers the whole decision system
as one unit; evaluation needs no MLflow (a freshly fitted pipeline, the report only).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from features.contract.schema import Tables
from features.decision.config import PolicyConfig
from features.decision.nba import NextBestAction
from training.policy.config import PolicyTrainConfig
from training.policy.plots import policy_plot, uplift_plot
from training.policy.summary import flat_metrics, summarise
from training.policy.train import train_and_evaluate
from training.report import write_json


def default_scenarios(config: PolicyConfig, tables: Tables) -> dict[str, PolicyConfig]:
    """The configured limits, and a binding one: a budget of 0.5 x customers currency units, calls <= 1 %."""
    n = len(tables.customers)
    return {
        "configured": config,
        "budget": config.with_limits(
            budget=0.5 * n, per_channel={**config.limits.per_channel, "call": max(1, n // 100)}
        ),
    }


def _churn_champion(config):
    """The churn champion's URI and decision system (its pipeline and churn model carry the policy)."""
    from training.registry import load_decision_system

    churn_uri = f"models:/{config.registered_models.get('churn', 'engage-churn')}@{config.champion}"
    try:
        return churn_uri, load_decision_system(churn_uri)
    except Exception as exc:
        raise ValueError(f"no churn champion at {churn_uri}: run `engage train churn` first ({exc})") from exc


def _log_run(
    report: dict, model: NextBestAction, train: PolicyTrainConfig, pconfig: PolicyConfig, churn_uri: str
) -> None:
    """Parameters, headline metrics, the report, its charts and the uplift curve, into the active MLflow run."""
    import mlflow

    mlflow.log_params({f"train.{k}": v for k, v in asdict(train).items()})
    mlflow.log_params(
        {
            "policy.min_incremental_value": model.config.min_incremental_value,
            "policy.epsilon": pconfig.epsilon,
            "churn_model": churn_uri,
        }
    )
    mlflow.log_metrics(flat_metrics(report))
    with tempfile.TemporaryDirectory() as tmp:
        write_json(Path(tmp) / "policy_report.json", report)
        policy_plot(report, Path(tmp) / "policy_value.png")
        uplift_plot(report, Path(tmp) / "uplift_curve.png")
        write_json(Path(tmp) / "uplift_curve.json", report["uplift_curve"])
        mlflow.log_artifacts(tmp)


def _champion_personas(config):
    """The personas of the registered decision-system champion (None when there is none or it has none)."""
    from training.registry import load_decision_system

    name = config.registered_models.get("system", "engage-decision-system")
    try:
        return getattr(load_decision_system(f"models:/{name}@{config.champion}"), "personas", None)
    except Exception:  # no champion yet (first run) or an unreadable one: personas get fresh names
        return None


def _with_parts(report: dict, tables: Tables, model: NextBestAction, pipeline, pconfig: PolicyConfig,
                train: PolicyTrainConfig, previous=None):
    """The value model and personas for the system, and the policy's figures by persona in the report."""
    from features.contract.cutoffs import evaluation_cutoff
    from training.personas.system_parts import policy_by_persona, system_parts
    from training.policy.rows import features_at

    cutoff = evaluation_cutoff(tables)
    F = features_at(tables.without_truth(), cutoff, pipeline)
    parts = system_parts(tables, cutoff, F, pipeline, model, pconfig, previous, train.seed)
    report["by_persona"] = policy_by_persona(parts, model, tables, F, cutoff, pconfig)
    report["system_parts"] = {"value_model": parts.value_model is not None, "personas": parts.personas is not None,
                              **parts.notes}
    return parts


def _register(config, system, tables: Tables, report: dict, churn_uri: str) -> dict:
    """Register the decision system as a challenger; promoted under the churn model's rules."""
    from training.churn.tracking import recorded_metrics
    from training.registry import input_example, log_decision_system, register_and_promote

    name = config.registered_models.get("system", "engage-decision-system")
    info = log_decision_system(
        system,
        example=input_example(tables),
        cutoff=report["scenarios"]["configured"]["cutoff"],
        registered_model_name=name,
    )
    return register_and_promote(
        config,
        info,
        challenger_metrics=recorded_metrics(config, churn_uri),
        champion_metrics_fn=lambda uri: recorded_metrics(config, uri),
        model_key="system",
    )


def train_policy_command(
    data,
    config_path=None,
    report_path=None,
    *,
    policy_config_path=None,
    catalogue_path=None,
    register: bool = True,
    train: PolicyTrainConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """``engage train policy``: train on a data folder, log to MLflow, register the decision system.

    The feature pipeline and churn model come from the churn champion (``engage train churn`` first);
    the policy is added to them and the whole decision system is registered as one unit under
    ``registered_models.system`` with the challenger alias, promoted to champion under the same rules.
    """
    import mlflow

    from features.contract.catalogue import load_catalogue
    from features.decision.config import load_policy_config
    from features.sources.io import read_tables
    from features.system import DecisionSystem
    from training.registry import experiment_id, load_config

    config = load_config(config_path)
    mlflow.set_tracking_uri(config.tracking_uri)
    tables = read_tables(Path(data))
    catalogue = load_catalogue(catalogue_path)
    pconfig = load_policy_config(policy_config_path)
    train = train or PolicyTrainConfig()
    churn_uri, churn_system = _churn_champion(config)
    model, report = train_and_evaluate(
        tables,
        catalogue,
        pconfig,
        train,
        pipeline=churn_system.pipeline,
        scenarios=default_scenarios(pconfig, tables),
        progress=progress,
    )
    parts = _with_parts(report, tables, model, churn_system.pipeline, pconfig, train, _champion_personas(config))
    system = DecisionSystem(
        churn_system.pipeline,
        churn_system.churn_model,
        policy=model,
        metadata={**churn_system.metadata, "policy": report["method"]},
        value_model=parts.value_model,
        personas=parts.personas,
    )
    registry = None
    with mlflow.start_run(experiment_id=experiment_id(config, "policy"), run_name="policy"):
        _log_run(report, model, train, pconfig, churn_uri)
        if register:
            registry = _register(config, system, tables, report, churn_uri)
    report["mlflow"] = registry
    if report_path is not None:
        write_json(report_path, report)
    return report


def evaluate_policy_command(
    data,
    report_path=None,
    *,
    policy_config_path=None,
    catalogue_path=None,
    train: PolicyTrainConfig | None = None,
    progress: Callable[[str], None] | None = None,
    by_persona: bool = True,
) -> dict:
    """``engage evaluate policy --data DIR --report FILE.json``: train on the log, evaluate, write the report.

    Needs no MLflow: the policy is trained from the folder's outreach log with a freshly fitted feature
    pipeline, evaluated off-policy on held-out customers and, for simulated data, against the truth.
    """
    from features.contract.catalogue import load_catalogue
    from features.decision.config import load_policy_config
    from features.sources.io import read_tables

    tables = read_tables(Path(data))
    catalogue = load_catalogue(catalogue_path)
    pconfig = load_policy_config(policy_config_path)
    from features.builders.pipeline import FeaturePipeline
    from features.contract.cutoffs import evaluation_cutoff

    train = train or PolicyTrainConfig()
    pipeline = FeaturePipeline().fit(tables.without_truth(), cutoff=evaluation_cutoff(tables))
    model, report = train_and_evaluate(
        tables,
        catalogue,
        pconfig,
        train,
        pipeline=pipeline,
        scenarios=default_scenarios(pconfig, tables),
        progress=progress,
    )
    if by_persona:
        _with_parts(report, tables, model, pipeline, pconfig, train)
    report = {**summarise(report), **report}
    if report_path is not None:
        write_json(report_path, report)
    return report
