"""Following the champion: when the registry's champion alias moves, each worker loads the new version and swaps it
in (:meth:`serving.holder.ModelHolder.reload`).

A :class:`ReloadWatcher` thread per worker checks every ``ENGAGE_RELOAD_S`` seconds (0: never) what the model
source points at (:func:`serving.loading.source_marker`: one read of the registry's alias, or a model file's
size and time) and reloads when that differs from what was loaded. ``POST /admin/reload`` asks for a check at
once (:meth:`ReloadWatcher.request`): the worker that receives it checks and reloads, and tells the server's
other workers through a :class:`ReloadSignal` file, which every watcher looks at twice a second, so all workers
follow within a second of each other whatever the interval.

A version that fails to load is not swapped in (the old one keeps serving and the error is reported); the
periodic check tries the same version again after one interval, then after twice as long, up to
:data:`MAX_BACKOFF_S`, and a new version or ``/admin/reload`` tries at once. A registry that cannot be read, or
that no longer has a champion, is reported the same way and changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from pathlib import Path

from serving.holder import ModelHolder, ReloadOutcome
from serving.loading import source_marker

logger = logging.getLogger("engage.serving")

POLL_S = 0.5  # how often a watcher looks for a reload asked of another worker
MAX_BACKOFF_S = 600.0


class ReloadSignal:
    """A file shared by the workers of one server: writing a new stamp asks every worker to check now.

    The workers of a ``bentoml serve`` are children of one supervisor process: its id names the file, in a folder
    of this user's under the temporary directory. Anything unexpected (a folder owned by someone else, a read-only
    file system) turns signalling off: each worker then follows on its own interval.
    """

    def __init__(self, path: Path | None):
        self.path = path
        self._seen = self._read()

    @classmethod
    def for_this_server(cls) -> ReloadSignal:
        folder = Path(tempfile.gettempdir()) / f"engage-reload-{os.getuid() if hasattr(os, 'getuid') else 0}"
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            if hasattr(os, "getuid") and folder.stat().st_uid != os.getuid():
                raise PermissionError(f"{folder} belongs to another user")
        except OSError as exc:
            logger.warning("reload signal off (%s): each worker follows the champion on its own interval", exc)
            return cls(None)
        return cls(folder / f"server-{os.getppid()}")

    def _read(self) -> str | None:
        if self.path is None:
            return None
        try:
            return self.path.read_text()
        except OSError:
            return None

    def send(self) -> None:
        """Ask every worker of this server to check now (this one included, which ignores its own stamp)."""
        if self.path is None:
            return
        stamp = f"{os.getpid()}:{time.time_ns()}"
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(stamp)
            os.replace(tmp, self.path)  # readers see the old stamp or the new one, never half of one
        except OSError as exc:
            logger.warning("could not signal the other workers to reload (%s)", exc)
            return
        self._seen = stamp

    def changed(self) -> bool:
        """Whether another worker sent a stamp since the last look."""
        stamp = self._read()
        if stamp is None or stamp == self._seen:
            return False
        self._seen = stamp
        return True


class ReloadWatcher:
    """Checks the model source on an interval and on request, and reloads the holder when it moved."""

    def __init__(
        self,
        holder: ModelHolder,
        *,
        period_s: float,
        signal: ReloadSignal | None = None,
        on_outcome: Callable[[ReloadOutcome], None] | None = None,
        poll_s: float = POLL_S,
    ):
        self.holder = holder
        self.period_s = float(period_s)
        self.signal = signal or ReloadSignal(None)
        self.on_outcome = on_outcome
        self.poll_s = poll_s
        self.checks = 0
        self._requests: queue.SimpleQueue[Future] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._next_check = time.monotonic() + self.period_s
        self._failed: str | None = None  # the marker whose load failed last, and when to try it again
        self._retry_at = 0.0
        self._backoff = self.period_s

    def start(self) -> None:
        threading.Thread(target=self._run, name="engage-reload-watcher", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def request(self) -> Future:
        """Check now, in this worker (the future gives the :class:`ReloadOutcome`), and ask the others to."""
        future: Future = Future()
        self._requests.put(future)
        self.signal.send()
        self._wake.set()
        return future

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            asked = self._take_requests()
            signalled = self.signal.changed()
            due = self.period_s > 0 and time.monotonic() >= self._next_check
            if not (asked or signalled or due):
                continue
            try:
                outcome = self.check(forced=bool(asked) or signalled)
            except Exception as exc:  # never let the watcher die: report and go on
                outcome = ReloadOutcome("failed", self.holder.version, error=f"{type(exc).__name__}: {exc}")
            for future in asked:
                with contextlib.suppress(InvalidStateError):  # the asker stopped waiting
                    future.set_result(outcome)
            if self.period_s > 0:
                self._next_check = time.monotonic() + self.period_s

    def _take_requests(self) -> list[Future]:
        taken = []
        with contextlib.suppress(queue.Empty):
            while True:
                taken.append(self._requests.get_nowait())
        return taken

    def check(self, *, forced: bool = False) -> ReloadOutcome:
        """Compare the source with what is served and reload if it moved; ``forced`` ignores the back-off of a
        version that failed to load."""
        self.checks += 1
        holder = self.holder
        if not holder.ready:
            return ReloadOutcome("not-ready", None, error=holder.error)  # the first load is still retrying
        try:
            marker = source_marker(holder.source)
        except Exception as exc:  # no champion any more, or the registry cannot be read now: keep serving
            return self._report(holder.record_reload_failure(f"checking {holder.source.describe()}: "
                                                             f"{type(exc).__name__}: {exc}"))
        if marker is None or marker == holder.marker:
            if marker is not None and holder.reload_error is not None and marker == holder.marker:
                holder.reload_error = None  # the alias moved back to the served version: nothing is wrong now
            return ReloadOutcome("unchanged", holder.version, holder.version)
        if not forced and marker == self._failed and time.monotonic() < self._retry_at:
            return ReloadOutcome("failed", holder.version, holder.version, holder.reload_error)
        outcome = holder.reload()
        if outcome.status == "failed":
            self._backoff = self._backoff * 2 if marker == self._failed else max(self.period_s, POLL_S)
            self._backoff = min(self._backoff, MAX_BACKOFF_S)
            self._failed, self._retry_at = marker, time.monotonic() + self._backoff
        else:
            self._failed = None
        return self._report(outcome)

    def _report(self, outcome: ReloadOutcome) -> ReloadOutcome:
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome
