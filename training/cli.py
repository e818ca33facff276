"""The ``engage`` command line: one command per stage, I/O at the edge.

Heavy libraries (MLflow, BentoML, LightGBM) are imported inside the commands that need them, so
``engage --help`` and the data commands start quickly. Configuration is read here, once, and passed down.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from training.cli_bench import bench_app, diagnose_app
from training.cli_common import (
    EXIT_HELP,
    ConfigOption,
    ModelPathOption,
    ReportOption,
    WorkersOption,
    echo_json,
    enable_progress,
    parse_cutoff,
    run_and_echo,
    user_errors,
)
from training.retrain.exits import EXIT_STATUSES as RETRAIN_EXIT_STATUSES

app = typer.Typer(
    help="engage: engagement & intent features, churn prediction and next-best-action outreach for CRMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    epilog=EXIT_HELP,
)
train_app = typer.Typer(help="Train models and register them in MLflow.", no_args_is_help=True, epilog=EXIT_HELP)
evaluate_app = typer.Typer(help="Evaluate models against held-out data (and the truth, when simulated).",
                           no_args_is_help=True, epilog=EXIT_HELP)
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")
app.add_typer(bench_app, name="bench")
app.add_typer(diagnose_app, name="diagnose")

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def setup_environment() -> None:
    """Keep MLflow and BentoML quiet and their state inside the project's work folder.

    Called by the entry point only (importing this module changes nothing).
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    os.environ.setdefault("BENTOML_HOME", str(Path.cwd() / "work" / "bentoml"))


# --------------------------------------------------------------------------------------------- data


@app.command()
@user_errors
def simulate(
    out: Annotated[Path, typer.Option(help="Data folder to write (must not exist or be empty).")],
    customers: Annotated[int, typer.Option(min=10, help="Number of customers.")] = 20_000,
    days: Annotated[int | None, typer.Option(
        min=60, help="Days of history before the evaluation cutoff (default: the scenario's; 365).")] = None,
    horizon_days: Annotated[int | None, typer.Option(
        min=7, help="Churn horizon simulated after the cutoff (default: the scenario's; 90).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same bytes.")] = 7,
    scenario: Annotated[str, typer.Option(
        help="The kind of CRM: retention (the default world), visit_campaign, spend_offers, low_consent, "
             "sleeping_dogs or short_history.")] = "retention",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing data folder.")] = False,
) -> None:
    """Simulate a customer base with known ground truth (customers, touchpoints, outreach, truth)."""
    import numpy as np

    from features.sources.io import write_tables
    from features.sources.simulation.scenarios import scenario_config
    from features.sources.simulation.world import simulate_world

    given = {"days": days, "horizon_days": horizon_days}
    config = scenario_config(scenario, n_customers=customers, seed=seed,
                             **{k: v for k, v in given.items() if v is not None})
    tables = simulate_world(config, np.random.default_rng(seed))
    write_tables(tables, out, overwrite=overwrite)
    manifest = tables.meta.get("manifest", {})
    typer.echo(json.dumps({"out": str(out), "scenario": scenario, **manifest.get("counts", {}),
                           "cutoff": manifest.get("cutoff")}))


@app.command()
@user_errors
def validate(data: Annotated[Path, typer.Argument(help="Data folder with customers/touchpoints/... files.")]) -> None:
    """Validate a data folder against the touchpoint data contract (exit status 2 when invalid)."""
    from features.sources.io import read_tables

    tables = read_tables(data)
    report = tables.meta.get("validation")
    typer.echo(report.summary() if hasattr(report, "summary") else str(report))


