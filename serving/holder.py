"""The served model's life in a worker: loaded in the background, retried until it loads, then swapped for a
newer one without a request failing.

The worker answers ``/livez`` at once and 503 on ``/readyz`` and the scoring endpoints until a model is loaded.
A failed first load (no champion yet, a registry that is locked or busy, an unreadable model) is reported through
:attr:`ModelHolder.error` (``/metadata``'s ``load_error``) and logged once as an ERROR without traceback, and
the load is tried again every ``retry_s`` seconds, so a champion registered later, or a lock released later,
is picked up within one retry interval. After loading, the start-up heap is moved to the permanent
generation (``gc.freeze()``; see ``serving/service.py``).

:meth:`ModelHolder.reload` (called by :mod:`serving.reload` when the champion moved) loads the new model beside
the served one, off the event loop, and swaps it in with one reference assignment: a request reads
:attr:`ModelHolder.engine` once and scores, answers and names its version with that engine, so a request in
flight finishes on the old model and the next one starts on the new. A model that fails to load is never
swapped in: the old one keeps serving, readiness holds, and :attr:`ModelHolder.reload_error` says what failed
(``/readyz`` and ``/metadata`` report it) until a later reload succeeds. While both models are loaded the
worker holds two of them in memory.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from serving.engine import ScoringEngine
from serving.loading import ModelSource, load_system, source_marker

logger = logging.getLogger("engage.serving")

RELEASE_WAIT_S = 60.0  # how long a swap waits for requests in flight to drop the old model before collecting it


@dataclass(frozen=True)
class ReloadOutcome:
    """What one reload did: ``status`` is ``swapped``, ``unchanged``, ``failed`` or ``not-ready`` (no model is
    loaded yet: the first load, still retrying, will load the newest); ``version`` is what serves now."""

    status: str
    version: str | None
    previous: str | None = None
    error: str | None = None
    seconds: float = 0.0


def _marker(source: ModelSource) -> str | None:
    """The source's marker before a load, or None when it cannot be read (the load itself will tell why)."""
    try:
        return source_marker(source)
    except Exception:  # the load that follows reports the real problem
        return None


