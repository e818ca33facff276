"""The request gate: an ASGI middleware in front of the API endpoints that reads, limits and validates requests.

For ``POST`` to an API route it checks the media type (415), the declared and the actual body size (413 before
the body is read when ``Content-Length`` says so, else as soon as the body passes the limit), and turns the body
into the validated request model (:mod:`serving.intake`): inline for small bodies, in a thread (at most
:data:`LARGE_AT_ONCE` at a time per worker) for large ones, so the event loop keeps answering other requests.
Rejections are answered here with the service's JSON error bodies and logged at INFO as one line without
traceback, keys or values; BentoML's own handler (which logs every 400 as an ERROR with a traceback) never sees
them. An accepted request reaches the endpoint with its model in the ASGI scope (:data:`PARSED`), read by the
endpoint's input descriptor (:class:`GatedInput`) instead of parsing the body again.

It also answers ``GET /docs.json`` with the service's own OpenAPI document (:mod:`serving.openapi`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import anyio
import bentoml

from serving.errors import RequestRejectedError, too_large
from serving.intake import Endpoint, parse_body, rejected_media_type
from serving.settings import MB, RequestLimits, read_limits

logger = logging.getLogger("engage.serving")

PARSED = "engage.request"
INLINE_BYTES = 64 * 1024  # smaller bodies are parsed on the event loop: a thread hop costs more
LARGE_AT_ONCE = 2


async def send_json(
    send: Any, status: int, body: Any, *, close: bool = False, extra: tuple = (), head: bool = False
) -> None:
    """Answer with a JSON body (``close``: ask the client to close the connection, e.g. after an unread body;
    ``head``: the headers only, for a HEAD request)."""
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *extra]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else data})


def _declared_length(headers: Mapping[bytes, bytes]) -> int | None:
    raw = headers.get(b"content-length")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise RequestRejectedError(400, {"error": "bad request", "detail": "Content-Length is not a byte count"},
                              "bad Content-Length")
    return value


def _over_limit(limits: RequestLimits, size: str) -> RequestRejectedError:
    return too_large(
        f"the body may have at most {limits.max_body_bytes / MB:g} MB (ENGAGE_MAX_BODY_MB): send fewer customers "
        "per request",
        f"body {size} over the {limits.max_body_bytes / MB:g} MB limit",
    )


async def read_body(receive: Any, limits: RequestLimits, declared: int | None) -> bytes:
    """The whole body, refused (413) once it passes the limit."""
    if declared is not None and declared > limits.max_body_bytes:
        raise _over_limit(limits, f"of {declared / MB:.1f} MB")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise _over_limit(limits, "streamed")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class RequestGate:
    """See the module docstring. ``endpoints``: route → how to read its body; ``openapi``: builds the document."""

    def __init__(
        self,
        app: Any,
        endpoints: Mapping[str, Endpoint],
        limits: RequestLimits | None = None,
        openapi: Callable[[], dict] | None = None,
    ):
        import os

        self.app = app
        self.endpoints = dict(endpoints)
        self.limits = limits or read_limits(os.environ)
        self.openapi = openapi
        self._document: bytes | None = None
        self._large = anyio.CapacityLimiter(LARGE_AT_ONCE)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if path == "/docs.json" and method in ("GET", "HEAD") and self.openapi is not None:
            await self._send_document(send, with_body=method == "GET")
            return
        endpoint = self.endpoints.get(path)
        if endpoint is None or method != "POST":
            await self.app(scope, receive, send)
            return
        try:
            model = await self._intake(scope, receive, endpoint)
        except RequestRejectedError as rejected:
            logger.info("%s %s answered %d: %s", method, path, rejected.status, rejected.summary)
            await send_json(send, rejected.status, rejected.body, close=rejected.status == 413)
            return
        except ConnectionAbortedError:
            return  # the client went away while sending

        sent = False

        async def replay() -> dict:
            # The body was consumed here; the endpoint reads the parsed model instead.
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return await receive()

        await self.app({**scope, PARSED: model}, replay, send)

    async def _intake(self, scope: dict, receive: Any, endpoint: Endpoint) -> Any:
        headers = dict(scope.get("headers") or [])
        media = headers.get(b"content-type")
        rejected = rejected_media_type(None if media is None else media.decode("latin-1"))
        if rejected is not None:
            raise rejected
        declared = _declared_length(headers)
        if declared is not None and declared <= INLINE_BYTES:
            return parse_body(await read_body(receive, self.limits, declared), endpoint, self.limits)
        async with self._large:  # large bodies: a bounded number read and parsed at once, off the event loop
            body = await read_body(receive, self.limits, declared)
            if len(body) <= INLINE_BYTES:
                return parse_body(body, endpoint, self.limits)
            return await anyio.to_thread.run_sync(parse_body, body, endpoint, self.limits)

    async def _send_document(self, send: Any, *, with_body: bool) -> None:
        if self._document is None:
            assert self.openapi is not None
            self._document = json.dumps(self.openapi()).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(self._document)).encode())]})
        await send({"type": "http.response.body", "body": self._document if with_body else b""})


class GatedInput(bentoml.IODescriptor):
    """Base of the endpoints' input descriptors: the request model comes from the gate (already validated);
    without a gate in front (never in this service) the body is parsed here with the same code."""

    gate_endpoint: ClassVar[Endpoint]

    @classmethod
    async def from_http_request(cls, request: Any, serde: Any) -> Any:
        parsed = request.scope.get(PARSED)
        if parsed is not None:
            return parsed
        import os

        body = await request.body()
        try:
            return parse_body(body, cls.gate_endpoint, read_limits(os.environ))
        except RequestRejectedError as rejected:
            raise ValueError(rejected.summary) from None
