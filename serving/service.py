"""The BentoML scoring service for the CRM: churn, engagement, next best action, back-door defense.

Start it with ``engage serve`` (127.0.0.1 by default) or ``bentoml serve serving.service:EngageScoring``.
Configuration is read from the environment once, when the service starts:

==============================  ======================================================================
``ENGAGE_MODEL_PATH``           serve this MLflow model folder / pickle instead of the registry
``ENGAGE_MODEL_SOURCE=bento``   serve the model packed into a built Bento (``bentoml build``)
``ENGAGE_MLFLOW_CONFIG``        ``mlflow.yaml`` naming registry, model and alias (default ``./mlflow.yaml``)
``ENGAGE_API_TOKEN[_FILE]``     require ``Authorization: Bearer <token>`` on the API endpoints
``ENGAGE_DECISION_LOG``         append every returned decision to this JSON Lines file
``ENGAGE_GC_FREEZE``            ``0`` to skip ``gc.freeze()`` after loading (default on; see below)
``ENGAGE_ACTIONS``              action catalogue YAML shown by /metadata (default: the packaged one)
``ENGAGE_BATCH_LINGER_MS``      wait for concurrent requests before scoring a batch (default 1.5; 0: never)
``ENGAGE_REUSEPORT``            ``1``: each worker listens on its own SO_REUSEPORT socket (serving/reuseport.py)
==============================  ======================================================================

The model is loaded in a background thread: ``/livez`` answers at once, ``/readyz`` and the scoring
endpoints answer 503 until the model is loaded. After loading, the start-up heap is moved to the
permanent generation (``gc.freeze()``): the full garbage collections that BentoML 1.4's per-request
timeout timers provoke under load then no longer scan the hundreds of thousands of objects that pandas,
LightGBM and MLflow allocate at import, which removes most of their collection pauses (see
``training/bench/serve.py`` and the README for measurements). Those timers themselves are cancelled
once the response is sent (:func:`cancel_timeout_timers`): each one kept its request's context (trace
span, futures) alive for the whole traffic timeout, ~20 objects per request, which at a few hundred
requests per second is what the remaining full collections scanned.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import bentoml
from starlette.responses import JSONResponse

from features.contract.catalogue import load_catalogue
from features.contract.schema import CHANNELS, DIRECTIONS, KINDS, OUTREACH_CHANNELS, REFERRERS
from serving.auth import BearerAuthMiddleware
from serving.coalesce import CoalescingScorer
from serving.decision_log import DecisionLog
from serving.engine import ScoringEngine
from serving.loading import env_flag, env_path, load_system, source_from_env
from serving.requests import RequestError, as_cutoff, features_from_rows
from serving.responses import frame_to_results
from serving.reuseport import listen_on_own_socket, worker_fd
from serving.schemas import (
    CustomerIn,
    EmptyRequest,
    FeatureRow,
    FeatureScoreRequest,
    MetadataResponse,
    ScoreRequest,
    ScoreResponse,
    error_body,
)

logger = logging.getLogger("engage.serving")

TRAFFIC_TIMEOUT_S = 30


def cancel_timeout_timers() -> bool:
    """Make BentoML 1.4's ``TimeoutMiddleware`` cancel its per-request timer when the request is done.

    The middleware (1.4.39 and 1.4.40 alike) calls ``loop.call_later(timeout, ...)`` per request and never
    cancels the handle, so the request's context lives until the timeout. The replacement is the same
    logic (504 when nothing was sent within the timeout) plus the cancel. Applied only to 1.4.x, whose
    middleware has exactly this shape; returns whether the patch is in place.
    """
    try:
        from bentoml._internal.server.http import traffic
    except ImportError:
        return False
    middleware = getattr(traffic, "TimeoutMiddleware", None)
    if middleware is None or not bentoml.__version__.startswith("1.4.") or not hasattr(middleware, "_set_timer_out"):
        return False
    if getattr(middleware, "_engage_cancels_timers", False):
        return True

    async def __call__(self, scope, receive, send) -> None:  # noqa: N807 - replaces the class's __call__
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

        async def _send(message) -> None:
            if not waiter.done():
                waiter.set_result(None)
            await send(message)

        fut = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
        try:
            try:
                await waiter
            except TimeoutError:
                if fut.cancel():
                    body = {"error": f"Not able to process the request in {self.timeout} seconds"}
                    await JSONResponse(body, status_code=504)(scope, receive, send)
            else:
                await fut  # wait for the app to finish
        finally:
            timer.cancel()

    middleware.__call__ = __call__
    middleware._engage_cancels_timers = True
    return True


INLINE_RESPONSE_MAX = 64  # customers; larger answers are built in a worker thread


class GcMonitor:
    """Counts full (generation 2) garbage collections and their pauses, for /metadata and the load test."""

    def __init__(self) -> None:
        self.full_collections = 0
        self.max_pause_ms = 0.0
        self.total_pause_ms = 0.0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._start = time.perf_counter()
            return
        ms = 1000 * (time.perf_counter() - self._start)
        self.full_collections += 1
        self.total_pause_ms += ms
        self.max_pause_ms = max(self.max_pause_ms, ms)

    def reset(self) -> None:
        """Forget what happened so far (the deliberate collection before ``gc.freeze()`` is not a stall)."""
        self.full_collections = 0
        self.max_pause_ms = self.total_pause_ms = 0.0

    def snapshot(self) -> dict[str, float]:
        return {
            "gc_frozen_objects": gc.get_freeze_count(),
            "gc_full_collections": self.full_collections,
            "gc_max_full_pause_ms": round(self.max_pause_ms, 2),
            "gc_total_full_pause_ms": round(self.total_pause_ms, 2),
        }


class ModelHolder:
    """Loads the decision system once, in the background, and says whether it is ready."""

    def __init__(self, env: dict[str, str], on_loaded: Callable[[], None] | None = None):
        self.source = source_from_env(env)
        self.on_loaded = on_loaded
        self.freeze_heap = env_flag(env, "ENGAGE_GC_FREEZE", default=True)
        self.engine: ScoringEngine | None = None
        self.error: str | None = None
        self.loaded_at: datetime | None = None
        self._done = threading.Event()

    @property
    def ready(self) -> bool:
        return self.engine is not None

    def start(self) -> None:
        threading.Thread(target=self.load, name="engage-model-loader", daemon=True).start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until loading finished (successfully or not); returns readiness."""
        self._done.wait(timeout)
        return self.ready

    def load(self) -> None:
        t0 = time.perf_counter()
        try:
            system, info = load_system(self.source)
            engine = ScoringEngine(system, info)
            engine.warm_up()  # before readiness (and before gc.freeze): the first request pays nothing extra
            self.engine = engine
            self.loaded_at = datetime.now(UTC)
            logger.info(
                "model %s loaded from %s in %.1f s",
                info.version,
                self.source.describe(),
                time.perf_counter() - t0,
            )
            if self.freeze_heap:
                gc.collect()
                gc.freeze()
            if self.on_loaded is not None:
                self.on_loaded()
        except Exception as exc:  # the service stays alive and reports why it is not ready
            self.error = f"{type(exc).__name__}: {exc}"
            logger.error("model could not be loaded from %s: %s", self.source.describe(), self.error)
        finally:
            self._done.set()


