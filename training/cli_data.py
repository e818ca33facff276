"""The data commands of ``engage``: ``simulate``, ``validate``, ``partition`` and ``import``. Each prints one JSON
line (or the validation summary) on stdout and shows its progress on stderr; heavy imports happen inside each
command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from training.cli_common import DataOption, QuietOption, user_errors
from training.cli_progress import progress_bars
from training.engine.options import EngineOption, MemoryLimitOption, SchedulerOption

OutOption = Annotated[Path, typer.Option(help="Data folder to write (must not exist or be empty).")]
OverwriteOption = Annotated[bool, typer.Option(help="Replace an existing data folder.")]


@user_errors
def simulate(
    out: OutOption,
    customers: Annotated[int, typer.Option(min=10, help="Number of customers.")] = 20_000,
    days: Annotated[int | None, typer.Option(
        min=60, help="Days of history before the evaluation cutoff (default: the scenario's; 365).")] = None,
    horizon_days: Annotated[int | None, typer.Option(
        min=7, help="Churn horizon simulated after the cutoff (default: the scenario's; 90).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same bytes.")] = 7,
    scenario: Annotated[str, typer.Option(
        help="The kind of CRM: retention (the default world), visit_campaign, spend_offers, low_consent, "
             "sleeping_dogs or short_history.")] = "retention",
    partitions: Annotated[int | None, typer.Option(
        min=1, help="Write a partitioned data folder of this many partitions (hash of customer_id), simulated "
                    "a chunk of customers at a time: the world is never whole in memory.")] = None,
    chunk_customers: Annotated[int | None, typer.Option(
        min=1, help="With --partitions: customers simulated per chunk, in whole blocks of 50,000 (default: one "
                    "block). The same seed gives the same world whatever the chunk size.")] = None,
    overwrite: OverwriteOption = False,
    quiet: QuietOption = False,
) -> None:
    """Simulate a customer base with known ground truth (customers, touchpoints, outreach, truth)."""
    import numpy as np

    from features.sources.io import write_tables
    from features.sources.simulated_partitions import simulate_partitioned
    from features.sources.simulation.scenarios import scenario_config
    from features.sources.simulation.world import simulate_world

    if chunk_customers is not None and partitions is None:
        raise ValueError("--chunk-customers applies to a partitioned world: add --partitions N")
    given = {"days": days, "horizon_days": horizon_days}
    config = scenario_config(scenario, n_customers=customers, seed=seed,
                             **{k: v for k, v in given.items() if v is not None})
    check_folder(out, overwrite)
    with progress_bars(quiet) as bars:
        step = bars.step(f"simulating {customers:,} customers, day by day")
        if partitions is not None:
            manifest = simulate_partitioned(config, np.random.default_rng(seed), out, partitions,
                                            chunk_customers=chunk_customers, overwrite=overwrite, progress=step)
        else:
            tables = simulate_world(config, np.random.default_rng(seed), progress=step)
            bars.note(f"writing {out}")
            write_tables(tables, out, overwrite=overwrite)
            manifest = tables.meta.get("manifest", {})
    shape = {"partitions": partitions} if partitions is not None else {}
    typer.echo(json.dumps({"out": str(out), "scenario": scenario, **shape, **manifest.get("counts", {}),
                           "cutoff": manifest.get("cutoff")}))


def check_folder(out: Path, overwrite: bool) -> None:
    """Refuse an existing non-empty ``--out`` folder before any work, naming the option to pass."""
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"--out {out} exists and is not empty; pass --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a data folder")


@user_errors
def validate(
    data: DataOption,
    engine: EngineOption = "local",
    scheduler: SchedulerOption = None,
    memory_limit: MemoryLimitOption = None,
    quiet: QuietOption = False,
) -> None:
    """Validate a data folder (flat or partitioned) against the touchpoint data contract.

    Prints the validation summary; with invalid data, lists every problem found (up to 50), each with its table,
    column, row count and first row, and exits with status 2. A partitioned folder is validated partition by
    partition (with --engine dask, one task per partition on the cluster), then across partitions (a customer in
    two partitions, rows of a customer held in another partition)."""
    from features.sources.io import read_tables
    from features.sources.partition_checks import validate_partitioned
    from features.sources.partitions import is_partitioned
    from training.engine.options import dask_client, engine_settings

    settings = engine_settings(engine, scheduler, memory_limit)
    with progress_bars(quiet) as bars:
        bars.note(f"validating {data}")
        if not is_partitioned(data):
            if settings.is_dask:
                bars.note(f"{data} is a flat folder: validated in this process (engage partition writes a "
                          "partitioned one for --engine dask)")
            report = read_tables(data).meta.get("validation")
        elif settings.is_dask:
            with dask_client(settings) as client:
                _, report = validate_partitioned(data, client)
        else:
            _, report = validate_partitioned(data)
    typer.echo(report.summary() if hasattr(report, "summary") else str(report))


@user_errors
def partition(
    data: DataOption,
    out: OutOption,
    partitions: Annotated[int, typer.Option(min=1, help="Number of partitions (hash of customer_id).")],
    overwrite: OverwriteOption = False,
    quiet: QuietOption = False,
) -> None:
    """Write a data folder (flat or partitioned) as a partitioned one: each table a folder of Parquet parts,
    hash-partitioned by customer_id, so that all of a customer's rows are in one partition.

    A partitioned input is re-partitioned one partition at a time (memory: one input plus one output partition).
    Prints one JSON line: rows per table, partitions and seconds."""
    import time

    from features.sources.repartition import repartition

    check_folder(out, overwrite)
    start = time.perf_counter()
    with progress_bars(quiet) as bars:
        rows = repartition(data, out, partitions, overwrite=overwrite,
                           progress=bars.step(f"partitioning {data} into {partitions} partitions"))
    typer.echo(json.dumps({"data": str(data), "out": str(out), "partitions": partitions, **rows,
                           "seconds": round(time.perf_counter() - start, 2)}))


@user_errors
def import_(
    name: Annotated[str, typer.Argument(help="Dataset: starbucks, online_retail, cdnow, telco, bank_marketing, "
                                             "online_shoppers, ifood_campaigns.")],
    source: Annotated[Path, typer.Option(help="The dataset's folder, e.g. ../shared/datasets/telco.")],
    out: OutOption,
    overwrite: OverwriteOption = False,
    quiet: QuietOption = False,
) -> None:
    """Import a real public dataset into the data contract's tables."""
    from features.sources.importers.registry import import_dataset
    from features.sources.io import write_tables

    check_folder(out, overwrite)
    with progress_bars(quiet) as bars:
        bars.note(f"importing {name} from {source}")
        tables = import_dataset(name, source)
        bars.note(f"writing {out}")
        write_tables(tables, out, overwrite=overwrite)
    counts = {t: len(getattr(tables, t)) for t in ("customers", "touchpoints", "outreach", "labels")
              if getattr(tables, t) is not None}
    typer.echo(json.dumps({"dataset": name, "out": str(out), **counts}))
