"""The BentoML scoring service for the CRM: churn, engagement, next best action, back-door defense.

Start it with ``engage serve`` (127.0.0.1 by default) or ``bentoml serve serving.service:EngageScoring``.
Configuration is read from the environment once, when the service starts (:mod:`serving.settings`); a bad
setting stops the worker from starting, with a message naming the variable:

==================================  ==================================================================
``ENGAGE_MODEL_PATH``               serve this MLflow model folder / pickle instead of the registry
``ENGAGE_MODEL_SOURCE=bento``       serve the model packed into a built Bento (``bentoml build``)
``ENGAGE_MLFLOW_CONFIG``            ``mlflow.yaml`` naming registry, model and alias (default ``./mlflow.yaml``)
``ENGAGE_LOAD_RETRY_S``             while no model is loaded, try again this often (default 10)
``ENGAGE_RELOAD_S``                 check this often whether the champion moved, and swap it in (default 30; 0: never)
``ENGAGE_INSECURE=1``               listen on an address other machines reach without a token (serving/binding.py)
``ENGAGE_API_TOKEN[_FILE]``         require ``Authorization: Bearer <token>`` (>= 16 characters) on the API and
                                    on ``POST /admin/reload``
``ENGAGE_MAX_BODY_MB``              larger request bodies get 413 (default 64)
``ENGAGE_MAX_REQUEST_TOUCHPOINTS``  more touchpoints in one request get 413 (default 500,000)
``ENGAGE_SLICE_TOUCHPOINTS``        larger requests are scored in slices of about this size (default 20,000)
``ENGAGE_DECISION_LOG``             append every returned decision to this JSON Lines file
``ENGAGE_DECISION_LOG_MAX_MB``      rotate the decision log at this size (default 256; 0: never)
``ENGAGE_DECISION_LOG_ROTATE``      and at each new UTC ``day``/``hour`` (default daily; ``none``)
``ENGAGE_DECISION_LOG_KEEP``        rotated decision-log files kept (default 30; 0: all)
``ENGAGE_LOG_LEVEL``                engage's own log lines from this level (default info; debug, warning, error)
``ENGAGE_GC_FREEZE``                ``0`` to skip ``gc.freeze()`` after loading (default on; see below)
``ENGAGE_ACTIONS``                  action catalogue YAML shown by /metadata (default: the packaged one)
``ENGAGE_BATCH_LINGER_MS``          wait for concurrent requests before scoring a batch (default 1.5; 0: never)
``ENGAGE_REUSEPORT``                ``1``: each worker listens on its own SO_REUSEPORT socket (serving/reuseport.py)
==================================  ==================================================================

Requests pass the bearer check (:mod:`serving.auth`) and then the request gate (:mod:`serving.gate`: media
type, size limits, validation off the event loop, client errors answered and logged at INFO) before they
reach an endpoint. The model is loaded in a background thread and retried until it loads
(:mod:`serving.holder`): ``/livez`` answers at once, ``/readyz`` and the scoring endpoints answer 503 until
then. A running worker follows the champion (:mod:`serving.reload`): when the alias moves it loads the new
version beside the old one and swaps it in; a request is scored, answered and labelled by one model, and a
version that fails to load is not swapped in (``/readyz`` stays 200 and reports the failure,
:mod:`serving.readiness`). ``/metrics`` carries the service's own series beside BentoML's (:mod:`serving.metrics`).
After loading, the start-up heap is moved to the
permanent generation (``gc.freeze()``): the full garbage collections that BentoML 1.4's per-request
timeout timers provoke under load then no longer scan the hundreds of thousands of objects that pandas,
LightGBM and MLflow allocate at import, which removes most of their collection pauses (see
``training/bench/serve.py`` and the README for measurements). Those timers themselves are cancelled
once the response is sent (:func:`cancel_timeout_timers`): each one kept its request's context (trace
span, futures) alive for the whole traffic timeout, ~20 objects per request, which at a few hundred
requests per second is what the remaining full collections scanned. Paths the service does not serve share
one metrics label (:mod:`serving.pathlabels`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import time
import uuid
from datetime import datetime
from typing import Any, ClassVar

import bentoml
from starlette.responses import JSONResponse

from features.contract.catalogue import load_catalogue
from features.contract.schema import CHANNELS, DIRECTIONS, KINDS, OUTREACH_CHANNELS, REFERRERS
from serving.auth import BearerAuthMiddleware
from serving.binding import check_exposure
from serving.coalesce import CoalescingScorer
from serving.decision_log import DecisionLog
from serving.errors import error_body
from serving.gate import GatedInput, RequestGate
from serving.holder import ModelHolder
from serving.intake import Endpoint
from serving.loading import source_from_env
from serving.metrics import service_metrics
from serving.openapi import Operation, openapi_document
from serving.pathlabels import label_unknown_paths
from serving.readiness import ReadinessReport
from serving.reload import ReloadSignal, ReloadWatcher
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
)
from serving.settings import SettingsError, read_limits, read_settings
from serving.status import ReloadResponse

logger = logging.getLogger("engage.serving")

TRAFFIC_TIMEOUT_S = 30
RELOAD_WAIT_S = 20.0  # POST /admin/reload answers 202 (still loading) after this, within the traffic timeout


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


class ScoreInput(GatedInput, ScoreRequest):
    """/score's input: a :class:`ScoreRequest`, read and validated by the request gate."""

    gate_endpoint: ClassVar[Endpoint] = Endpoint(ScoreRequest, "customers", CustomerIn, counts_touchpoints=True)