class ModelHolder:
    """Loads the decision system in a background thread, retrying, says whether it is ready, and swaps in newer
    versions (:meth:`reload`)."""

    def __init__(
        self,
        source: ModelSource,
        *,
        retry_s: float = 10.0,
        freeze_heap: bool = True,
        on_loaded: Callable[[], None] | None = None,
    ):
        self.source = source
        self.retry_s = retry_s
        self.freeze_heap = freeze_heap
        self.on_loaded = on_loaded
        self.engine: ScoringEngine | None = None
        self.marker: str | None = None  # what the source pointed at when the served model was loaded
        self.error: str | None = None
        self.loaded_at: datetime | None = None
        self.attempts = 0
        self.reload_error: str | None = None
        self.reloads = 0
        self.reload_failures = 0
        self._tried = threading.Event()
        self._stop = threading.Event()
        self._reloading = threading.Lock()

    @property
    def ready(self) -> bool:
        return self.engine is not None

    @property
    def version(self) -> str | None:
        """The version serving now (None before the first load)."""
        engine = self.engine
        return engine.info.version if engine is not None else None

    def start(self) -> None:
        """Load in the background, retrying every ``retry_s`` seconds until loaded (or :meth:`stop`)."""
        threading.Thread(target=self._run, name="engage-model-loader", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the first load attempt finished (successfully or not); returns readiness."""
        self._tried.wait(timeout)
        return self.ready

    def _run(self) -> None:
        while not self.load() and not self._stop.wait(self.retry_s):
            pass

    def _build(self) -> tuple[ScoringEngine, str | None]:
        """Load the source into a warmed-up engine; returns it with the marker it was loaded at."""
        marker = _marker(self.source)
        system, info = load_system(self.source)
        engine = ScoringEngine(system, info)
        engine.warm_up()  # before it serves (and before gc.freeze): the first request pays nothing extra
        # The registry's marker is the version loaded, exactly (the alias may have moved while loading).
        return engine, info.version if self.source.kind == "mlflow" else marker

    def load(self) -> bool:
        """One first-load attempt; returns whether the model is now loaded."""
        t0 = time.perf_counter()
        self.attempts += 1
        try:
            engine, marker = self._build()
        except Exception as exc:  # the service stays alive, reports why it is not ready and tries again
            self._failed(f"{type(exc).__name__}: {exc}")
            return False
        finally:
            self._tried.set()
        self.engine, self.marker = engine, marker
        self.loaded_at = datetime.now(UTC)
        self.error = None
        logger.info("model %s loaded from %s in %.1f s", engine.info.version, self.source.describe(),
                    time.perf_counter() - t0)
        if self.freeze_heap:
            gc.collect()
            gc.freeze()
        if self.on_loaded is not None:
            self.on_loaded()
        return True

    def reload(self) -> ReloadOutcome:
        """Load the source again beside the served model and swap it in (see the module docstring).

        The same registered version is not swapped (``unchanged``); a model file or folder is swapped whenever
        it loads. One reload at a time; a reload asked for while another runs waits for it.
        """
        with self._reloading:
            old = self.engine
            if old is None:
                return ReloadOutcome("not-ready", None, error=self.error)
            t0 = time.perf_counter()
            try:
                engine, marker = self._build()
            except Exception as exc:
                return self.record_reload_failure(f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)
            seconds = time.perf_counter() - t0
            previous = old.info.version
            if engine.info.version == previous and self.source.kind != "path":
                self.marker, self.reload_error = marker, None
                return ReloadOutcome("unchanged", previous, previous, seconds=seconds)
            self.engine, self.marker = engine, marker  # the swap: the next request reads the new engine
            self.loaded_at = datetime.now(UTC)
            self.reload_error = None
            self.reloads += 1
            logger.info("model %s swapped in for %s (loaded from %s in %.1f s)", engine.info.version, previous,
                        self.source.describe(), seconds)
            del engine
            if self.freeze_heap:
                gone = weakref.ref(old)
                del old  # requests in flight hold the last references now
                threading.Thread(target=self._release, args=(gone,), name="engage-model-release", daemon=True).start()
            return ReloadOutcome("swapped", self.version, previous, seconds=seconds)

    def record_reload_failure(self, error: str, seconds: float = 0.0) -> ReloadOutcome:
        """Report a reload that did not happen (the served model stays): ``reload_error`` until one succeeds."""
        # The first failure and each new kind is an ERROR; the same one again (a periodic retry) only a DEBUG line.
        level = logging.DEBUG if error == self.reload_error else logging.ERROR
        self.reload_error = error
        self.reload_failures += 1
        served = self.version
        logger.log(level, "reload from %s failed, still serving %s: %s", self.source.describe(), served, error)
        return ReloadOutcome("failed", served, served, error, seconds)

    def _release(self, gone: weakref.ref) -> None:
        """Once requests in flight dropped the old model (``gone()`` is None), collect it and freeze the heap again.

        The old model was frozen with the start-up heap, where the collector never looks: its reference cycles
        would stay in memory for good. Unfreezing, collecting and freezing again costs one full collection per
        swap (a pause of the worker, not a failed request).
        """
        deadline = time.monotonic() + RELEASE_WAIT_S
        while gone() is not None and time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(0.05)
        waited = RELEASE_WAIT_S - (deadline - time.monotonic())
        t0 = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        logger.info("previous model released %.1f s after the swap (%s); collecting took %.0f ms", waited,
                    "no request held it any more" if gone() is None else "still referenced",
                    1000 * (time.perf_counter() - t0))

    def _failed(self, error: str) -> None:
        # The first failure, and each new kind of failure, is an ERROR; the same one again only a DEBUG line.
        level = logging.DEBUG if error == self.error else logging.ERROR
        self.error = error
        logger.log(level, "model could not be loaded from %s: %s (retrying every %g s)",
                   self.source.describe(), error, self.retry_s)
