"""The engine switch shared by ``engage features``, ``score``, ``train churn`` and ``train policy``.

``--engine local`` (the default) reads the whole data folder into one process. ``--engine dask`` works
partition by partition: with ``--scheduler tcp://host:8786`` on an existing cluster, without it on a
``LocalCluster`` started for the command, sized to the machine's cores and a memory budget
(``--memory-limit``, default: the machine's available memory).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Literal

import typer

Engine = Literal["local", "dask"]

EngineOption = Annotated[str, typer.Option(
    "--engine", help="local: the whole folder in one process (small data); dask: partition by partition on a "
                     "Dask cluster (--scheduler, else a local cluster sized to this machine).")]
SchedulerOption = Annotated[str | None, typer.Option(
    "--scheduler", help="With --engine dask: the address of an existing Dask scheduler (tcp://host:8786); "
                        "default: start a local cluster for this command.")]
MemoryLimitOption = Annotated[str | None, typer.Option(
    "--memory-limit", help="With --engine dask and no --scheduler: the memory budget of the local cluster in all "
                           "(e.g. 12GB; default: the machine's available memory), split between its workers.")]


@dataclass(frozen=True)
class EngineSettings:
    """Which engine, and for Dask which cluster and memory budget (``memory_limit`` in bytes, all workers)."""

    engine: Engine = "local"
    scheduler: str | None = None
    memory_limit: int | None = None
    workers: int | None = None

    @property
    def is_dask(self) -> bool:
        return self.engine == "dask"


def parse_memory(text: str | None) -> int | None:
    """``"12GB"``, ``"800MiB"``, ``"2e9"`` -> bytes; None stays None. A bad value is a ValueError naming it."""
    if text is None:
        return None
    from dask.utils import parse_bytes

    try:
        value = int(parse_bytes(text))
    except (ValueError, TypeError):
        raise ValueError(f"--memory-limit {text!r}: not a size (use e.g. 12GB, 800MiB or 2e9)") from None
    if value <= 0:
        raise ValueError(f"--memory-limit {text!r}: must be positive")
    return value


def engine_settings(engine: str = "local", scheduler: str | None = None,
                    memory_limit: str | None = None) -> EngineSettings:
    """Check the engine options together: a scheduler or memory limit without ``--engine dask`` is an error."""
    if engine not in ("local", "dask"):
        raise ValueError(f"--engine {engine!r}: use local or dask")
    if engine == "local" and (scheduler is not None or memory_limit is not None):
        given = "--scheduler" if scheduler is not None else "--memory-limit"
        raise ValueError(f"{given} applies to --engine dask only")
    if scheduler is not None and memory_limit is not None:
        raise ValueError("--memory-limit sizes the local cluster; an existing cluster (--scheduler) has its own")
    if scheduler is not None and not scheduler.strip():
        raise ValueError("--scheduler: give an address such as tcp://127.0.0.1:8786")
    return EngineSettings(engine=engine, scheduler=scheduler, memory_limit=parse_memory(memory_limit))  # type: ignore[arg-type]


def default_memory_budget() -> int:
    """The local cluster's budget when none is given: 80 % of the memory available now."""
    import psutil

    return int(psutil.virtual_memory().available * 0.8)


@contextlib.contextmanager
def dask_client(settings: EngineSettings) -> Iterator:
    """A ``distributed.Client``: connected to ``settings.scheduler``, or to a ``LocalCluster`` started here (one
    single-threaded worker process per core, the memory budget split between them) and closed on exit."""
    from distributed import Client, LocalCluster

    if settings.scheduler is not None:
        try:
            client = Client(settings.scheduler, timeout="20s")
        except OSError as exc:
            raise ConnectionError(f"--scheduler {settings.scheduler}: cannot reach a Dask scheduler there ({exc})") \
                from None
        with client:
            yield client
        return
    workers = settings.workers or os.cpu_count() or 1
    budget = settings.memory_limit or default_memory_budget()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=budget // workers,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client
