"""The ``engage train``, ``engage evaluate`` and ``engage personas`` commands: model training and evaluation
on a data folder, each printing its figures as JSON on stdout (and writing them with ``--report FILE``), with
progress on stderr. The work lives in ``training.churn``, ``training.policy``, ``training.value``,
``training.personas`` and ``training.starbucks``; heavy imports happen inside each command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from training.cli_common import (
    EXIT_HELP,
    ConfigOption,
    DataOption,
    EngageGroup,
    ModelUriOption,
    QuietOption,
    ReportOption,
    echo_json,
    is_registry_uri,
    load_registered,
    parse_cutoff,
    run_and_echo,
    user_errors,
)
from training.engine.options import EngineOption, MemoryLimitOption, SchedulerOption

train_app = typer.Typer(cls=EngageGroup, help="Train models and register them in MLflow.", no_args_is_help=True,
                        epilog=EXIT_HELP)
evaluate_app = typer.Typer(cls=EngageGroup, help="Evaluate models against held-out data (and the truth, when "
                                                 "simulated).", no_args_is_help=True, epilog=EXIT_HELP)

PolicyOption = Annotated[Path | None, typer.Option(
    help="Decision settings YAML (policy.yaml: caps, budgets, limits, thresholds; default: the packaged one). "
         "Not the MLflow settings: those are --config.")]
CatalogueOption = Annotated[Path | None, typer.Option(
    help="Action catalogue YAML (default: the packaged one, or the logged actions when the log holds others).")]
ObjectiveOption = Annotated[str | None, typer.Option(
    help="What the policy optimises: retention, visit, conversion, spend or margin (default: the policy config's, "
         "retention).")]
HorizonOption = Annotated[int | None, typer.Option(
    min=1, help="Outcome window after each campaign decision, in days (default: the policy config's; 90 for "
                "retention, 14 for the campaign objectives).")]
SampleCustomersOption = Annotated[int | None, typer.Option(
    min=1, help="With --engine dask: train on about this many customers (default: as many as the memory budget "
                "holds for this trainer).")]
SampleSeedOption = Annotated[int, typer.Option(
    min=0, help="With --engine dask: the seed of the customer sample (the same seed keeps the same customers on "
                "every machine; samples of one seed are nested).")]


def sample_request(trainer: str, engine: str, scheduler: str | None, memory_limit: str | None,
                   sample_customers: int | None, sample_seed: int):
    """The engine options of a training command checked together: ``None`` for the local engine, else how to
    sample (``--sample-customers`` and ``--sample-seed`` apply to ``--engine dask`` only)."""
    from training.engine.options import engine_settings
    from training.engine.sampled_read import SampleRequest

    settings = engine_settings(engine, scheduler, memory_limit)
    if not settings.is_dask:
        if sample_customers is not None or sample_seed != 0:
            raise ValueError("--sample-customers and --sample-seed apply to --engine dask only")
        return None
    return SampleRequest(settings, trainer, sample_customers, sample_seed)


CustomerIdsOption = Annotated[
    bool, typer.Option(help="Name the customers of the report's defense examples (never in the copy logged to MLflow).")
]


@train_app.command("churn", epilog=EXIT_HELP)
@user_errors
def train_churn_(
    data: Annotated[Path, typer.Option(help="Data folder (simulated, imported or your own).")],
    config: ConfigOption = None,
    report: ReportOption = None,
    register: Annotated[bool, typer.Option(help="Register the model as challenger and try promotion.")] = True,
    test_data: Annotated[Path | None, typer.Option(
        help="A separate labelled data folder to test on: the report's test_auc and test metrics come from it, "
             "and promotion compares on it.")] = None,
    exclude_attributes: Annotated[str | None, typer.Option(
        help="Customer attributes to leave out, comma-separated (e.g. a split column).")] = None,
    engine: EngineOption = "local",
    scheduler: SchedulerOption = None,
    memory_limit: MemoryLimitOption = None,
    sample_customers: SampleCustomersOption = None,
    sample_seed: SampleSeedOption = 0,
    quiet: QuietOption = False,
) -> None:
    """Train the calibrated churn model at many cutoffs, log it to MLflow, register it, try promotion.

    With --engine dask (a partitioned folder): the Dask workers draw a customer sample sized by the memory
    budget, and the same trainer runs on it here; the report's "sample" says how many of how many."""
    from training.churn.commands import train_churn_command
    from training.churn.experiments import parse_attributes

    sample = sample_request("churn", engine, scheduler, memory_limit, sample_customers, sample_seed)
    run_and_echo(train_churn_command, data, config, report, register=register, test_data=test_data,
                 exclude_attributes=parse_attributes(exclude_attributes), quiet=quiet, sample=sample)


@evaluate_app.command("churn", epilog=EXIT_HELP)
@user_errors
def evaluate_churn_(
    data: Annotated[Path, typer.Option(help="Data folder to evaluate on.")],
    config: ConfigOption = None,
    report: ReportOption = None,
    model_uri: Annotated[str | None, typer.Option(
        help="The churn model or decision system: a registry URI (models:/NAME@ALIAS, models:/NAME/VERSION, "
             "runs:/...; default: the churn champion named in --config).")] = None,
    cutoff: Annotated[str | None, typer.Option(help="Evaluation cutoff (default: the manifest's).")] = None,
    quiet: QuietOption = False,
) -> None:
    """Evaluate a registered churn model: AUC, PR-AUC, Brier, ECE, lift, baselines and (simulated) oracle."""
    from training.churn.commands import evaluate_churn_command

    run_and_echo(evaluate_churn_command, data, config, report, model_uri=model_uri, cutoff=cutoff, quiet=quiet)