@app.command("import")
@user_errors
def import_(
    name: Annotated[str, typer.Argument(help="Dataset: starbucks, online_retail, cdnow, telco, bank_marketing, "
                                             "online_shoppers, ifood_campaigns.")],
    source: Annotated[Path, typer.Option(help="The dataset's folder, e.g. ../shared/datasets/telco.")],
    out: Annotated[Path, typer.Option(help="Data folder to write (must not exist or be empty).")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing data folder.")] = False,
) -> None:
    """Import a real public dataset into the data contract's tables."""
    from features.sources.importers.registry import import_dataset
    from features.sources.io import write_tables

    tables = import_dataset(name, source)
    write_tables(tables, out, overwrite=overwrite)
    counts = {t: len(getattr(tables, t)) for t in ("customers", "touchpoints", "outreach", "labels")
              if getattr(tables, t) is not None}
    typer.echo(json.dumps({"dataset": name, "out": str(out), **counts}))


@app.command("features", epilog=EXIT_HELP)
@user_errors
def features_(
    data: Annotated[Path, typer.Option(help="Data folder.")],
    cutoff: Annotated[str, typer.Option(help="Build features from events strictly before this date/time (UTC).")],
    out: Annotated[Path, typer.Option(help="Feature table to write: .parquet, .csv or .csv.gz.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing feature table and its dictionary.")] = False,
) -> None:
    """Build the feature table (one row per customer) at a cutoff, with the feature dictionary beside it.

    The table and its dictionary are written together (both or neither), and never over existing files
    without --overwrite."""
    from features.builders.dictionary import feature_dictionary
    from features.builders.pipeline import FeaturePipeline
    from features.sources.io import frame_bytes, read_tables
    from features.sources.outputs import check_outputs, write_outputs

    dictionary_path = out.with_name(out.name.split(".")[0] + ".dictionary.csv")
    check_outputs([(out, "--out"), (dictionary_path, "--out's dictionary")], overwrite=overwrite)
    tables = read_tables(data).without_truth()
    pipeline = FeaturePipeline()
    frame = pipeline.fit_transform(tables, cutoff=parse_cutoff(cutoff))
    write_outputs({out: frame_bytes(frame.reset_index(), out.name),
                   dictionary_path: frame_bytes(feature_dictionary(pipeline), dictionary_path.name)},
                  overwrite=overwrite)
    typer.echo(json.dumps({"out": str(out), "dictionary": str(dictionary_path), "customers": len(frame),
                           "features": frame.shape[1]}))


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
) -> None:
    """Train the calibrated churn model at many cutoffs, log it to MLflow, register it, try promotion."""
    from training.churn.commands import train_churn_command
    from training.churn.experiments import parse_attributes

    run_and_echo(train_churn_command, data, config, report, register=register, test_data=test_data,
                 exclude_attributes=parse_attributes(exclude_attributes))


@evaluate_app.command("churn", epilog=EXIT_HELP)
@user_errors
def evaluate_churn_(
    data: Annotated[Path, typer.Option(help="Data folder to evaluate on.")],
    config: ConfigOption = None,
    report: ReportOption = None,
    model_uri: Annotated[str | None, typer.Option(help="Model URI (default: the churn champion).")] = None,
    cutoff: Annotated[str | None, typer.Option(help="Evaluation cutoff (default: the manifest's).")] = None,
) -> None:
    """Evaluate a registered churn model: AUC, PR-AUC, Brier, ECE, lift, baselines and (simulated) oracle."""
    from training.churn.commands import evaluate_churn_command

    run_and_echo(evaluate_churn_command, data, config, report, model_uri=model_uri, cutoff=cutoff)


@train_app.command("value")
@user_errors
def train_value_(
    data: Annotated[Path, typer.Option(help="Data folder with purchases (simulated, imported or your own).")],
    horizon_days: Annotated[int | None, typer.Option(
        min=7, help="Value horizon in days (default: 365, or 90 when the data are too short for 365).")] = None,
    config: ConfigOption = None,
    report: ReportOption = None,
) -> None:
    """Customer value: BG/NBD + Gamma-Gamma, LightGBM (Tweedie) and their blend, chosen on validation cutoffs and
    judged on later realised spend against the textbook BG/NBD + Gamma-Gamma; logged to MLflow."""
    from training.value.commands import train_value_command

    run_and_echo(train_value_command, data, config, report, horizon_days=horizon_days, progress=typer.echo)


@app.command("personas")
@user_errors
def personas_(
    data: Annotated[Path, typer.Option(help="Data folder.")],
    report: ReportOption = None,
    cutoff: Annotated[str | None, typer.Option(
        help="Cutoff (default: the manifest's, else the end of the log).")] = None,
    model_path: Annotated[Path | None, typer.Option(
        help="A saved decision system whose persona names to keep for matching clusters.")] = None,
) -> None:
    """Personas: 6-12 named micro-segments (k chosen by split-half stability and silhouette) and their profiles."""
    from training.personas.commands import personas_command

    run_and_echo(personas_command, data, report, cutoff=parse_cutoff(cutoff), model_path=model_path)


PolicyOption = Annotated[Path | None, typer.Option(help="Decision settings YAML (caps, limits, thresholds).")]
CatalogueOption = Annotated[Path | None, typer.Option(
    help="Action catalogue YAML (default: the packaged one, or the logged actions when the log holds others).")]