class FeatureScoreInput(GatedInput, FeatureScoreRequest):
    """/score_features' input: a :class:`FeatureScoreRequest`, read and validated by the request gate."""

    gate_endpoint: ClassVar[Endpoint] = Endpoint(FeatureScoreRequest, "rows", FeatureRow)


class MetadataInput(GatedInput, EmptyRequest):
    """/metadata's input: nothing (an empty JSON object)."""

    gate_endpoint: ClassVar[Endpoint] = Endpoint(EmptyRequest)


class ReloadInput(GatedInput, EmptyRequest):
    """/admin/reload's input: nothing (an empty JSON object, or no body)."""

    gate_endpoint: ClassVar[Endpoint] = Endpoint(EmptyRequest)


INPUTS: dict[str, type[GatedInput]] = {"/score": ScoreInput, "/score_features": FeatureScoreInput,
                                       "/metadata": MetadataInput, "/admin/reload": ReloadInput}


@bentoml.service(
    name="engage",
    traffic={"timeout": TRAFFIC_TIMEOUT_S},
    http={"host": "127.0.0.1"},
    logging={"access": {"request_content_length": True, "response_content_length": True}},
)
class EngageScoring:
    """Scores CRM customers with the champion decision system (features + churn + policy)."""

    def __init__(self) -> None:
        env = dict(os.environ)
        settings = read_settings(env)  # a bad setting stops the worker here, naming the variable
        self.limits = settings.limits
        # BentoML shows its own loggers at INFO and the rest from WARNING: engage's lines (model loaded, requests
        # refused) at the level asked for.
        logging.getLogger("engage").setLevel(settings.log_level)
        # Patched here, in the worker that serves, not on import (importing a module changes nothing).
        self.timers_cancelled = cancel_timeout_timers()
        self.paths_labelled = label_unknown_paths()
        fd = worker_fd(sys.argv)
        problem = check_exposure(fd, token=settings.token, insecure=settings.insecure)
        if problem is not None:
            raise SettingsError(problem)
        self.own_socket = fd is not None and settings.reuseport and listen_on_own_socket(fd)
        if getattr(EngageScoring, "bento", None) is not None and not env.get("ENGAGE_MODEL_PATH"):
            # Served from a built Bento (bentoml serve engage:latest): use the model packed into it.
            env.setdefault("ENGAGE_MODEL_SOURCE", "bento")
        self.gc_monitor = GcMonitor()
        self.metrics = service_metrics()
        self.holder = ModelHolder(
            source_from_env(env),
            retry_s=settings.load_retry_s,
            freeze_heap=settings.gc_freeze,
            on_loaded=self._loaded,
        )
        self.watcher = ReloadWatcher(
            self.holder, period_s=settings.reload_s, signal=ReloadSignal.for_this_server(), on_outcome=self._reloaded
        )
        log = settings.decision_log
        self.decision_log = DecisionLog(log, settings.rotation) if log else None
        self.catalogue = load_catalogue(settings.actions)
        gc.callbacks.append(self.gc_monitor)
        self.scorer = CoalescingScorer(
            lambda: self.holder.engine,
            linger_s=settings.linger_s,
            slice_touchpoints=settings.limits.slice_touchpoints,
        )
        self.holder.start()
        self.watcher.start()

    def __is_ready__(self) -> bool:
        return self.holder.ready

    @bentoml.on_shutdown
    def stop_watching(self) -> None:
        """Stop the loader's retries and the reload watcher with the worker."""
        self.watcher.stop()
        self.holder.stop()

    def _loaded(self) -> None:
        self.gc_monitor.reset()
        self.metrics.serving(self.holder.version or "")

    def _reloaded(self, outcome: Any) -> None:
        self.metrics.reloaded(outcome.status)
        if outcome.status == "swapped":
            self.metrics.serving(outcome.version, previous=outcome.previous)

    def _respond(
        self, engine: Any, results: list[dict[str, Any]], cutoff: Any, t0: float, kind: str
    ) -> ScoreResponse:
        # ``engine`` scored ``results``: the response names its version even if a newer one was swapped in since.
        self.metrics.scored(results, engine.info.version, kind)
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

    @bentoml.api(route="/score", input_spec=ScoreInput)
    async def score(self, customers: list[CustomerIn], cutoff: datetime | None = None) -> ScoreResponse:
        """Score customers from their raw touchpoint histories (cutoff default: now)."""
        t0 = time.perf_counter()
        if self.holder.engine is None:
            return _not_ready(self.holder)  # type: ignore[return-value]
        job = self.scorer.submit(customers, None if cutoff is None else as_cutoff(cutoff))
        try:
            at, results, engine = await asyncio.wrap_future(job)
        except Exception as exc:
            if isinstance(exc, RequestError) or _is_data_error(exc):
                return _bad_request(exc)  # type: ignore[return-value]
            raise
        if len(results) <= INLINE_RESPONSE_MAX:
            # Small answers are built on the event loop: a thread hop costs more than the work.
            return self._respond(engine, results, at, t0, "score")
        return await asyncio.to_thread(self._respond_large, engine, customers, results, at, t0)

    def _respond_large(
        self, engine: Any, customers: list[CustomerIn], results: list[dict], at: Any, t0: float
    ) -> ScoreResponse:
        # Free the request's customers here, one at a time: left to the end of the request, the whole tree
        # (millions of objects for a maximal request) would be freed in one go on the event loop, stalling it.
        while customers:
            customers.pop()
        return self._respond(engine, results, at, t0, "score")

    @bentoml.api(route="/score_features", input_spec=FeatureScoreInput)
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
        return self._respond(engine, frame_to_results(engine.score_features(F, at)), at, t0, "score_features")

    @bentoml.api(route="/metadata", input_spec=MetadataInput)
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
            reload_error=self.holder.reload_error,
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
                "score_slices": self.scorer.slices,
                "load_attempts": self.holder.attempts,
                "reload_interval_s": self.watcher.period_s,
                "reload_checks": self.watcher.checks,
                "reloads": self.holder.reloads,
                "reload_failures": self.holder.reload_failures,
                "unknown_paths_labelled": float(self.paths_labelled),
                "timeout_timers_cancelled": float(self.timers_cancelled),
                "own_listening_socket": float(self.own_socket),
            },
            limits={
                "max_body_bytes": self.limits.max_body_bytes,
                "max_request_touchpoints": self.limits.max_touchpoints,
                "slice_touchpoints": self.limits.slice_touchpoints,
            },
            vocabularies={
                "channel": list(CHANNELS),
                "kind": list(KINDS),
                "direction": list(DIRECTIONS),
                "referrer": list(REFERRERS),
                "outreach_channel": list(OUTREACH_CHANNELS),
            },
        )

    @bentoml.api(route="/admin/reload", input_spec=ReloadInput)
    async def admin_reload(self) -> ReloadResponse:
        """Check the model source now and swap in the champion if it moved; the server's other workers follow."""
        t0 = time.perf_counter()
        asked = asyncio.wrap_future(self.watcher.request())
        try:
            outcome = await asyncio.wait_for(asyncio.shield(asked), RELOAD_WAIT_S)
        except TimeoutError:
            version = self.holder.version
            body = ReloadResponse(status="loading", model_version=version, previous_version=version, error=None,
                                  seconds=round(time.perf_counter() - t0, 3))
            return JSONResponse(body.model_dump(), status_code=202)  # type: ignore[return-value]
        if outcome.status == "not-ready":
            return _not_ready(self.holder)  # type: ignore[return-value]
        body = ReloadResponse(status=outcome.status, model_version=outcome.version,
                              previous_version=outcome.previous, error=outcome.error,
                              seconds=round(outcome.seconds, 3))
        if outcome.status == "failed":
            return JSONResponse(body.model_dump(), status_code=500)  # type: ignore[return-value]
        return body