@train_app.command("value", epilog=EXIT_HELP)
@user_errors
def train_value_(
    data: Annotated[Path, typer.Option(help="Data folder with purchases (simulated, imported or your own).")],
    horizon_days: Annotated[int | None, typer.Option(
        min=7, help="Value horizon in days (default: 365, or 90 when the data are too short for 365).")] = None,
    config: ConfigOption = None,
    report: ReportOption = None,
    quiet: QuietOption = False,
) -> None:
    """Customer value: BG/NBD + Gamma-Gamma, LightGBM (Tweedie) and their blend, chosen on validation cutoffs and
    judged on later realised spend against the textbook BG/NBD + Gamma-Gamma; logged to MLflow."""
    from training.value.commands import train_value_command

    run_and_echo(train_value_command, data, config, report, horizon_days=horizon_days, notes="progress",
                 quiet=quiet)


@user_errors
def personas_(
    data: DataOption,
    report: ReportOption = None,
    cutoff: Annotated[str | None, typer.Option(
        help="Cutoff (default: the manifest's, else the end of the log).")] = None,
    model_uri: ModelUriOption = None,
    config: ConfigOption = None,
    quiet: QuietOption = False,
) -> None:
    """Personas: 6-12 named micro-segments (k chosen by split-half stability and silhouette) and their profiles.

    With --model-uri, clusters that match that decision system's personas keep their names."""
    from training.personas.commands import personas_command

    system = load_registered(model_uri, config)[0] if model_uri and is_registry_uri(model_uri) else None
    path = Path(model_uri) if model_uri and system is None else None
    run_and_echo(personas_command, data, report, cutoff=parse_cutoff(cutoff), model_path=path, system=system,
                 quiet=quiet)


@train_app.command("policy", epilog=EXIT_HELP)
@user_errors
def train_policy_(
    data: Annotated[Path, typer.Option(help="Data folder with an outreach log.")],
    config: ConfigOption = None,
    report: ReportOption = None,
    policy_config: PolicyOption = None,
    catalogue: CatalogueOption = None,
    objective: ObjectiveOption = None,
    horizon_days: HorizonOption = None,
    register: Annotated[bool, typer.Option(help="Register the decision system as challenger; try promotion.")] = True,
    customer_ids: CustomerIdsOption = False,
    engine: EngineOption = "local",
    scheduler: SchedulerOption = None,
    memory_limit: MemoryLimitOption = None,
    sample_customers: SampleCustomersOption = None,
    sample_seed: SampleSeedOption = 0,
    quiet: QuietOption = False,
) -> None:
    """Learn the next-best-action policy from logged outreach and register features (+ churn) + policy as one unit.

    Promoted to champion only when it beats its baselines (best single action, no contact) with a DR interval
    above zero, and the champion's policy on the same held-out decisions; the report's first line says which.
    With --engine dask: trained on a customer sample sized by the memory budget, as `train churn` is; a churn
    champion trained on another sample of the same partitioned folder counts as trained on the same data.
    """
    from training.policy.commands import train_policy_command
    from training.policy.config import PolicyTrainConfig

    sample = sample_request("policy", engine, scheduler, memory_limit, sample_customers, sample_seed)
    run_and_echo(train_policy_command, data, config, report, policy_config_path=policy_config,
                 catalogue_path=catalogue, objective=objective, horizon_days=horizon_days, register=register,
                 notes="progress", quiet=quiet, train=PolicyTrainConfig(report_customer_ids=customer_ids),
                 sample=sample)


@evaluate_app.command("policy", epilog=EXIT_HELP)
@user_errors
def evaluate_policy_(
    data: Annotated[Path, typer.Option(help="Data folder with an outreach log (and truth, if simulated).")],
    report: ReportOption = None,
    policy_config: PolicyOption = None,
    catalogue: CatalogueOption = None,
    objective: ObjectiveOption = None,
    horizon_days: HorizonOption = None,
    customer_ids: CustomerIdsOption = False,
    quiet: QuietOption = False,
) -> None:
    """Off-policy evaluation (IPS, SNIPS, DR with bootstrap intervals) and, on simulated data, the true value."""
    from training.policy.commands import evaluate_policy_command
    from training.policy.config import PolicyTrainConfig

    run_and_echo(evaluate_policy_command, data, report, policy_config_path=policy_config, catalogue_path=catalogue,
                 objective=objective, horizon_days=horizon_days, notes="progress", quiet=quiet,
                 train=PolicyTrainConfig(report_customer_ids=customer_ids))


@evaluate_app.command("starbucks", epilog=EXIT_HELP)
@user_errors
def evaluate_starbucks_(
    data: Annotated[Path, typer.Option(help="Starbucks dataset folder (../shared/datasets/starbucks) or its import.")],
    report: ReportOption = None,
    seed: Annotated[int, typer.Option(help="Random seed: person split, folds, models and bootstrap.")] = 0,
    quiet: QuietOption = False,
) -> None:
    """Offer policy on the Starbucks log: learned on train persons, DR-valued on held-out persons vs random and
    every single offer."""
    import numpy as np

    from training.cli_progress import progress_bars
    from training.starbucks.evaluate import evaluate_starbucks

    with progress_bars(quiet, logs=True) as bars:
        result = evaluate_starbucks(data, rng=np.random.default_rng(seed), progress=bars.note)
    echo_json(result, report)
