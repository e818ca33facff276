"""``engage train policy`` and ``engage evaluate policy``: train the policy on a data folder and report on it.

Training builds on the churn champion's pipeline and model when the objective needs it or it was trained on
the same data (:mod:`training.policy.inputs`), registers the whole decision system as one unit, and promotes
it only as the policy gate says (:mod:`training.policy.gate`). Evaluation needs no MLflow (a freshly fitted
pipeline, the report only). Both take the objective and the outcome window from the policy config, with the
command line's ``--objective`` and ``--horizon-days`` on top.
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
from training.policy.rows import report_progress
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


def policy_settings(path=None, objective: str | None = None, horizon_days: int | None = None) -> PolicyConfig:
    """The decision settings: the policy config file (default: the packaged one) with the command line's
    ``--objective`` and ``--horizon-days`` winning over it."""
    from features.decision.config import load_policy_config

    return load_policy_config(path, overrides={"objective": objective, "horizon_days": horizon_days})


def _log_run(
    report: dict, model: NextBestAction, train: PolicyTrainConfig, pconfig: PolicyConfig, churn_uri: str | None
) -> None:
    """Parameters, headline metrics, the report, its charts and the uplift curve, into the active MLflow run."""
    import mlflow

    mlflow.log_params({f"train.{k}": v for k, v in asdict(train).items()})
    mlflow.log_params(
        {
            "policy.min_incremental_value": model.config.min_incremental_value,
            "policy.epsilon": pconfig.epsilon,
            "policy.objective": pconfig.objective,
            "policy.horizon_days": pconfig.horizon_days,
            "effect_model": report["chosen_effect_model"]["name"],
            "churn_model": churn_uri or "none",
        }
    )
    mlflow.log_metrics({"beats_baselines": float(report["beats_baselines"])})
    mlflow.set_tags({"policy.headline": report["headline"][:4000], "policy.chosen": report["chosen_policy"]})
    log_report(report)


def _publish(config, system, model, report: dict, train: PolicyTrainConfig, pconfig: PolicyConfig, churn_uri: str,
             register: bool, data: tuple[dict, str | None], decide=None) -> dict | None:
    """Log the run (``data``: the data's fingerprint and source) and register the system (retried while the
    registry is locked)."""
    from features.contract.errors import retry_while_busy
    from training.run_info import log_data_input
    from training.runs import tracked_run

    def attempt() -> dict | None:
        with tracked_run(config, "policy", "policy"):
            log_data_input(*data)
            _log_run(report, model, train, pconfig, churn_uri)
            return register_system(config, system, report, churn_uri, data[0], decide) if register else None

    return retry_while_busy(attempt, seconds=config.busy_retry_seconds, what="registering the decision system",
                            where=config.tracking_uri)


def _champion_personas(config):
    """The personas of the registered decision-system champion (None when there is none or it has none)."""
    from training.registry import load_decision_system

    name = config.registered_models.get("system", "engage-decision-system")
    try:
        return getattr(load_decision_system(f"models:/{name}@{config.champion}"), "personas", None)
    except Exception:  # no champion yet (first run) or an unreadable one: personas get fresh names
        return None


def _with_parts(report: dict, tables: Tables, model, pipeline, pconfig: PolicyConfig, seed: int, previous=None):
    """The value model and personas for the system, and the policy's figures by persona in the report."""
    from features.contract.cutoffs import evaluation_cutoff
    from training.personas.system_parts import policy_by_persona, system_parts
    from training.policy.rows import features_at

    cutoff = evaluation_cutoff(tables)
    F = features_at(tables.without_truth(), cutoff, pipeline)
    parts = system_parts(tables, cutoff, F, pipeline, model, pconfig, previous, seed)
    report["by_persona"] = policy_by_persona(parts, model, tables, F, cutoff, pconfig)
    report["system_parts"] = {"value_model": parts.value_model is not None, "personas": parts.personas is not None,
                              **parts.notes}
    return parts


