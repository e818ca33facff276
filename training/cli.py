"""The ``engage`` command line: one command per stage, I/O at the edge.

Heavy libraries (MLflow, BentoML, LightGBM) are imported inside the commands that need them, so
``engage --help`` and the data commands start quickly. Configuration is read here, once, and passed down.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from training.cli_bench import bench_app, diagnose_app
from training.cli_common import (
    EXIT_HELP,
    ConfigOption,
    EngageGroup,
    ModelUriOption,
    QuietOption,
    ReportOption,
    WorkersOption,
    echo_json,
    is_registry_uri,
    load_registered,
    parse_cutoff,
    user_errors,
)
from training.cli_data import import_, partition, simulate, validate
from training.cli_progress import progress_bars
from training.cli_train import evaluate_app, personas_, train_app
from training.engine.options import EngineOption, MemoryLimitOption, SchedulerOption, engine_settings
from training.retrain.exits import EXIT_STATUSES as RETRAIN_EXIT_STATUSES

app = typer.Typer(
    cls=EngageGroup,
    help="engage: engagement & intent features, churn prediction and next-best-action outreach for CRMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    epilog=EXIT_HELP,
)
app.command(epilog=EXIT_HELP)(simulate)
app.command(epilog=EXIT_HELP)(validate)
app.command(epilog=EXIT_HELP)(partition)
app.command("import", epilog=EXIT_HELP)(import_)
app.command("personas", epilog=EXIT_HELP)(personas_)
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")
app.add_typer(bench_app, name="bench")
app.add_typer(diagnose_app, name="diagnose")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"engage {version('engage')}")
        except PackageNotFoundError:  # running from a checkout that was never installed
            typer.echo("engage (not installed: no distribution metadata; pip install -e . to record a version)")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the installed engage version and exit.")] = False,
) -> None:
    """engage: engagement & intent features, churn prediction and next-best-action outreach for CRMs."""


PROJECT_ROOT = Path(__file__).resolve().parents[1]


def setup_environment() -> None:
    """Keep MLflow and BentoML quiet and their state inside the project's work folder.

    Called by the entry point only (importing this module changes nothing).
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    os.environ.setdefault("BENTOML_HOME", str(Path.cwd() / "work" / "bentoml"))


def _engine(model_uri: str | None, config: Path | None):
    """The scoring engine of ``--model-uri``: the registry champion of ``--config`` (none given, or
    ``champion``), a registry URI, or a local model folder or file."""
    from serving.batch import load_engine
    from serving.engine import ModelInfo, ScoringEngine

    if model_uri is None or model_uri == "champion":
        return load_engine(mlflow_config=config or Path("mlflow.yaml"))
    if is_registry_uri(model_uri):
        system, version = load_registered(model_uri, config)
        return ScoringEngine(system, ModelInfo(version, {}, model_uri))
    return load_engine(model_path=model_uri)


