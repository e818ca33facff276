"""The ``engage bench`` and ``engage diagnose`` sub-commands: speed benchmarks and diagnostics that print
their figures as JSON (and write them with ``--report FILE``). The work lives in ``training.bench`` and
``training.policy.ceiling``; heavy imports happen inside each command."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from training.cli_common import (
    EXIT_HELP,
    ConfigOption,
    EngageGroup,
    ReportOption,
    WorkersOption,
    echo_json,
    user_errors,
)
from training.cli_progress import enable_progress

bench_app = typer.Typer(cls=EngageGroup, help="Benchmarks: print speed and memory figures (also as JSON).",
                        no_args_is_help=True, epilog=EXIT_HELP)
diagnose_app = typer.Typer(cls=EngageGroup, help="Diagnostics of a simulated world and a decision system (JSON).",
                           no_args_is_help=True, epilog=EXIT_HELP)
ServerModelOption = Annotated[Path | None, typer.Option(
    "--model-uri", help="Serve a local model folder or pickle file instead of the registry champion of --config.")]

SeedOption = Annotated[int, typer.Option(help="Random seed.")]
EventsOption = Annotated[int, typer.Option(min=1_000, help="Touchpoints in the benchmark's log.")]


def seeded(seed: int):
    """A numpy random generator (numpy is imported when a benchmark runs, not for ``--help``)."""
    import numpy as np

    return np.random.default_rng(seed)


@bench_app.command("features")
@user_errors
def bench_features_(
    events: EventsOption = 10_000_000,
    seed: SeedOption = 7,
    jobs: Annotated[int, typer.Option(min=1, help="Worker threads/processes over customer partitions.")] = 2,
    repeats: Annotated[int, typer.Option(min=1, help="Timed transforms (and reference runs).")] = 3,
    reference: Annotated[bool, typer.Option(
        help="Also run the pandas reference of ../shared/reference on the same events "
             "(ratio_to_pandas_reference; skipped with a reason when absent).")] = True,
    reference_own_log: Annotated[bool, typer.Option(
        help="Also run the reference on its own synthetic log of the same size.")] = True,
    report: ReportOption = None,
) -> None:
    """Feature-building speed (events/s) as a ratio to the pandas reference, peak memory, single-customer latency.

    The compiled kernel is used when Numba is installed; ENGAGE_FEATURE_KERNEL=numpy measures the numpy path.
    """
    from training.bench.features import bench_features

    echo_json(bench_features(events, seeded(seed), n_jobs=jobs, repeats=repeats, reference=reference,
                             reference_own_log=reference_own_log), report)


@bench_app.command("system")
@user_errors
def bench_system_(
    system: Annotated[Path | None, typer.Option(
        "--model-uri", help="A saved decision system (model folder or pickle file); default: fit a churn-only "
                            "one.")] = None,
    customers: Annotated[int, typer.Option(min=1_000, help="Scoring customers.")] = 1000,
    touchpoints: Annotated[int, typer.Option(min=1, help="Touchpoints per scoring customer.")] = 500,
    table_rows: Annotated[int, typer.Option(min=1, help="Rows of the feature table scored in one call.")] = 50_000,
    seed: SeedOption = 1,
    breakdown: Annotated[bool, typer.Option(help="Time each feature family and scoring step.")] = True,
    report: ReportOption = None,
) -> None:
    """In-process scoring speed of a decision system: one customer, 16, 1,000, and a feature table."""
    from training.bench.system import run_bench_system

    echo_json(run_bench_system(system, customers=customers, touchpoints=touchpoints, table_rows=table_rows,
                               seed=seed, breakdown=breakdown), report)


@bench_app.command("simulate")
@user_errors
def bench_simulate_(
    customers: Annotated[int, typer.Option(min=10, help="Number of customers.")] = 100_000,
    days: Annotated[int, typer.Option(min=60, help="Days of history.")] = 365,
    write: Annotated[bool, typer.Option(help="Also time writing the tables (to a temporary folder).")] = True,
    seed: SeedOption = 0,
    report: ReportOption = None,
) -> None:
    """Simulator speed: seconds to simulate a world (and to write it), its size and peak memory."""
    from training.bench.simulate import bench_simulate

    echo_json(bench_simulate(customers, days, seed, write=write), report)


@bench_app.command("validate")
@user_errors
def bench_validate_(
    events: EventsOption = 10_000_000,
    io: Annotated[bool, typer.Option(help="Also time write_tables and read_tables of a parquet folder.")] = True,
    seed: SeedOption = 0,
    report: ReportOption = None,
) -> None:
    """Validation speed on a synthetic log.

    Times the shapes data arrives in: typed and sorted, typed in time order, and text as a CSV reader leaves it.
    With --io, also writing and reading a parquet folder.
    """
    from training.bench.validate import bench_validation

    echo_json(bench_validation(events, seeded(seed), with_io=io), report)


@bench_app.command("policy")
@user_errors
def bench_policy_(
    customers: Annotated[int, typer.Option(min=100, help="Synthetic customers to decide for.")] = 100_000,
    training_rows: Annotated[int, typer.Option(
        min=0, help="Also time the policy's training rows of a randomised campaign of this many decisions.")] = 0,
    seed: SeedOption = 0,
    report: ReportOption = None,
) -> None:
    """Decision-rule speed with binding budget, contact, channel and offer limits, and each limit's use."""
    from training.bench.policy import bench_policy, bench_training_rows

    figures = bench_policy(customers, seed)
    if training_rows:
        figures["training_rows"] = bench_training_rows(training_rows, seed)
    echo_json(figures, report)