OPERATIONS = [
    Operation("/score", ScoreRequest, ScoreResponse, "Score customers from their raw touchpoint histories "
              "(cutoff default: now)."),
    Operation("/score_features", FeatureScoreRequest, ScoreResponse, "Score customers from precomputed feature "
              "rows (see /metadata for the feature names)."),
    Operation("/metadata", EmptyRequest, MetadataResponse, "Model version(s), feature list, action catalogue and "
              "the contract's vocabularies.", scores=False),
    Operation("/admin/reload", EmptyRequest, ReloadResponse, "Check the model source (the registry's champion "
              "alias) now and swap in the new version if it moved; the other workers of the server follow within a "
              "second. The service also checks on its own every ENGAGE_RELOAD_S seconds. Requests in flight finish "
              "on the old version; a version that fails to load is not swapped in.", scores=False,
              extra={"202": ("Still loading after the wait: the new version is swapped in once loaded (watch "
                             "/metadata)", ReloadResponse),
                     "500": ("The new version could not be loaded; the old one keeps serving (`error` says why)",
                             ReloadResponse)}),
]


def _document() -> dict:
    env = os.environ
    return openapi_document(
        OPERATIONS, read_limits(env), auth=bool(env.get("ENGAGE_API_TOKEN") or env.get("ENGAGE_API_TOKEN_FILE"))
    )


# Order matters: the first added is the outer one, so a request without a valid token is refused before its body
# is read.
EngageScoring.add_asgi_middleware(BearerAuthMiddleware)
EngageScoring.add_asgi_middleware(ReadinessReport)
EngageScoring.add_asgi_middleware(
    RequestGate,
    endpoints={path: cls.gate_endpoint for path, cls in INPUTS.items()},
    openapi=_document,
)
