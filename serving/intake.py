"""Request intake: a JSON body becomes a validated request model, within the request limits.

The body's large array (a score request's ``customers``, a feature request's ``rows``) is decoded and
validated item by item (:mod:`serving.jsonstream`), so the work can run in a thread without stalling the
worker's other requests for long, and a request over the touchpoint limit is refused (413) as soon as the
count passes the limit, before the rest is decoded. Problems are reported as pydantic reports them (location,
message, kind; never the input), at most :data:`MAX_ERRORS` per request.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from serving.errors import RequestRejectedError, invalid, too_large
from serving.jsonstream import STREAMED, JsonSyntaxError, decode_object
from serving.settings import RequestLimits

MAX_ERRORS = 50


@dataclass(frozen=True)
class Endpoint:
    """How one API route's body is read: its request model, the large array in it and that array's item model."""

    model: type[BaseModel]
    items_key: str | None = None
    item_model: type[BaseModel] | None = None
    counts_touchpoints: bool = False


def _touchpoints_in(item: Any) -> int:
    """Touchpoints of one raw customer object (rows: list length; columns: the longest column)."""
    tp = item.get("touchpoints") if isinstance(item, dict) else None
    if isinstance(tp, list):
        return len(tp)
    if isinstance(tp, dict):
        return max((len(v) for v in tp.values() if isinstance(v, list)), default=0)
    return 0


def _errors(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[dict[str, Any]]:
    return [
        {"loc": [*prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


class _Items:
    """Collects the large array's items as they are decoded, counting touchpoints against the limit (so a request
    over it is refused after decoding, before any validation); :meth:`validate` then validates them one by one."""

    def __init__(self, endpoint: Endpoint, limits: RequestLimits):
        self.endpoint = endpoint
        self.limits = limits
        self.raw: list[Any] = []
        self.errors: list[dict[str, Any]] = []
        self.touchpoints = 0

    def __call__(self, index: int, raw: Any) -> None:
        if self.endpoint.counts_touchpoints:
            self.touchpoints += _touchpoints_in(raw)
            if self.touchpoints > self.limits.max_touchpoints:
                raise too_large(
                    f"at most {self.limits.max_touchpoints:,} touchpoints per request (all customers together; "
                    "ENGAGE_MAX_REQUEST_TOUCHPOINTS): send fewer customers per request",
                    f"more than {self.limits.max_touchpoints:,} touchpoints",
                )
        self.raw.append(raw)

    def validate(self) -> list[Any]:
        """The items as item models (raw where invalid; :attr:`errors` says why), at most ``MAX_ERRORS`` errors."""
        ep = self.endpoint
        if ep.item_model is None:
            return self.raw
        items = []
        raws = self.raw
        for index in range(len(raws)):
            raw, raws[index] = raws[index], None  # each raw item is freed once validated, not all at the end
            if len(self.errors) >= MAX_ERRORS:
                items.append(raw)
                continue
            try:
                items.append(ep.item_model.model_validate(raw))
            except ValidationError as exc:
                self.errors.extend(_errors(exc, (str(ep.items_key), index)))
                items.append(raw)
        self.raw = []
        return items


def _utf8(body: bytes, piece: int = 1 << 20) -> str:
    """``body.decode("utf-8")`` a megabyte at a time: one call on a large body would hold the GIL throughout."""
    if len(body) <= piece:
        return body.decode("utf-8")
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(body)
    parts = [decoder.decode(view[i : i + piece]) for i in range(0, len(body), piece)]
    parts.append(decoder.decode(b"", final=True))
    return "".join(parts)


def parse_body(body: bytes, endpoint: Endpoint, limits: RequestLimits) -> BaseModel:
    """The validated request model of ``body``; raises :class:`RequestRejectedError` (400 or 413) otherwise."""
    title = endpoint.model.__name__
    try:
        text = _utf8(body) if body.strip() else "{}"  # no body: an empty object, as BentoML reads it
    except UnicodeDecodeError:
        raise invalid(title, [{"loc": [], "msg": "the body is not UTF-8 text", "type": "json_invalid"}],
                      "body not UTF-8") from None
    items = _Items(endpoint, limits)
    try:
        top = decode_object(text, endpoint.items_key, items)
    except JsonSyntaxError as exc:
        raise invalid(title, [{"loc": [], "msg": f"Invalid JSON: {exc}", "type": "json_invalid"}],
                      "invalid JSON") from None
    validated = items.validate()
    if items.errors:
        errors = items.errors[:MAX_ERRORS]
        more = "+" if len(items.errors) >= MAX_ERRORS else ""
        raise invalid(title, errors, f"{len(errors)}{more} validation error{'s' * (len(errors) != 1)}")
    if endpoint.items_key is not None and top.get(endpoint.items_key) is STREAMED:
        top[endpoint.items_key] = validated
    try:
        return endpoint.model.model_validate(top)
    except ValidationError as exc:
        raise invalid(title, _errors(exc)[:MAX_ERRORS]) from None


def rejected_media_type(content_type: str | None) -> RequestRejectedError | None:
    """415 unless the body is declared as JSON in UTF-8 (or not declared at all)."""
    if content_type is None:
        return None
    main, *params = (part.strip().lower() for part in content_type.split(";"))
    charset = next((p.split("=", 1)[1].strip('"') for p in params if p.startswith("charset=")), "utf-8")
    if main in ("application/json", "") and charset in ("utf-8", "utf8"):
        return None
    return RequestRejectedError(
        415,
        {"error": "unsupported media type", "detail": "send the request as application/json (UTF-8)"},
        "unsupported media type",
    )