@bench_app.command("policy-scenarios")
@user_errors
def bench_policy_scenarios_(
    customers: Annotated[int, typer.Option(min=300, help="Customers of each simulated world.")] = 50_000,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds: one world per scenario and seed.")] = "0,1,2",
    scenarios: Annotated[str | None, typer.Option(
        help="Comma-separated scenarios (default: all: retention, visit_campaign, spend_offers, low_consent, "
             "sleeping_dogs, short_history).")] = None,
    n_boot: Annotated[int, typer.Option(min=20, help="Bootstrap draws of each DR interval.")] = 200,
    report: ReportOption = None,
) -> None:
    """The policy over the simulator's scenario matrix, judged by each world's truth.

    Per scenario and seed: simulate, train churn and the policy as `engage train policy` does (no MLflow),
    then the learned policy's true value vs no contact, the best single action and the top churn scores at
    its own contact volume; constraint violations; captured uplift against the oracle and the observable
    ceiling; whether the DR interval holds the true value; churn model / ceiling / oracle. A summary checks
    the targets across the matrix. One cell of 50,000 customers takes minutes: try --customers 5000 first.
    """
    from training.bench.policy_scenarios import bench_policy_scenarios, parse_list
    from training.report import write_json

    seed_list = parse_list(seeds, "seeds", int)
    names = parse_list(scenarios, "scenarios")

    def save(cells: list[dict]) -> None:  # a long run keeps its finished cells in --report as it goes
        if report is not None:
            write_json(report, {"partial": True, "customers": customers, "seeds": seed_list, "cells": cells})

    enable_progress()
    echo_json(bench_policy_scenarios(customers, seed_list, names, n_boot=n_boot, on_cell=save), report)