ObjectiveOption = Annotated[str | None, typer.Option(
    help="What the policy optimises: retention, visit, conversion, spend or margin (default: the policy config's, "
         "retention).")]
HorizonOption = Annotated[int | None, typer.Option(
    min=1, help="Outcome window after each campaign decision, in days (default: the policy config's; 90 for "
                "retention, 14 for the campaign objectives).")]
CustomerIdsOption = Annotated[
    bool, typer.Option(help="Name the customers of the report's defense examples (never in the copy logged to MLflow).")
]


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
) -> None:
    """Learn the next-best-action policy from logged outreach and register features (+ churn) + policy as one unit.

    Promoted to champion only when it beats its baselines (best single action, no contact) with a DR interval
    above zero, and the champion's policy on the same held-out decisions; the report's first line says which.
    """
    from training.policy.commands import train_policy_command
    from training.policy.config import PolicyTrainConfig

    run_and_echo(train_policy_command, data, config, report, policy_config_path=policy_config,
                 catalogue_path=catalogue, objective=objective, horizon_days=horizon_days, register=register,
                 progress=typer.echo, train=PolicyTrainConfig(report_customer_ids=customer_ids))


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
) -> None:
    """Off-policy evaluation (IPS, SNIPS, DR with bootstrap intervals) and, on simulated data, the true value."""
    from training.policy.commands import evaluate_policy_command
    from training.policy.config import PolicyTrainConfig

    run_and_echo(evaluate_policy_command, data, report, policy_config_path=policy_config, catalogue_path=catalogue,
                 objective=objective, horizon_days=horizon_days, progress=typer.echo,
                 train=PolicyTrainConfig(report_customer_ids=customer_ids))


@evaluate_app.command("starbucks")
@user_errors
def evaluate_starbucks_(
    data: Annotated[Path, typer.Option(help="Starbucks dataset folder (../shared/datasets/starbucks) or its import.")],
    report: ReportOption = None,
    seed: Annotated[int, typer.Option(help="Random seed: person split, folds, models and bootstrap.")] = 0,
) -> None:
    """Offer policy on the Starbucks log: learned on train persons, DR-valued on held-out persons vs random and
    every single offer."""
    import numpy as np

    from training.starbucks.evaluate import evaluate_starbucks

    enable_progress()
    echo_json(evaluate_starbucks(data, rng=np.random.default_rng(seed), progress=typer.echo), report)


@app.command()
@user_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 3000,
    workers: WorkersOption = None,
    config: ConfigOption = None,
    model_path: ModelPathOption = None,
    token_file: Annotated[Path | None, typer.Option(help="File holding the bearer token (enables auth).")] = None,
    decision_log: Annotated[Path | None, typer.Option(help="Append every decision to this JSON Lines file.")] = None,
    wait: Annotated[bool, typer.Option(help="Start even without a model, and serve once one can be loaded "
                                            "(retried every ENGAGE_LOAD_RETRY_S seconds).")] = False,
    insecure: Annotated[bool, typer.Option(help="Allow a --host other than loopback without a token.")] = False,
) -> None:
    """Start the BentoML scoring service with the champion decision system.

    Exit statuses: 2 a bad option or setting (e.g. a token under 16 characters, or a --host other than loopback
    without a token); 3 no model to serve (no champion, no model file, or it could not be loaded)."""
    from serving.server import default_workers
    from serving.server import serve as run_server

    workers = workers or default_workers()

    raise typer.Exit(code=run_server(host=host, port=port, workers=workers, model_path=model_path,
                                     mlflow_config=config, token_file=token_file, decision_log=decision_log,
                                     wait=wait, insecure=insecure))


