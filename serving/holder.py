"""The served model's life in a worker: loaded in the background, retried until it loads, then kept.

The worker answers ``/livez`` at once and 503 on ``/readyz`` and the scoring endpoints until a model is loaded.
A failed load (no champion yet, a registry that is locked or busy, an unreadable model) is reported through
:attr:`ModelHolder.error` (``/metadata``'s ``load_error``) and logged once as an ERROR without traceback, and
the load is tried again every ``retry_s`` seconds, so a champion registered later, or a lock released later,
is picked up within one retry interval. After loading, the start-up heap is moved to the permanent
generation (``gc.freeze()``; see ``serving/service.py``).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from serving.engine import ScoringEngine
from serving.loading import ModelSource, load_system

logger = logging.getLogger("engage.serving")


class ModelHolder:
    """Loads the decision system in a background thread, retrying, and says whether it is ready."""

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
        self.error: str | None = None
        self.loaded_at: datetime | None = None
        self.attempts = 0
        self._tried = threading.Event()
        self._stop = threading.Event()

    @property
    def ready(self) -> bool:
        return self.engine is not None

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

    def load(self) -> bool:
        """One load attempt; returns whether the model is now loaded."""
        t0 = time.perf_counter()
        self.attempts += 1
        try:
            system, info = load_system(self.source)
            engine = ScoringEngine(system, info)
            engine.warm_up()  # before readiness (and before gc.freeze): the first request pays nothing extra
        except Exception as exc:  # the service stays alive, reports why it is not ready and tries again
            self._failed(f"{type(exc).__name__}: {exc}")
            return False
        finally:
            self._tried.set()
        self.engine = engine
        self.loaded_at = datetime.now(UTC)
        self.error = None
        logger.info("model %s loaded from %s in %.1f s", info.version, self.source.describe(), time.perf_counter() - t0)
        if self.freeze_heap:
            gc.collect()
            gc.freeze()
        if self.on_loaded is not None:
            self.on_loaded()
        return True

    def _failed(self, error: str) -> None:
        # The first failure, and each new kind of failure, is an ERROR; the same one again only a DEBUG line.
        level = logging.DEBUG if error == self.error else logging.ERROR
        self.error = error
        logger.log(level, "model could not be loaded from %s: %s (retrying every %g s)",
                   self.source.describe(), error, self.retry_s)