@bench_app.command("scale")
@user_errors
def bench_scale_(
    customers: Annotated[int, typer.Option(min=100, help="Customers of the simulated world.")] = 100_000,
    report: ReportOption = None,
    sizes: Annotated[str | None, typer.Option(
        help="Comma-separated sizes for a scaling curve (e.g. 20000,100000,300000; replaces --customers); the "
             "top-level steps are the largest size's, every size is under \"sizes\".")] = None,
    partitions: Annotated[int | None, typer.Option(
        min=1, help="Partitions of the data folder (default: one per 25,000 customers, at least 2).")] = None,
    days: Annotated[int, typer.Option(min=60, help="Days of simulated history.")] = 365,
    memory_limit: Annotated[str | None, typer.Option(
        "--memory-limit", help="The Dask engine's memory budget in all (e.g. 12GB; default: the machine's "
                               "available memory); also sizes the training sample.")] = None,
    work: Annotated[Path | None, typer.Option(
        help="Folder for the worlds, outputs, step logs and the bench's own MLflow store (kept); default: a "
             "temporary folder, removed at the end.")] = None,
    local_features: Annotated[bool, typer.Option(
        help="Also run engage features on the local engine on the same world (the events/s yardstick).")] = True,
    train_cutoffs: Annotated[int | None, typer.Option(
        min=1, help="Churn training cutoffs (default: the project's mlflow.yaml churn settings).")] = None,
    plot: Annotated[Path | None, typer.Option(
        help="With --sizes: draw seconds and peak memory per step against customers into this PNG.")] = None,
    seed: SeedOption = 7,
) -> None:
    """The whole pipeline on the Dask engine, each step an engage subprocess measured over its process tree.

    Steps: simulate (partitioned), partition, features, train churn, train policy and score, the last four with
    --engine dask; per step wall seconds, peak memory of the process tree and of its largest process (the
    command, the Dask scheduler or a worker), features' events/s beside the local engine's. MLflow runs go to
    a store in the work folder, never the user's registry. The table goes to stderr, the JSON to stdout and
    --report FILE (--json FILE, the name issue 14 gives, is accepted as its deprecated alias).
    """
    from training.bench.scale import bench_scale, table
    from training.report import write_json

    counts = [int(x) for x in sizes.split(",")] if sizes else [customers]
    if any(n < 100 for n in counts):
        raise ValueError(f"--sizes {sizes}: every size must be at least 100 customers")
    enable_progress()
    result = bench_scale(sorted(counts), days=days, partitions=partitions, memory_limit=memory_limit, work=work,
                         local_features=local_features, train_cutoffs=train_cutoffs, seed=seed,
                         progress=lambda msg: typer.echo(msg, err=True),
                         on_size=(lambda partial: write_json(report, partial)) if report else None)
    if plot is not None:
        from training.bench.scale_plot import draw_scaling

        draw_scaling(result, plot)
        result["plot"] = str(plot)
    typer.echo(table(result), err=True)
    echo_json(result, report)


@bench_app.command("sample-loss")
@user_errors
def bench_sample_loss_(
    data: Annotated[Path, typer.Option(help="A simulated, partitioned data folder (with its truth table).")],
    sizes: Annotated[str, typer.Option(help="Comma-separated sample sizes (customers), e.g. 5000,20000,50000.")],
    eval_customers: Annotated[int, typer.Option(
        min=100, help="Held-out customers both models are judged on (drawn apart from every sample).")] = 10_000,
    n_boot: Annotated[int, typer.Option(min=20, help="Bootstrap draws of the DR intervals.")] = 100,
    report: ReportOption = None,
) -> None:
    """The loss from training on a customer sample (engage train churn|policy --engine dask), against its size.

    Per size: churn and the policy trained on the sample as the commands train them (no MLflow), then judged on
    the same held-out customers: churn AUC at the test cutoff, the policy's true value and captured uplift from
    the simulator's truth, and the DR estimate of its own held-out decisions."""
    from training.bench.sample_loss import bench_sample_loss

    counts = [int(x) for x in sizes.split(",")]
    enable_progress()
    echo_json(bench_sample_loss(data, counts, eval_customers=eval_customers, n_boot=n_boot,
                                progress=lambda msg: typer.echo(msg, err=True)), report)


@bench_app.command("serve")
@user_errors
def bench_serve_(
    config: ConfigOption = None,
    model_uri: ServerModelOption = None,
    workers: WorkersOption = None,
    gc_freeze: Annotated[bool, typer.Option(help="gc.freeze() after the workers load the model.")] = True,
    floor: Annotated[bool, typer.Option(
        help="Also load a trivial BentoML + LightGBM service (one numpy row) the same way and report "
             "engage's figures as ratios to it (floor_ratios).")] = True,
    report: ReportOption = None,
) -> None:
    """Load-test the real service on loopback: p50/p90/p99, requests/s and errors at concurrency 1 and 16,
    and the same figures as ratios to a trivial BentoML service's floor measured in the same run."""
    from training.bench.serve import bench_serve

    _server_bench(bench_serve, report, config, model_uri, workers=workers, gc_freeze=gc_freeze, floor=floor)


