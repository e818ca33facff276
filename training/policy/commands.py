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
from training.policy.plots import policy_plot, qini_plot, uplift_plot
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
        qini_plot(report, Path(tmp) / "qini_curve.png")
        write_json(Path(tmp) / "uplift_curve.json", report["uplift_curve"])
        mlflow.log_artifacts(tmp)


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


def version_description(report: dict, fingerprint: dict, churn_uri: str, promotion: dict) -> str:
    """What a registered decision-system version is: data, cutoff, churn model, held-out value and promotion."""
    from training.run_info import data_summary

    learned = report["off_policy"]["policies"].get("learned", {}).get("dr_incremental", {})
    q = report.get("qini", {})
    return (
        f"Decision system: next-best-action policy ({report['method']}) on the churn model {churn_uri}, trained "
        f"on {data_summary(fingerprint)}, decisions at cutoff {report['scenarios']['configured']['cutoff']}. "
        f"Held-out DR incremental value per decision {learned.get('value', float('nan')):.4f} (95 % CI "
        f"{learned.get('low', float('nan')):.4f} to {learned.get('high', float('nan')):.4f}); AUUC "
        f"{q.get('auuc', float('nan')):.4f}, Qini coefficient {q.get('qini_coefficient', float('nan')):.4f}. "
        f"Promotion: {'promoted to champion' if promotion['promoted'] else 'not promoted'} ({promotion['reason']})."
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
    from training.churn.tracking import data_fingerprint
    from training.registry import experiment_id, load_config
    from training.run_info import describe_version, log_data_input

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
    system = DecisionSystem(
        churn_system.pipeline,
        churn_system.churn_model,
        policy=model,
        metadata={**churn_system.metadata, "policy": report["method"]},
    )
    registry = None
    with mlflow.start_run(experiment_id=experiment_id(config, "policy"), run_name="policy"):
        fp = data_fingerprint(tables, Path(data).name, {"test": report["scenarios"]["configured"]["cutoff"]})
        log_data_input(fp, tables.meta.get("source"))
        _log_run(report, model, train, pconfig, churn_uri)
        if register:
            registry = _register(config, system, tables, report, churn_uri)
            text = version_description(report, fp, churn_uri, registry)
            describe_version(config, "system", registry["version"], text)
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
    _, report = train_and_evaluate(
        tables,
        catalogue,
        pconfig,
        train or PolicyTrainConfig(),
        scenarios=default_scenarios(pconfig, tables),
        progress=progress,
    )
    report = {**summarise(report), **report}
    if report_path is not None:
        write_json(report_path, report)
    return report