@app.command(epilog=EXIT_HELP)
@user_errors
def score(
    out: Annotated[Path, typer.Option(help="Scores to write: .parquet, .csv or .csv.gz.")],
    data: Annotated[Path | None, typer.Option(help="Data folder to score (every customer).")] = None,
    features: Annotated[Path | None, typer.Option(help="Or: a precomputed feature table to score.")] = None,
    cutoff: Annotated[str | None, typer.Option(
        help="Scoring cutoff (default: the manifest's, else the labels', else now; the output says which).")] = None,
    defense_out: Annotated[Path | None, typer.Option(help="Also write the CRM list of defense targets.")] = None,
    config: ConfigOption = None,
    model_path: ModelPathOption = None,
    decision_log: Annotated[Path | None, typer.Option(help="Append every decision to this JSON Lines file.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    reasons: Annotated[
        str, typer.Option(help="With --features: churn reason codes for all customers, at-risk ones or none.")
    ] = "all",
) -> None:
    """Batch-score the whole customer base (same code path as the service), model version on every row.

    The scores and the defense list are written together (both or neither), never over existing files
    without --overwrite."""
    from serving.batch import score_data, score_feature_table

    if (data is None) == (features is None):
        raise ValueError("give exactly one of --data DIR or --features FILE")
    if data is not None and reasons != "all":
        raise ValueError("--reasons applies to --features only (scoring raw data gives every customer's reasons)")
    mlflow_config = config or Path("mlflow.yaml")
    if data is not None:
        result = score_data(data, out, cutoff=parse_cutoff(cutoff), defense_out=defense_out, model_path=model_path,
                            mlflow_config=mlflow_config, decision_log=decision_log, overwrite=overwrite)
        typer.echo(f"scored at {result['cutoff']}: {result['cutoff_reason']}", err=True)
    else:
        result = score_feature_table(features, out, cutoff=parse_cutoff(cutoff), model_path=model_path,
                                     mlflow_config=mlflow_config, overwrite=overwrite, reasons=reasons)
    echo_json(result, None)


def _retrain_scorer():
    """The batch path of ``engage score``, for a pinned registered version (the challenger, before promotion),
    in the registry the job has set as MLflow's tracking URI."""

    def score(data: Path, out: Path, uri: str, cutoff) -> dict:
        from serving.batch import score_data
        from serving.engine import ModelInfo, ScoringEngine
        from training.registry import load_decision_system

        system = load_decision_system(uri)
        version = uri.removeprefix("models:/")
        engine = ScoringEngine(system, ModelInfo(version, {"uri": uri}, uri))
        return score_data(data, out, cutoff=cutoff, engine=engine)

    return score


RETRAIN_HELP = "\b\nExit statuses of engage retrain:\n" + "\n".join(
    f"  {code}  {text}" for code, text in RETRAIN_EXIT_STATUSES.items())


@app.command(epilog=RETRAIN_HELP)
@user_errors
def retrain(
    data: Annotated[Path, typer.Option(help="Data folder as exported this week (the whole history).")],
    config: ConfigOption = None,
    as_of: Annotated[str | None, typer.Option(
        help="What the job may see: events at or after this date/time are ignored (default: the end of the day "
             "of the newest touchpoint).")] = None,
    report: ReportOption = None,
) -> None:
    """The scheduled job: validate, data gates, drift report, train churn + policy challengers, backtest them
    against the champion on the same data, promote or keep, batch-score, and write the run summary.

    Only the final alias move changes what is served; a killed run leaves the champion and the published
    scores as they were. See docs/operating.md."""
    from training.retrain.commands import retrain_command

    enable_progress()
    summary, status = retrain_command(data, config or Path("mlflow.yaml"), as_of=as_of, report_path=report,
                                      scorer=_retrain_scorer())
    echo_json(summary, None)
    if status:
        typer.secho(f"engage retrain: {summary['decision']}: {summary['reason']}", err=True)
        raise typer.Exit(code=status)


@app.command(epilog=EXIT_HELP)
@user_errors
def register(
    model_path: Annotated[Path, typer.Option(help="Folder a training run saved its model in when registering failed.")],
    config: ConfigOption = None,
    data: Annotated[Path | None, typer.Option(help="The data folder it was trained on, if it moved.")] = None,
) -> None:
    """Register (and try to promote) a model that a training run saved locally because registering failed."""
    from training.unregistered import register_pending

    run_and_echo(register_pending, model_path, config, data=data)


@app.command()
@user_errors
def demo(
    workdir: Annotated[Path, typer.Option(help="Folder for the demo's data, reports and scores.")] = Path("work/demo"),
    customers: Annotated[int, typer.Option(min=200, help="Simulated customers.")] = 20_000,
    days: Annotated[int, typer.Option(min=400, help="Days of simulated history (≥ 400 for monthly cutoffs).")] = 730,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    config: ConfigOption = None,
) -> None:
    """The main job end to end on the simulated world: simulate, validate, features, train, evaluate, score."""
    from training.demo import run_demo

    enable_progress()
    run_demo(workdir, customers=customers, days=days, seed=seed, config_path=config, echo=typer.echo)


def now_utc() -> datetime:
    """The current time in UTC (the default scoring cutoff)."""
    return datetime.now(UTC)


def main() -> None:
    """Console entry point."""
    setup_environment()
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