@bench_app.command("abuse")
@user_errors
def bench_abuse_(
    paths: Annotated[int, typer.Option(min=1, help="Random-path requests of the metrics probe.")] = 5_000,
    workers: WorkersOption = None,
    model_uri: ServerModelOption = None,
    config: ConfigOption = None,
    report: ReportOption = None,
) -> None:
    """Probe the real service's limits on loopback: 413 latency, small requests' p99 while one maximal request is
    scored, /metrics size and worker memory after random-path requests (limits from ENGAGE_MAX_* settings)."""
    from training.bench.abuse import bench_abuse

    _server_bench(bench_abuse, report, config, model_uri, workers=workers, n_paths=paths)


def _server_bench(run: Callable[..., dict], report: Path | None, config: Path | None, model_path: Path | None,
                  **options: object) -> None:
    """Run a benchmark that starts the real server and print its figures; a worker's first model-loading error
    ends it at once, on one line, with exit status 3 (no model)."""
    from training.bench.serve import ModelLoadError

    try:
        result = run(model_path=str(model_path) if model_path else None,
                     mlflow_config=str(config) if config else None, **options)
    except ModelLoadError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=3) from None
    echo_json(result, report)


@bench_app.command("churn-data")
@user_errors
def bench_churn_data(
    name: Annotated[str, typer.Argument(help="telco, online_retail or cdnow.")],
    source: Annotated[Path, typer.Option(help="The dataset folder, e.g. ../shared/datasets/telco.")],
    config: ConfigOption = None,
    report: ReportOption = None,
    mlflow: Annotated[bool, typer.Option(help="Log the run to MLflow.")] = True,
    seed: SeedOption = 7,
) -> None:
    """Churn quality on a public dataset (telco CV; online_retail/cdnow temporal validation vs BG/NBD)."""
    from training.bench.churn_data import run_benchmark

    enable_progress()
    echo_json(run_benchmark(name, source, config_path=config, log_to_mlflow=mlflow, seed=seed), report)


@diagnose_app.command("ceiling")
@user_errors
def diagnose_ceiling(
    target: Annotated[str, typer.Argument(help="churn or policy.")] = "policy",
    data: Annotated[Path, typer.Option(help="A simulated data folder (with its truth table).")] = ...,
    cutoff: Annotated[str | None, typer.Option(help="Policy: decision cutoff (default: the manifest's).")] = None,
    seed: Annotated[int | None, typer.Option(
        help="Random seed (policy default 0; churn default: the churn settings' seed).")] = None,
    system: Annotated[Path | None, typer.Option(
        "--model-uri", help="Policy: also decompose this decision system's policy (model folder or pickle "
                            "file).")] = None,
    config: ConfigOption = None,
    report: ReportOption = None,
) -> None:
    """How far a model is from what the features allow, beside the oracle (simulated data).

    policy: how much of the oracle's uplift a policy can reach from the features (regressors of the true
    values); with --model-uri, which estimate (effect or value) limits that system's policy.
    churn: the churn model trained in-process as `engage train churn` trains it (settings from --config),
    a regressor of the true churn probability from the same features (the ceiling) and the oracle:
    AUC, Brier and ECE side by side on the test rows.
    """
    if target == "churn":
        from training.churn.diagnose import churn_ceiling_report

        enable_progress()
        echo_json(churn_ceiling_report(data, seed, config), report)
    elif target == "policy":
        from training.policy.ceiling import ceiling_report

        echo_json(ceiling_report(data, cutoff, 0 if seed is None else seed, system), report)
    else:
        raise ValueError(f"diagnose ceiling {target!r}: use churn or policy")
