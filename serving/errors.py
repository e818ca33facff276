"""The service's error answers: their bodies (documented in the OpenAPI document) and the rejection of a request.

Every 4xx the service itself gives has a JSON body ``{"error": <summary>, "detail": ...}``: ``detail`` is the list
of problems (each with ``loc``, ``msg`` and ``type``, as pydantic reports them) for 400 and 422, a sentence for
413, 415 and 503, and absent for 401. Bodies never quote the request's values, and what is logged about a
rejection (:attr:`RequestRejectedError.summary`) names neither keys nor values the client sent.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorItem(BaseModel):
    """One problem of a request: where (``loc``: keys and list positions from the top), what, and its kind."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    """400 (malformed request) and 422 (well-formed but not scorable): every problem found."""

    error: str = Field(description="How many problems, for which request model")
    detail: list[ErrorItem]


class MessageBody(BaseModel):
    """413, 415 and 503: what is wrong and what to do, in one sentence."""

    error: str
    detail: str | None = None


class UnauthorizedBody(BaseModel):
    """401: no bearer token, or not the right one."""

    error: str


def error_body(title: str, errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The 400/422 body: ``{"error": "<n> validation error(s) for <title>", "detail": [...]}``."""
    return {"error": f"{len(errors)} validation error(s) for {title}", "detail": errors}


class RequestRejectedError(Exception):
    """A request answered with a client error before it reached scoring.

    ``body`` goes to the client; ``summary`` to the log (counts and limits only, never what the client sent).
    """

    def __init__(self, status: int, body: dict[str, Any], summary: str):
        super().__init__(summary)
        self.status = status
        self.body = body
        self.summary = summary


def too_large(detail: str, summary: str) -> RequestRejectedError:
    """A 413: ``detail`` for the client (the limit and its setting), ``summary`` for the log."""
    return RequestRejectedError(413, {"error": "request too large", "detail": detail}, summary)


def invalid(title: str, errors: list[dict[str, Any]], summary: str | None = None) -> RequestRejectedError:
    """A 400 listing ``errors`` (pydantic-style dicts); the log gets their count."""
    n = len(errors)
    return RequestRejectedError(400, error_body(title, errors), summary or f"{n} validation error{'s' * (n != 1)}")
