"""Looking at the model registry without writing to it: whether a SQLite registry can hold a champion at all,
and a lock for opening the MLflow store.

MLflow creates a SQLite registry's file and runs its schema migrations when a store is first opened, without a
lock: two server workers opening a registry that does not exist yet race on the migrations, and even a read
creates the file. :func:`check_registry` looks first, read-only: a registry file that does not exist, or has no
MLflow tables yet, has no champion (:class:`NoChampionError`) and is left untouched. :func:`registry_lock`
serialises the opening of the store among the processes that serve (an exclusive ``flock`` on
``<db>.init.lock`` beside the file).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from features.contract.errors import ModelNotFoundError

NO_CHAMPION = "no champion model in {registry}; run `engage demo` or `engage train`"


class NoChampionError(ModelNotFoundError):
    """The registry has no model with the champion alias (or does not exist yet)."""


class RegistryUnreadableError(RuntimeError):
    """The registry file exists but cannot be read now (locked, or not a database)."""


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI (None for other stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?", 1)[0])


def registry_tables(db: Path) -> set[str]:
    """The tables of a SQLite database, read without writing (the file is not created)."""
    try:
        with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=5)) as conn:
            return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        raise RegistryUnreadableError(f"the MLflow registry {db} cannot be read: {exc}") from exc


def mlflow_tables() -> set[str]:
    """The tables MLflow's store needs: with all of them present, opening the store creates and migrates nothing
    (MLflow initialises a database exactly when one of them is missing)."""
    try:
        from mlflow.store.db import utils
    except ImportError:  # pragma: no cover - another MLflow layout: the registry tables at least
        return {"registered_models", "model_versions", "registered_model_aliases"}
    return set(utils.Base.metadata.tables)


def check_registry(cfg: dict[str, Any]) -> None:
    """Raise :class:`NoChampionError` when the SQLite registry of ``cfg`` (``read_registry_config``) does not exist
    or is not (or not yet completely) an MLflow database; other stores are not checked here."""
    db = sqlite_file(cfg["tracking_uri"])
    if db is None:
        return
    tables = registry_tables(db) if db.is_file() else set()
    # The first test needs no MLflow import; the second catches a registry another process is creating right now.
    if "registered_model_aliases" not in tables or not mlflow_tables() <= tables:
        raise NoChampionError(NO_CHAMPION.format(registry=cfg["tracking_uri"]))


def sqlite_champion(cfg: dict[str, Any]) -> tuple[str, int]:
    """``(registered model name, version)`` of the champion of a SQLite registry, read with SQLite alone (no MLflow
    import, no store opened): what ``engage serve`` checks before it starts workers. Raises
    :class:`NoChampionError` when there is none."""
    db = sqlite_file(cfg["tracking_uri"])
    assert db is not None
    if not db.is_file() or "registered_model_aliases" not in registry_tables(db):
        raise NoChampionError(NO_CHAMPION.format(registry=cfg["tracking_uri"]))
    try:
        with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=5)) as conn:
            for name in cfg["names"]:
                row = conn.execute(
                    "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?", (name, cfg["alias"])
                ).fetchone()
                if row is not None:
                    return name, int(row[0])
    except sqlite3.Error as exc:
        raise RegistryUnreadableError(f"the MLflow registry {db} cannot be read: {exc}") from exc
    raise NoChampionError(NO_CHAMPION.format(registry=cfg["tracking_uri"]))


@contextlib.contextmanager
def registry_lock(cfg: dict[str, Any]) -> Iterator[None]:
    """Exclusive among processes while the MLflow store of ``cfg`` is opened (SQLite registries only)."""
    db = sqlite_file(cfg["tracking_uri"])
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        fcntl = None  # type: ignore[assignment]
    if db is None or fcntl is None or not db.parent.is_dir():
        yield
        return
    fd = os.open(f"{db}.init.lock", os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