@app.command("features", epilog=EXIT_HELP)
@user_errors
def features_(
    data: Annotated[Path, typer.Option(help="Data folder (with --engine dask: a partitioned one).")],
    out: Annotated[Path, typer.Option(help="Feature table to write: .parquet, .csv or .csv.gz (with --engine dask: "
                                           "a folder of part-NNNNN.parquet files and _dictionary.csv).")],
    cutoff: Annotated[str | None, typer.Option(
        help="Build features from events strictly before this date/time (UTC; default as engage score --data: "
             "the manifest's, else the labels', else now).")] = None,
    model_uri: Annotated[str | None, typer.Option(
        help="Use this decision system's fitted feature pipeline (champion = the registry champion of --config; "
             "or a registry URI or local model path), so that engage score --features of the table answers "
             "exactly as engage score --data. Default: a pipeline fitted on this data folder.")] = None,
    config: ConfigOption = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing feature table and its dictionary.")] = False,
    engine: EngineOption = "local",
    scheduler: SchedulerOption = None,
    memory_limit: MemoryLimitOption = None,
    quiet: QuietOption = False,
) -> None:
    """Build the feature table (one row per customer, and its cutoff) with the feature dictionary beside it.

    The table's cutoff column records when the features stand, for engage score --features. The table and its
    dictionary are written together (both or neither), and never over existing files without --overwrite."""
    from features.builders.dictionary import feature_dictionary
    from features.builders.pipeline import FeaturePipeline
    from features.contract.cutoffs import SOURCES, scoring_cutoff
    from features.sources.io import frame_bytes, read_tables
    from features.sources.outputs import check_outputs, write_outputs

    settings = engine_settings(engine, scheduler, memory_limit)
    if settings.is_dask:
        from training.engine.commands import features_cli

        features_cli(settings, data, out, cutoff, model_uri, config, overwrite, quiet, load=_engine)
        return
    dictionary_path = out.with_name(out.name.split(".")[0] + ".dictionary.csv")
    check_outputs([(out, "--out"), (dictionary_path, "--out's dictionary")], overwrite=overwrite)
    with progress_bars(quiet) as bars:
        bars.note(f"reading and validating {data}")
        tables = read_tables(data).without_truth()
        choice = scoring_cutoff(tables, parse_cutoff(cutoff))
        engine = None
        if model_uri is not None:
            bars.note(f"loading {model_uri}")
            engine = _engine(model_uri, config)
        step = bars.step("building features, block by block")
        pipeline = FeaturePipeline() if engine is None else engine.system.pipeline
        frame = (pipeline.fit_transform(tables, cutoff=choice.at, progress=step) if engine is None
                 else pipeline.transform(tables, cutoff=choice.at, progress=step))
        table = frame.reset_index()
        table.insert(1, "cutoff", choice.at)
        bars.note(f"writing {out}")
        write_outputs({out: frame_bytes(table, out.name),
                       dictionary_path: frame_bytes(feature_dictionary(pipeline), dictionary_path.name)},
                      overwrite=overwrite)
    typer.echo(json.dumps({"out": str(out), "dictionary": str(dictionary_path), "customers": len(frame),
                           "features": frame.shape[1], "cutoff": choice.at.isoformat(),
                           "cutoff_source": SOURCES[choice.source],
                           "pipeline": "fitted on --data" if engine is None else engine.info.version}))


@app.command(epilog=EXIT_HELP)
@user_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 3000,
    workers: WorkersOption = None,
    config: ConfigOption = None,
    model_uri: Annotated[str | None, typer.Option(
        help="Serve this model instead of the registry champion of --config: a registered version "
             "(models:/NAME/VERSION or models:/NAME@ALIAS, downloaded once to work/models/NAME/VERSION) or a local "
             "model folder or pickle file.")] = None,
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

    if model_uri is not None and is_registry_uri(model_uri):
        model_path = _download_registered(model_uri, config)
    else:
        model_path = None if model_uri in (None, "champion") else Path(model_uri)
    workers = workers or default_workers()
    raise typer.Exit(code=run_server(host=host, port=port, workers=workers, model_path=model_path,
                                     mlflow_config=config, token_file=token_file, decision_log=decision_log,
                                     wait=wait, insecure=insecure))