def train_policy_command(
    data,
    config_path=None,
    report_path=None,
    *,
    policy_config_path=None,
    catalogue_path=None,
    objective: str | None = None,
    horizon_days: int | None = None,
    register: bool = True,
    train: PolicyTrainConfig | None = None,
    progress: Callable[[str], None] | None = None,
    churn_alias: str | None = None,
    decide=None,
    sample=None,
) -> dict:
    """``engage train policy``: train on a data folder, log to MLflow, register the decision system.

    The feature pipeline and churn model come from the churn champion when the objective needs it (retention)
    or it was trained on the same data; otherwise a pipeline is fitted here and the system has no churn
    model. The whole decision system is registered as one unit under ``registered_models.system`` with the
    challenger alias, and becomes champion only when the policy gate says so. When registering fails, the
    system is saved locally and the error names the ``engage register`` command that finishes the job.
    ``churn_alias`` builds on another alias of the churn model, ``decide`` replaces the gate's promotion rule
    (both for ``engage retrain``, which decides after its own backtest). ``sample``: a
    :class:`training.engine.sampled_read.SampleRequest` (``--engine dask``): train on a customer sample of a
    partitioned folder sized by the memory budget (``report["sample"]``).
    """
    import mlflow

    from features.system import DecisionSystem
    from training.churn.tracking import data_fingerprint
    from training.policy.inputs import champion_policy, choose_catalogue, foundation
    from training.registry import load_config
    from training.unregistered import keep_on_failure, prepare_registry

    config = load_config(config_path)
    mlflow.set_tracking_uri(config.tracking_uri)
    prepare_registry(config)
    pconfig = policy_settings(policy_config_path, objective, horizon_days)
    source = tables_source(Path(data), sample)
    tables = source.get()
    cat = choose_catalogue(catalogue_path, tables, progress)
    base = foundation(config, pconfig, tables, str(data), churn_alias)
    report_progress(progress, f"policy: {base.note}")
    pipeline = base.pipeline or fitted_pipeline(tables)
    scenarios = default_scenarios(pconfig, tables)
    del tables  # the trainer lets go of them while it fits (see training.policy.source)
    model, report = train_and_evaluate(
        source,
        cat.catalogue,
        pconfig,
        train or PolicyTrainConfig(),
        pipeline=pipeline,
        scenarios=scenarios,
        champion=champion_policy(config) if register else None,
        progress=progress,
    )
    tables = source.get()
    report = _with_inputs(report, cat, base.note)
    if "sample" in tables.meta:
        report["sample"] = tables.meta["sample"]
    seed = (train or PolicyTrainConfig()).seed
    parts = _with_parts(report, tables, model, pipeline, pconfig, seed, _champion_personas(config))
    system = DecisionSystem(
        pipeline,
        base.churn_model,
        policy=model,
        metadata={**base.metadata, "policy": report["method"], "objective": pconfig.objective},
        value_model=parts.value_model,
        personas=parts.personas,
    )
    fp = data_fingerprint(tables, Path(data).name, {"test": report["scenarios"]["configured"]["cutoff"]})
    pending = {"kind": "system", "data": str(Path(data).resolve()), "churn_uri": base.churn_uri, "fingerprint": fp,
               "report": without_customer_ids(report)}
    with keep_on_failure(config, system, pending, config_path):
        report["mlflow"] = _publish(config, system, model, report, train or PolicyTrainConfig(), pconfig,
                                    base.churn_uri, register, (fp, tables.meta.get("source")), decide)
    if report_path is not None:
        write_json(report_path, report)
    return report


def tables_source(data: Path, sample=None):
    """The folder's tables as a :class:`training.policy.source.TablesSource`: read again when needed, except a
    customer sample drawn on Dask (``sample``), which is held (a second draw would start a cluster again)."""
    from training.engine.sampled_read import training_tables
    from training.policy.source import TablesSource

    if sample is not None and sample.engine.is_dask:
        return TablesSource(tables=training_tables(data, sample))
    return TablesSource(lambda: training_tables(data, None))


def fitted_pipeline(tables: Tables):
    """A feature pipeline fitted on the folder at its evaluation cutoff (a policy without a churn champion)."""
    from features.builders.pipeline import FeaturePipeline
    from features.contract.cutoffs import evaluation_cutoff

    cutoff = evaluation_cutoff(tables)
    if cutoff is None:
        raise ValueError("touchpoints: the log is empty, so there is no cutoff to fit the feature pipeline at")
    return FeaturePipeline().fit(tables.without_truth(), cutoff=cutoff)


def _with_inputs(report: dict, cat, churn_note: str | None) -> dict:
    """The report with where the catalogue and churn model came from, after the headline keys."""
    head = {k: report[k] for k in ("headline", "beats_baselines", "fallback", "chosen_policy") if k in report}
    inputs = {"catalogue": cat.report(), "churn_model": churn_note}
    warnings = [*cat.warnings, *(w for w in report.get("warnings", []) if w not in cat.warnings)]
    return {**head, **inputs, **report, "warnings": warnings}


def evaluate_policy_command(
    data,
    report_path=None,
    *,
    policy_config_path=None,
    catalogue_path=None,
    objective: str | None = None,
    horizon_days: int | None = None,
    train: PolicyTrainConfig | None = None,
    progress: Callable[[str], None] | None = None,
    by_persona: bool = True,
) -> dict:
    """``engage evaluate policy --data DIR --report FILE.json``: train on the log, evaluate, write the report.

    Needs no MLflow: the policy is trained from the folder's outreach log with a freshly fitted feature
    pipeline, evaluated off-policy on held-out customers and, for simulated data, against the truth.
    """
    from training.policy.inputs import choose_catalogue

    source = tables_source(Path(data))
    tables = source.get()
    pconfig = policy_settings(policy_config_path, objective, horizon_days)
    cat = choose_catalogue(catalogue_path, tables, progress)
    train = train or PolicyTrainConfig()
    pipeline = fitted_pipeline(tables)
    scenarios = default_scenarios(pconfig, tables)
    del tables  # let go of while the models fit (see training.policy.source)
    model, report = train_and_evaluate(
        source, cat.catalogue, pconfig, train, pipeline=pipeline, scenarios=scenarios, progress=progress
    )
    tables = source.get()
    report = _with_inputs(report, cat, None)
    if by_persona:
        _with_parts(report, tables, model, pipeline, pconfig, train.seed)
    head = {k: report[k] for k in ("headline", "beats_baselines", "fallback", "chosen_policy")}
    report = {**head, **summarise(report), **report}
    if report_path is not None:
        write_json(report_path, report)
    return report
