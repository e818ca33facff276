"""The service's OpenAPI 3.0 document, built from its own request, response and error models.

BentoML's generated document flattens each model's ``anyOf`` to its first member (so nullable fields such as
``load_error`` lose their ``null``), documents only 200/400/404/500 and describes the 400 ``detail`` as a
string. This one is made from the pydantic models directly (JSON Schema converted to OpenAPI 3.0: ``nullable``,
boolean ``exclusiveMinimum``), lists every status the service answers with the body it carries, states the
request limits in force, gives every property a description and an example (:mod:`serving.field_docs`; a
property missing there stops the build), and declares the bearer scheme when a token is configured. The gate
(:mod:`serving.gate`) serves it at ``/docs.json``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from serving.errors import MessageBody, UnauthorizedBody, ValidationErrorBody
from serving.field_docs import FIELD_DOCS
from serving.settings import MB, RequestLimits
from serving.status import ReadinessBody

REF = "#/components/schemas/{model}"
BEARER_RULE = (
    "Authorization: Bearer <token>. The scheme name is case-insensitive (RFC 7235); one or more spaces separate "
    "it from the token, which must match exactly (RFC 6750). Required on the scoring and metadata endpoints "
    "when the service has a token (ENGAGE_API_TOKEN or ENGAGE_API_TOKEN_FILE)."
)


@dataclass(frozen=True)
class Operation:
    """One API route: its request and response models, its docstring, whether it answers 422, and other statuses
    it answers (``extra``: status → meaning and body model)."""

    route: str
    request: type[BaseModel]
    response: type[BaseModel]
    summary: str
    scores: bool = True
    extra: dict[str, tuple[str, type[BaseModel]]] = field(default_factory=dict)  # status: (meaning, body) added


def to_openapi30(schema: Any) -> Any:
    """A JSON Schema (2020-12, as pydantic writes it) as an OpenAPI 3.0 schema object."""
    if isinstance(schema, list):
        return [to_openapi30(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {k: v for k, v in schema.items() if k not in ("propertyNames", "examples", "$defs")}
    nullable = schema.get("type") == "null"
    if nullable:
        del schema["type"]
    for key in ("anyOf", "oneOf"):
        members = schema.get(key)
        if isinstance(members, list) and {"type": "null"} in members:
            nullable = True
            rest = [m for m in members if m != {"type": "null"}]
            del schema[key]
            if len(rest) == 1 and "$ref" in rest[0]:
                schema["allOf"] = rest
            elif len(rest) == 1:
                schema.update({k: v for k, v in rest[0].items() if k not in schema})
            else:
                schema[key] = rest
    out = {k: to_openapi30(v) for k, v in schema.items()}
    if nullable:
        out["nullable"] = True
    low = out.get("exclusiveMinimum")
    if isinstance(low, int | float) and not isinstance(low, bool):
        out["minimum"], out["exclusiveMinimum"] = low, True
    if "const" in out:
        out["enum"] = [out.pop("const")]
    return out


class _Schemas:
    """Collects component schemas (each model once) and hands out references to them."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def ref(self, model: type[BaseModel], mode: str) -> dict[str, str]:
        schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
        for name, sub in schema.pop("$defs", {}).items():
            self.components.setdefault(name, to_openapi30(sub))
        self.components.setdefault(model.__name__, to_openapi30(schema))
        return {"$ref": REF.format(model=model.__name__)}


class UndocumentedFieldError(LookupError):
    """A component schema property has no entry in :data:`serving.field_docs.FIELD_DOCS`."""


def document_properties(components: dict[str, Any], docs: dict[str, tuple[str, Any]] = FIELD_DOCS) -> None:
    """Give every property of every component schema a description (unless the model gives one) and an example,
    from ``docs`` (``"Model.field" -> (description, example)``); raise naming every property it lacks."""
    missing = [f"{name}.{prop}" for name, schema in components.items()
               for prop in schema.get("properties") or {} if f"{name}.{prop}" not in docs]
    if missing:
        raise UndocumentedFieldError(
            f"OpenAPI properties without a description and example in serving/field_docs.py: {', '.join(missing)}"
        )
    for name, schema in components.items():
        for prop, spec in (schema.get("properties") or {}).items():
            description, example = docs[f"{name}.{prop}"]
            if not spec.get("description"):
                spec["description"] = description
            spec["example"] = copy.deepcopy(example)  # the table stays as it is whatever is done to a document


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _limits_text(limits: RequestLimits) -> str:
    return (
        f"Limits: a body of at most {limits.max_body_bytes / MB:g} MB (ENGAGE_MAX_BODY_MB) and at most "
        f"{limits.max_touchpoints:,} touchpoints per request over all its customers "
        f"(ENGAGE_MAX_REQUEST_TOUCHPOINTS); beyond either the answer is 413. Requests with more than "
        f"{limits.slice_touchpoints:,} touchpoints are scored in slices between other requests' work."
    )