def _not_ready(holder: ModelHolder) -> JSONResponse:
    detail = holder.error or "the model is still loading"
    return JSONResponse({"error": "model not ready", "detail": detail}, status_code=503)


def _bad_request(exc: Exception) -> JSONResponse:
    if isinstance(exc, RequestError):
        return JSONResponse(error_body(exc.title, exc.errors), status_code=422)
    # features.contract.validate.DataError names table, column, problem and count; the client sees it, the
    # server log does not (it may quote values).
    fields = {k: getattr(exc, k, None) for k in ("table", "column", "problem", "count")}
    return JSONResponse(
        error_body(
            "ScoreRequest",
            [
                {
                    "loc": [x for x in (fields["table"], fields["column"]) if x],
                    "type": "data_error",
                    "msg": str(exc),
                }
            ],
        ),
        status_code=422,
    )


def _is_data_error(exc: Exception) -> bool:
    return type(exc).__name__ == "DataError" and isinstance(exc, ValueError)


@bentoml.service(
    name="engage",
    traffic={"timeout": TRAFFIC_TIMEOUT_S},
    http={"host": "127.0.0.1"},
    logging={"access": {"request_content_length": True, "response_content_length": True}},
)
class EngageScoring:
    """Scores CRM customers with the champion decision system (features + churn + policy)."""

    def __init__(self) -> None:
        # Patched here, in the worker that serves, not on import (importing a module changes nothing).
        self.timers_cancelled = cancel_timeout_timers()
        env = dict(os.environ)
        fd = worker_fd(sys.argv) if env_flag(env, "ENGAGE_REUSEPORT", default=False) else None
        self.own_socket = fd is not None and listen_on_own_socket(fd)
        if getattr(EngageScoring, "bento", None) is not None and not env.get("ENGAGE_MODEL_PATH"):
            # Served from a built Bento (bentoml serve engage:latest): use the model packed into it.
            env.setdefault("ENGAGE_MODEL_SOURCE", "bento")
        self.gc_monitor = GcMonitor()
        self.holder = ModelHolder(env, on_loaded=self.gc_monitor.reset)
        log_path = env_path(env, "ENGAGE_DECISION_LOG")
        self.decision_log = DecisionLog(log_path) if log_path else None
        self.catalogue = load_catalogue(env.get("ENGAGE_ACTIONS"))
        gc.callbacks.append(self.gc_monitor)
        raw_linger = env.get("ENGAGE_BATCH_LINGER_MS", "1.5")
        try:
            linger_ms = float(raw_linger)
        except ValueError:
            raise ValueError(f"ENGAGE_BATCH_LINGER_MS: {raw_linger!r} is not a number of milliseconds") from None
        self.scorer = CoalescingScorer(lambda: self.holder.engine, linger_s=linger_ms / 1000)
        self.holder.start()

    def __is_ready__(self) -> bool:
        return self.holder.ready

    def _respond(self, results: list[dict[str, Any]], cutoff: Any, t0: float, kind: str) -> ScoreResponse:
        engine = self.holder.engine
        assert engine is not None
        if self.decision_log is not None:
            self.decision_log.write(results, cutoff=cutoff, source=kind, request_id=uuid.uuid4().hex)
        logger.debug(
            "%s: scored %d customers in %.1f ms", kind, len(results), 1000 * (time.perf_counter() - t0)
        )
        return ScoreResponse.model_validate(
            {
                "model_version": engine.info.version,
                "model_versions": engine.info.versions,
                "cutoff": cutoff.to_pydatetime(),
                "n_customers": len(results),
                "results": results,
            }
        )

    @bentoml.api(route="/score", input_spec=ScoreRequest)
    async def score(self, customers: list[CustomerIn], cutoff: datetime | None = None) -> ScoreResponse:
        """Score customers from their raw touchpoint histories (cutoff default: now)."""
        t0 = time.perf_counter()
        if self.holder.engine is None:
            return _not_ready(self.holder)  # type: ignore[return-value]
        job = self.scorer.submit(customers, None if cutoff is None else as_cutoff(cutoff))
        try:
            at, results = await asyncio.wrap_future(job)
        except Exception as exc:
            if isinstance(exc, RequestError) or _is_data_error(exc):
                return _bad_request(exc)  # type: ignore[return-value]
            raise
        if len(results) <= INLINE_RESPONSE_MAX:
            # Small answers are built on the event loop: a thread hop costs more than the work.
            return self._respond(results, at, t0, "score")
        return await asyncio.to_thread(self._respond, results, at, t0, "score")

    @bentoml.api(route="/score_features", input_spec=FeatureScoreRequest)
    def score_features(self, rows: list[FeatureRow], cutoff: datetime | None = None) -> ScoreResponse:
        """Score customers from precomputed feature rows (see /metadata for the feature names)."""
        t0 = time.perf_counter()
        engine = self.holder.engine
        if engine is None:
            return _not_ready(self.holder)  # type: ignore[return-value]
        at = as_cutoff(cutoff)
        try:
            F = features_from_rows(rows, engine.feature_names)
        except RequestError as exc:
            return _bad_request(exc)  # type: ignore[return-value]
        return self._respond(frame_to_results(engine.score_features(F, at)), at, t0, "score_features")

    @bentoml.api(route="/metadata", input_spec=EmptyRequest)
    def metadata(self) -> MetadataResponse:
        """Model version(s), feature list, action catalogue and the contract's vocabularies."""
        engine = self.holder.engine
        return MetadataResponse(
            ready=engine is not None,
            model_version=engine.info.version if engine else None,
            model_versions=engine.info.versions if engine else {},
            model_source=engine.info.source if engine else self.holder.source.describe(),
            loaded_at=self.holder.loaded_at,
            load_error=self.holder.error,
            features=engine.feature_names if engine else [],
            attributes=engine.attributes if engine else [],
            actions=[
                {"id": a.id, "channel": a.channel, "offer": a.offer, "cost": a.cost}
                for a in self.catalogue.actions
            ],
            runtime={
                **self.gc_monitor.snapshot(),
                "pid": os.getpid(),
                "score_batches": self.scorer.batches,
                "score_requests": self.scorer.requests,
                "timeout_timers_cancelled": float(self.timers_cancelled),
                "own_listening_socket": float(self.own_socket),
            },
            vocabularies={
                "channel": list(CHANNELS),
                "kind": list(KINDS),
                "direction": list(DIRECTIONS),
                "referrer": list(REFERRERS),
                "outreach_channel": list(OUTREACH_CHANNELS),
            },
        )


EngageScoring.add_asgi_middleware(BearerAuthMiddleware)
