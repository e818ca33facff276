"""The decision log: every decision the service or batch returns, with its propensity, for future
off-policy evaluation (JSON Lines, one object per customer decision), rotated by size and time.

This is a data file, not an application log: it holds customer ids on purpose, so that decisions can
be joined with later outcomes. Each call appends its lines with one ``write`` on a file opened with
``O_APPEND``, so concurrent workers do not interleave lines.

Rotation: before a write, the current file is renamed to ``<stem>.<UTC time of rotation><suffix>`` (e.g.
``decisions.20260105T000002.104381Z.jsonl``) when the write would take it past ``max_bytes`` or when its last
write lies in an earlier period (hour or UTC day) than now; so a rotated file holds one period's decisions at
most, and its name sorts in time order. Only the newest ``keep`` rotated files are kept. Several worker
processes share one log: the check, the rename and the append happen under an exclusive ``flock`` on
``<log>.lock``, so no process appends to a file another has just rotated away.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: one process at a time then
    fcntl = None  # type: ignore[assignment]

FIELDS = (
    "customer_id",
    "model_version",
    "churn_probability",
    "defense_target",
    "cold_start",
    "no_contact_reason",
)
PERIODS: dict[str, str | None] = {"none": None, "hourly": "%Y%m%d%H", "daily": "%Y%m%d"}
_STAMP = re.compile(r"\d{8}T\d{6}\.\d{6}Z(-\d+)?")


@dataclass(frozen=True)
class Rotation:
    """When the decision log starts a new file (``max_bytes``: size, ``None`` for none; ``every``: ``none``,
    ``hourly`` or ``daily``, in UTC) and how many rotated files it keeps (``keep``; 0 keeps all)."""

    max_bytes: int | None = 256 * 2**20
    every: str = "daily"
    keep: int = 30

    def __post_init__(self) -> None:
        if self.every not in PERIODS:
            raise ValueError(f"rotation period {self.every!r} is not one of {', '.join(PERIODS)}")
        if self.max_bytes is not None and self.max_bytes <= 0:
            raise ValueError("the rotation size must be positive")
        if self.keep < 0:
            raise ValueError("the number of rotated files to keep must be 0 (all) or more")

    def period(self, epoch_s: float) -> str | None:
        """The UTC hour or day ``epoch_s`` falls in (None without time-based rotation)."""
        fmt = PERIODS[self.every]
        return None if fmt is None else datetime.fromtimestamp(epoch_s, UTC).strftime(fmt)


def _records(results: Iterable[Mapping[str, Any]], *, cutoff: Any, source: str, request_id: str | None) -> list[str]:
    logged_at = datetime.now(UTC).isoformat()
    lines = []
    for r in results:
        nba = r.get("next_best_action") or {}
        record = {
            "logged_at": logged_at,
            "source": source,
            "request_id": request_id,
            "cutoff": str(cutoff),
            **{k: r.get(k) for k in FIELDS},
            "action": nba.get("action"),
            "channel": nba.get("channel"),
            "offer": nba.get("offer"),
            "propensity": nba.get("propensity"),
            "expected_incremental_value": nba.get("expected_incremental_value"),
        }
        lines.append(json.dumps(record, default=str))
    return lines


class DecisionLog:
    """Append-only JSON Lines file of decisions, rotated as ``rotation`` says."""

    def __init__(self, path: str | Path, rotation: Rotation | None = None):
        self.path = Path(path)
        self.rotation = rotation or Rotation()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._lock_fd: int | None = None

    def write(
        self, results: Iterable[Mapping[str, Any]], *, cutoff: Any, source: str, request_id: str | None = None
    ) -> int:
        """Append one line per result; returns the number of lines written."""
        lines = _records(results, cutoff=cutoff, source=source, request_id=request_id)
        if not lines:
            return 0
        data = ("\n".join(lines) + "\n").encode()
        with self._lock, self._exclusive():
            self._rotate_if_due(len(data), time.time())
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        return len(lines)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the log's lock file against other processes (the thread lock covers this one)."""
        if fcntl is None:
            yield
            return
        if self._lock_fd is None:
            self._lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o640)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _rotate_if_due(self, incoming: int, now: float) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        if st.st_size == 0:
            return
        rot = self.rotation
        too_big = rot.max_bytes is not None and st.st_size + incoming > rot.max_bytes
        new_period = rot.period(now) != rot.period(st.st_mtime)
        if not (too_big or new_period):
            return
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = self.path.with_name(f"{self.path.stem}.{stamp}{self.path.suffix}")
        n = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.stem}.{stamp}-{n}{self.path.suffix}")
            n += 1
        os.rename(self.path, target)
        if rot.keep:
            for old in rotated_files(self.path)[: -rot.keep]:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()

    def close(self) -> None:
        """Release the lock file (a later write opens it again)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def rotated_files(path: str | Path) -> list[Path]:
    """The rotated files of the decision log at ``path``, oldest first."""
    path = Path(path)
    prefix, suffix = f"{path.stem}.", path.suffix
    found = []
    for p in path.parent.glob(f"{path.stem}.*{suffix}"):
        middle = p.name[len(prefix) : len(p.name) - len(suffix)] if suffix else p.name[len(prefix) :]
        if _STAMP.fullmatch(middle):
            found.append(p)
    return sorted(found, key=lambda p: p.name)


def read_decision_log(path: str | Path, *, rotated: bool = True) -> list[dict[str, Any]]:
    """All records of a decision log, oldest first (with ``rotated``, those of its rotated files too)."""
    files = [*rotated_files(path), Path(path)] if rotated else [Path(path)]
    return [
        json.loads(line) for f in files if f.exists() for line in f.read_text().splitlines() if line.strip()
    ]