def _responses(op: Operation, schemas: _Schemas, limits: RequestLimits) -> dict[str, Any]:
    message = schemas.ref(MessageBody, "serialization")
    invalid = schemas.ref(ValidationErrorBody, "serialization")
    out = {
        "200": _json("The answer", schemas.ref(op.response, "serialization")),
        "400": _json("Malformed request: invalid JSON or a value the contract rejects; `detail` lists every "
                     "problem (location, message, kind), never the values sent", invalid),
        "401": _json("No bearer token, or a wrong one (only when the service has a token)",
                     schemas.ref(UnauthorizedBody, "serialization")),
        "413": _json(f"Request too large. {_limits_text(limits)}", message),
        "415": _json("The body is not declared as application/json in UTF-8", message),
        "500": _json("Unexpected server error (details in the server log)", message),
        "503": _json("No model loaded yet, or it could not be loaded: `detail` says which (the service keeps "
                     "retrying)", message),
        "504": _json("Not answered within the traffic timeout", message),
    }
    if op.scores:
        out["422"] = _json("Well-formed but not scorable (e.g. unknown or missing feature names); `detail` lists "
                           "the problems", invalid)
    for status, (meaning, model) in op.extra.items():
        out[status] = _json(meaning, schemas.ref(model, "serialization"))
    return out


def _infra_paths(schemas: _Schemas) -> dict[str, Any]:
    text = {"text/plain": {"schema": {"type": "string"}}}
    ok = {"description": "Successful Response", "content": text}
    ready = _json("A model is loaded and requests are scored; `reload_error` says why loading a newer champion "
                  "failed, if it did (the served version stays, and so does readiness)",
                  schemas.ref(ReadinessBody, "serialization"))
    not_ready = _json("Not ready: no model loaded (yet); `detail` says why", schemas.ref(MessageBody, "serialization"))
    probes = {
        "/livez": ("The worker process is alive", {"200": ok}),
        "/healthz": ("The worker process is alive (same as /livez)", {"200": ok}),
        "/readyz": ("The model is loaded and requests are scored", {"200": ready, "503": not_ready}),
        "/metrics": ("Prometheus metrics (unknown paths are counted under one endpoint label)", {"200": ok}),
    }
    return {
        path: {"get": {"tags": ["Infrastructure"], "description": desc, "responses": responses,
                       "operationId": f"engage__{path.strip('/')}"}}
        for path, (desc, responses) in probes.items()
    }


def openapi_document(
    operations: list[Operation], limits: RequestLimits, *, auth: bool, version: str = "0.1.0"
) -> dict[str, Any]:
    """The OpenAPI 3.0 document of the service with these operations, limits and authentication."""
    schemas = _Schemas()
    paths: dict[str, Any] = _infra_paths(schemas)
    for op in operations:
        operation: dict[str, Any] = {
            "tags": ["Service APIs"],
            "operationId": f"engage__{op.route.strip('/')}",
            "description": f"{op.summary}\n\n{_limits_text(limits)}",
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": schemas.ref(op.request, "validation")}}},
            "responses": _responses(op, schemas, limits),
        }
        if auth:
            operation["security"] = [{"bearerAuth": []}]
        paths[op.route] = {"post": operation}
    document_properties(schemas.components)
    components: dict[str, Any] = {"schemas": dict(sorted(schemas.components.items()))}
    components["securitySchemes"] = {"bearerAuth": {"type": "http", "scheme": "bearer", "description": BEARER_RULE}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "engage", "version": version,
                 "description": "Churn, engagement and next-best-action scores for CRM customers."},
        "servers": [{"url": "."}],
        "tags": [{"name": "Service APIs"}, {"name": "Infrastructure"}],
        "paths": paths,
        "components": components,
    }

