"""``GET /readyz`` with a body that says which version serves and whether a reload failed (an ASGI middleware).

BentoML answers ``/readyz`` with a bare 200 or 503 from the service's ``__is_ready__``. This layer answers it from
the worker's :class:`~serving.holder.ModelHolder` instead: 200 with :class:`~serving.status.ReadinessBody` while a
model serves (also when loading a newer champion failed: ``reload_error`` says why, and readiness must not drop
while the old model serves), 503 with the service's error body while none is loaded. Before the service instance
exists, BentoML's own answer stands.
"""

from __future__ import annotations

from typing import Any

from serving.gate import send_json


def _holder() -> Any:
    """The worker's model holder, or None before the service instance exists."""
    try:
        import bentoml

        service = bentoml.get_current_service()
    except Exception:  # not instantiated yet (or another BentoML): BentoML answers
        return None
    return getattr(service, "holder", None)


class ReadinessReport:
    """See the module docstring."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/readyz" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        holder = _holder()
        if holder is None:
            await self.app(scope, receive, send)
            return
        engine = holder.engine
        if engine is None:
            body: dict[str, Any] = {"error": "model not ready", "detail": holder.error or "the model is still loading"}
            await send_json(send, 503, body, head=scope["method"] == "HEAD")
            return
        body = {"ready": True, "model_version": engine.info.version, "reload_error": holder.reload_error}
        await send_json(send, 200, body, head=scope["method"] == "HEAD")
