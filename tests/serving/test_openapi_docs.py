"""The OpenAPI document is enough to write a client: every property has a description and an example valid for its
schema, every response status a description, and a property missing from serving/field_docs.py stops the build."""

from __future__ import annotations

import os
from typing import Any

import jsonschema
import pytest

from serving.field_docs import FIELD_DOCS
from serving.openapi import UndocumentedFieldError, document_properties, openapi_document
from serving.settings import read_limits

REF = "#/components/schemas/"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    os.environ.setdefault("ENGAGE_RELOAD_S", "0")
    from serving.service import OPERATIONS

    return openapi_document(OPERATIONS, read_limits(os.environ), auth=True)


def _properties(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{name}.{prop}", spec) for name, schema in document["components"]["schemas"].items()
            for prop, spec in (schema.get("properties") or {}).items()]


def to_json_schema(schema: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema 2020-12 (``nullable``, boolean ``exclusiveMinimum``, refs to $defs)."""
    if isinstance(schema, list):
        return [to_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: to_json_schema(v) for k, v in schema.items() if k not in ("nullable", "example")}
    if "$ref" in out:
        out["$ref"] = "#/$defs/" + out["$ref"].removeprefix(REF)
    if out.get("exclusiveMinimum") is True:
        out["exclusiveMinimum"] = out.pop("minimum")
    if schema.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def test_every_property_has_a_description_and_an_example(document):
    props = _properties(document)
    assert len(props) >= 100
    undescribed = [name for name, spec in props if not str(spec.get("description", "")).strip()]
    without_example = [name for name, spec in props if "example" not in spec]
    assert not undescribed, f"properties without a description: {undescribed}"
    assert not without_example, f"properties without an example: {without_example}"


def test_every_example_is_valid_for_its_schema(document):
    defs = to_json_schema(document["components"]["schemas"])
    invalid = {}
    for name, spec in _properties(document):
        validator = jsonschema.Draft202012Validator({"$defs": defs, **to_json_schema(spec)},
                                                     format_checker=jsonschema.FormatChecker())
        errors = [e.message for e in validator.iter_errors(spec["example"])]
        if errors:
            invalid[name] = errors
    assert not invalid, f"examples that break their schema: {invalid}"


def test_each_models_examples_together_make_a_valid_instance(document):
    """The examples of one model, put together, pass the model itself (the rules a schema cannot state too)."""
    from pydantic import BaseModel

    from serving import errors, schemas, status

    models = {name: cls for module in (schemas, errors, status) for name, cls in vars(module).items()
              if isinstance(cls, type) and issubclass(cls, BaseModel)}
    for name, schema in document["components"]["schemas"].items():
        instance = {prop: spec["example"] for prop, spec in (schema.get("properties") or {}).items()}
        models[name].model_validate(instance)


def test_the_table_has_no_stale_entries(document):
    assert set(FIELD_DOCS) == {name for name, _ in _properties(document)}


def test_model_descriptions_are_kept(document):
    cold = document["components"]["schemas"]["CustomerScore"]["properties"]["cold_start"]
    assert cold["description"] == "True when the customer had no touchpoint before the cutoff"


def test_every_response_status_has_a_description(document):
    missing = [f"{method.upper()} {path} {status}" for path, item in document["paths"].items()
               for method, op in item.items() for status, response in op["responses"].items()
               if not str(response.get("description", "")).strip()]
    assert not missing, f"responses without a description: {missing}"


def test_an_undocumented_property_stops_the_build():
    components = {"CustomerScore": {"properties": {"customer_id": {"type": "string"},
                                                   "loyalty_tier": {"type": "string"}}}}
    with pytest.raises(UndocumentedFieldError, match=r"CustomerScore\.loyalty_tier") as caught:
        document_properties(components)
    assert "CustomerScore.customer_id" not in str(caught.value)