def _download_registered(uri: str, config: Path | None) -> Path:
    """A registered version (``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``, resolved once) as a local model
    folder under ``work/models/NAME/VERSION`` for the service's workers, checked against the digest recorded at
    registration; a version already there is reused."""
    import json
    import shutil

    import mlflow
    from mlflow import MlflowClient

    from features.system import CHECKSUM_TAG, model_folder_file, verify_sha256
    from serving.loading import INFO_FILE
    from training.registry import load_config, pinned_model_uri

    if not uri.startswith("models:/"):
        raise ValueError(f"--model-uri {uri}: the service takes a registered model (models:/NAME@ALIAS or "
                         "models:/NAME/VERSION) or a local model folder or file")
    cfg = load_config(config or Path("mlflow.yaml"))
    mlflow.set_tracking_uri(cfg.tracking_uri)
    name, version = pinned_model_uri(uri).removeprefix("models:/").rsplit("/", 1)
    dest = Path("work") / "models" / name / version
    if (dest / "MLmodel").exists():
        return dest
    partial = dest.with_name(f"{version}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=str(partial))
    tags = MlflowClient(tracking_uri=cfg.tracking_uri).get_model_version(name, version).tags or {}
    verify_sha256(model_folder_file(partial), tags.get(CHECKSUM_TAG), name=f"models:/{name}/{version}")
    (partial / INFO_FILE).write_text(json.dumps({"version": f"{name}/{version}", "versions": {name: version}}))
    partial.rename(dest)  # whole or not at all: a half-downloaded folder is never served
    return dest


def features_cutoff(path: Path) -> str | None:
    """The cutoff a feature table written by ``engage features`` records (its ``cutoff`` column), if any."""
    import pandas as pd

    if not path.exists():
        raise FileNotFoundError(f"--features {path}: no such file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        if "cutoff" not in pq.read_schema(path).names:
            return None
        values = pd.read_parquet(path, columns=["cutoff"])["cutoff"]
    else:
        if "cutoff" not in pd.read_csv(path, nrows=0).columns:
            return None
        values = pd.read_csv(path, usecols=["cutoff"])["cutoff"]
    distinct = pd.to_datetime(values.dropna(), utc=True).unique()
    if len(distinct) > 1:
        raise ValueError(f"--features {path}: rows at {len(distinct)} different cutoffs; score one cutoff at a "
                         "time (give --cutoff to choose)")
    return distinct[0].isoformat() if len(distinct) else None


@app.command(epilog=EXIT_HELP)
@user_errors
def score(
    out: Annotated[Path, typer.Option(help="Scores to write: .parquet, .csv or .csv.gz (with --engine dask: a "
                                           "folder of part-NNNNN.parquet files).")],
    data: Annotated[Path | None, typer.Option(
        help="Data folder to score (every customer; with --engine dask: a partitioned one).")] = None,
    features: Annotated[Path | None, typer.Option(
        help="Or: a feature table to score (from engage features --model-uri; its cutoff column is the "
             "scoring cutoff).")] = None,
    cutoff: Annotated[str | None, typer.Option(
        help="Scoring cutoff (--data default: the manifest's, else the labels', else now; --features default: "
             "the table's own cutoff column, else now; the output says which).")] = None,
    defense_out: Annotated[Path | None, typer.Option(help="Also write the CRM list of defense targets.")] = None,
    config: ConfigOption = None,
    model_uri: ModelUriOption = None,
    decision_log: Annotated[Path | None, typer.Option(help="Append every decision to this JSON Lines file.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    reasons: Annotated[
        str, typer.Option(help="Churn reason codes for all customers, at-risk ones or none (they cost more per "
                               "customer than the rest of scoring).")
    ] = "all",
    engine: EngineOption = "local",
    scheduler: SchedulerOption = None,
    memory_limit: MemoryLimitOption = None,
    quiet: QuietOption = False,
) -> None:
    """Batch-score the whole customer base (same code path as the service), model version on every row.

    The scores and the defense list are written together (both or neither), never over existing files
    without --overwrite."""
    from serving.batch import score_data

    if (data is None) == (features is None):
        raise ValueError("give exactly one of --data DIR or --features FILE")
    settings = engine_settings(engine, scheduler, memory_limit)
    if settings.is_dask:
        if reasons != "all":
            raise ValueError("--reasons runs on the local engine (--engine dask gives every customer's reasons)")
        if data is None:
            raise ValueError("--engine dask scores a partitioned --data folder; --features runs on the local engine")
        from training.engine.commands import score_cli

        score_cli(settings, data, out, cutoff, defense_out, model_uri, config, decision_log, overwrite, quiet,
                  download=_download_registered)
        return
    registered = model_uri is not None and is_registry_uri(model_uri)
    # a local model or the champion is loaded by the scoring step itself, after the cheaper checks of the input
    model = {"model_path": None if registered or model_uri in (None, "champion") else model_uri,
             "mlflow_config": config or Path("mlflow.yaml")}
    with progress_bars(quiet) as bars:
        if registered:
            bars.note(f"loading {model_uri}")
            model["engine"] = _engine(model_uri, config)
        bars.note(f"scoring {data if data is not None else features}")
        if data is not None:
            result = score_data(data, out, cutoff=parse_cutoff(cutoff), defense_out=defense_out,
                                decision_log=decision_log, overwrite=overwrite, reasons=reasons, **model)
            bars.note(f"scored at {result['cutoff']}: {result['cutoff_reason']}")
        else:
            result = _score_features(features, out, cutoff, overwrite=overwrite, reasons=reasons, **model)
    if not quiet and "cutoff_reason" in result:  # which cutoff was chosen matters to a reader: say it on stderr
        typer.echo(f"scored at {result['cutoff']}: {result['cutoff_reason']}", err=True)
    echo_json(result, None)


def _score_features(features: Path, out: Path, cutoff: str | None, **options) -> dict:
    """``score --features``: at the given cutoff, else the table's own (which a given one must agree with)."""
    from serving.batch import score_feature_table

    own = features_cutoff(features)
    given = parse_cutoff(cutoff)
    if given is not None and own is not None and given != parse_cutoff(own):
        raise ValueError(f"--cutoff {cutoff} differs from the cutoff the features were built at ({own}, the "
                         f"cutoff column of {features}); drop --cutoff or rebuild the features at it")
    at = given if given is not None else parse_cutoff(own)
    result = score_feature_table(features, out, cutoff=at, **options)
    result["cutoff_source"] = "--cutoff" if given is not None else ("features" if own is not None else "now")
    return result


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
    quiet: QuietOption = False,
) -> None:
    """The scheduled job: validate, data gates, drift report, train churn + policy challengers, backtest them
    against the champion on the same data, promote or keep, batch-score, and write the run summary.

    Only the final alias move changes what is served; a killed run leaves the champion and the published
    scores as they were. See docs/operating.md."""
    from training.retrain.commands import retrain_command

    with progress_bars(quiet, logs=True):
        summary, status = retrain_command(data, config or Path("mlflow.yaml"), as_of=as_of, report_path=report,
                                          scorer=_retrain_scorer())
    echo_json(summary, None)
    if status:
        typer.secho(f"engage retrain: {summary['decision']}: {summary['reason']}", err=True)
        raise typer.Exit(code=status)


@app.command(epilog=EXIT_HELP)
@user_errors
def register(
    model_path: Annotated[Path, typer.Option(
        "--model-uri", help="The folder a training run saved its model in when registering failed (the command "
                            "it printed names it).")],
    config: ConfigOption = None,
    data: Annotated[Path | None, typer.Option(help="The data folder it was trained on, if it moved.")] = None,
) -> None:
    """Register (and try to promote) a model that a training run saved locally because registering failed."""
    from training.cli_common import run_and_echo
    from training.unregistered import register_pending

    run_and_echo(register_pending, model_path, config, data=data)


@app.command(epilog=EXIT_HELP)
@user_errors
def demo(
    workdir: Annotated[Path, typer.Option(help="Folder for the demo's data, reports and scores.")] = Path("work/demo"),
    customers: Annotated[int, typer.Option(min=200, help="Simulated customers.")] = 20_000,
    days: Annotated[int, typer.Option(min=400, help="Days of simulated history (≥ 400 for monthly cutoffs).")] = 730,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    config: ConfigOption = None,
    quiet: QuietOption = False,
) -> None:
    """The main job end to end on the simulated world: simulate, validate, features, train, evaluate, score."""
    from training.demo import run_demo

    with progress_bars(quiet, logs=True) as bars:
        run_demo(workdir, customers=customers, days=days, seed=seed, config_path=config, echo=typer.echo,
                 progress=bars)


@app.command("docs")
def docs_() -> None:
    """Print the command reference (Markdown) generated from the commands themselves, as in docs/cli.md."""
    from training.cli_docs import command_reference

    typer.echo(command_reference(app), nl=False)


def main() -> None:
    """Console entry point."""
    setup_environment()
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
