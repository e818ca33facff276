"""File locks that several engage processes share: one promotion at a time, and proof that a run's process lives.

MLflow has no compare-and-set on aliases, so engage serialises promotions itself with an exclusive lock on a
file in the registry's lock folder (``lock_dir`` in ``mlflow.yaml``; by default beside a SQLite registry).
The operating system releases such a lock when its holder dies, even by SIGKILL, so a lock nobody holds also
proves that the process that took it has ended: each training run holds one for its whole life, and the next
run uses that to tell a killed run from a live one. Locks are POSIX ``flock`` locks: every process that
trains against one registry must see the same lock folder (one machine, or a shared file system with working
locks).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from features.contract.errors import RegistryBusyError


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)


def try_lock(path: str | Path) -> int | None:
    """Take the exclusive lock on ``path`` if nobody holds it: the open descriptor, else ``None``."""
    fd = _open(Path(path))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def release(fd: int) -> None:
    """Release a lock taken by :func:`try_lock` (closing the descriptor releases it)."""
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@contextlib.contextmanager
def exclusive_lock(path: str | Path, *, timeout: float, what: str) -> Iterator[None]:
    """Hold the exclusive lock on ``path``, waiting up to ``timeout`` seconds (polling with backoff).

    A lock still held by another process after ``timeout`` is a :class:`RegistryBusyError` naming ``what``
    waited and the lock file.
    """
    path = Path(path)
    deadline = time.monotonic() + max(0.0, timeout)
    delay = 0.05
    while (fd := try_lock(path)) is None:
        if time.monotonic() >= deadline:
            raise RegistryBusyError(
                f"{what}: another engage process has held the lock {path} for more than {timeout:g} s; let it "
                "finish (or raise lock_timeout_seconds in mlflow.yaml), then run this command again"
            )
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    try:
        yield
    finally:
        release(fd)


@contextlib.contextmanager
def held_for_life(path: str | Path) -> Iterator[Path]:
    """Hold a fresh lock on ``path`` while the block runs (the proof that this process is alive); the file
    is removed afterwards."""
    path = Path(path)
    fd = try_lock(path)
    if fd is None:
        raise RuntimeError(f"{path}: lock already held (lock names must be unique)")
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        release(fd)
