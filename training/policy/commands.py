"""``engage train policy`` and ``engage evaluate policy``: train the policy on a data folder and report on it.

Training adds the policy to the churn champion's pipeline and model and registers the whole decision system
as one unit; evaluation needs no MLflow (a freshly fitted pipeline, the report only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from features.contract.schema import Tables
from features.decision.config import PolicyConfig
from features.decision.nba import NextBestAction
from training.policy.config import PolicyTrainConfig
from training.policy.registration import log_report, register_system, without_customer_ids
from training.policy.summary import summarise
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
    from features.contract.errors import ModelNotFoundError, retry_while_busy
    from training.registry import load_decision_system

    churn_uri = f"models:/{config.registered_models.get('churn', 'engage-churn')}@{config.champion}"
    try:
        system = retry_while_busy(
            lambda: load_decision_system(churn_uri), seconds=config.busy_retry_seconds,
            what="loading the churn champion", where=config.tracking_uri,
        )
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(
            f"no churn champion at {churn_uri} in {config.tracking_uri}: run `engage train churn` first"
        ) from exc
    return churn_uri, system


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
    log_report(report)


def _publish(config, system, model, report: dict, train: PolicyTrainConfig, pconfig: PolicyConfig, churn_uri: str,
             register: bool, data: tuple[dict, str | None]) -> dict | None:
    """Log the run (``data``: the data's fingerprint and source) and register the system (retried while the
    registry is locked)."""
    from features.contract.errors import retry_while_busy
    from training.run_info import log_data_input
    from training.runs import tracked_run

    def attempt() -> dict | None:
        with tracked_run(config, "policy", "policy"):
            log_data_input(*data)
            _log_run(report, model, train, pconfig, churn_uri)
            return register_system(config, system, report, churn_uri, data[0]) if register else None

    return retry_while_busy(attempt, seconds=config.busy_retry_seconds, what="registering the decision system",
                            where=config.tracking_uri)


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
    ``registered_models.system``, promoted to champion under the same rules. When registering fails, the
    system is saved locally and the error names the ``engage register`` command that finishes the job.
    """
    import mlflow

    from features.contract.catalogue import load_catalogue
    from features.decision.config import load_policy_config
    from features.sources.io import read_tables
    from features.system import DecisionSystem
    from training.churn.tracking import data_fingerprint
    from training.registry import load_config
    from training.unregistered import keep_on_failure, prepare_registry

    config = load_config(config_path)
    mlflow.set_tracking_uri(config.tracking_uri)
    prepare_registry(config)
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
    fp = data_fingerprint(tables, Path(data).name, {"test": report["scenarios"]["configured"]["cutoff"]})
    pending = {"kind": "system", "data": str(Path(data).resolve()), "churn_uri": churn_uri, "fingerprint": fp,
               "report": without_customer_ids(report)}
    with keep_on_failure(config, system, pending, config_path):
        report["mlflow"] = _publish(config, system, model, report, train, pconfig, churn_uri, register,
                                    (fp, tables.meta.get("source")))
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
