"""The request catalogue: every kind of request the service refuses (and a few it must accept), each with the status
and the words of its answer, served in-process. Also: the value rules are the data contract's own (a value the
service refuses, batch validation refuses in the same words), and refusals are logged at INFO as one line, without
traceback and without anything the client sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.serving.standin import CUTOFF, TOKEN, customer, make_client, wait_ready, write_model

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`"),
]

LIMITS = {"ENGAGE_MAX_BODY_MB": "0.05", "ENGAGE_MAX_REQUEST_TOUCHPOINTS": "60"}
NUMBER_AS_TS = "a number where a timestamp is expected"


@dataclass(frozen=True)
class Case:
    """A request and what the service answers: ``status``, a field its ``detail`` names (``loc``), and words its
    message holds. ``server``: which server answers (default, limits, auth, or one without a model)."""

    body: Any
    status: int
    words: str
    loc: str | None = None
    route: str = "/score"
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    server: str = "default"


def _one(c: dict) -> dict:
    return {"customers": [c], "cutoff": CUTOFF}


def _tp(**change: Any) -> dict:
    tp = {"ts": "2024-01-02T00:00:00Z", "channel": "web", "kind": "visit", "direction": "inbound"}
    tp.update(change)
    return _one({"customer_id": "m", "touchpoints": [{k: v for k, v in tp.items() if v is not ...}]})


def _cols(**change: Any) -> dict:
    cols = {"ts": ["2024-01-01", "2024-01-02"], "channel": ["web", "app"], "kind": ["purchase", "visit"],
            "direction": ["inbound", "inbound"]}
    cols.update(change)
    return _one({"customer_id": "m", "touchpoints": cols})


def _features(**features: Any) -> dict:
    return {"rows": [{"customer_id": "f", "features": features}]}


JSON = {"content-type": "application/json"}
GOOD = _one(customer("ok", 3))
AUTH = f"Bearer {TOKEN}"

CATALOGUE: dict[str, Case] = {
    # --- JSON and media type
    "not_json": Case(b"{not json", 400, "Invalid JSON: expecting a property name"),
    "top_level_array": Case(b"[]", 400, "Invalid JSON: expecting a JSON object"),
    "extra_data_after_object": Case(json.dumps(GOOD).encode() + b" {}", 400, "extra data after the JSON object"),
    "customers_given_twice": Case(b'{"customers": [], "customers": []}', 400, "property 'customers' given twice"),
    "not_utf8": Case('{"customers": [{"customer_id": "\xe9"}]}'.encode("latin-1"), 400, "not UTF-8 text"),
    "multipart_without_boundary": Case(b"--x", 415, "application/json",
                                       headers={"content-type": "multipart/form-data"}),
    "form_urlencoded": Case(b"customers=1", 415, "application/json",
                            headers={"content-type": "application/x-www-form-urlencoded"}),
    "bentoml_pickle": Case(b"\x80\x04N.", 415, "application/json",
                           headers={"content-type": "application/vnd.bentoml+pickle"}),
    "json_not_utf8_charset": Case(json.dumps(GOOD).encode(), 415, "UTF-8",
                                  headers={"content-type": "application/json; charset=latin-1"}),
    "json_with_utf8_charset": Case(json.dumps(GOOD).encode(), 200, "",
                                   headers={"content-type": "application/json; charset=utf-8"}),
    "no_content_type": Case(json.dumps(GOOD).encode(), 200, "", headers={"content-type": ""}),
    # --- request structure
    "no_customers": Case({"cutoff": CUTOFF}, 400, "Field required", "customers"),
    "empty_customers": Case({"customers": []}, 400, "at least 1 item", "customers"),
    "customers_not_a_list": Case({"customers": None}, 400, "valid list", "customers"),
    "customer_not_an_object": Case({"customers": [7]}, 400, "valid dictionary", "customers"),
    "misspelt_field": Case(_tp(chanel="web"), 400, "Extra inputs are not permitted", "chanel"),
    "empty_customer_id": Case(_one({"customer_id": ""}), 400, "at least 1 character", "customer_id"),
    "duplicate_customer": Case({"customers": [{"customer_id": "d"}, {"customer_id": "d"}]}, 400,
                               "customers[1].customer_id duplicates customers[0]"),
    "consent_not_bool": Case(_one({"customer_id": "m", "consent_sms": "perhaps"}), 400, "valid boolean",
                             "consent_sms"),
    "attribute_key_clash": Case(_one({"customer_id": "m", "attributes": {"consent_sms": True}}), 400,
                                "attributes may not use contract column names"),
    # --- vocabularies
    "unknown_channel": Case(_tp(channel="fax"), 400, "Input should be 'web'", "channel"),
    "unknown_kind": Case(_tp(kind="teleport"), 400, "Input should be 'visit'", "kind"),
    "bad_direction": Case(_tp(direction="sideways"), 400, "Input should be 'inbound' or 'outbound'", "direction"),
    "missing_kind": Case(_tp(kind=...), 400, "Field required", "kind"),
    # --- timestamps: ISO 8601 text in 1900..2200, never numbers
    "ts_not_a_date": Case(_tp(ts="yesterday"), 400, "valid datetime", "ts"),
    "ts_out_of_range": Case(_tp(ts="9999-01-01T00:00:00Z"), 400, "between 1900-01-01 and 2200-01-01", "ts"),
    "ts_json_number": Case(_tp(ts=1_700_000_000), 400, NUMBER_AS_TS, "ts"),
    "ts_number_as_text": Case(_tp(ts="1700000000"), 400, NUMBER_AS_TS, "ts"),
    "signup_ts_json_number": Case(_one({"customer_id": "m", "signup_ts": 1.7e9}), 400, NUMBER_AS_TS, "signup_ts"),
    "cutoff_json_number": Case({"customers": [{"customer_id": "m"}], "cutoff": 1_700_000_000}, 400, NUMBER_AS_TS,
                               "cutoff"),
    "bad_cutoff": Case({"customers": [{"customer_id": "m"}], "cutoff": "next tuesday"}, 400, "valid datetime",
                       "cutoff"),
    "outreach_ts_json_number": Case(_one({"customer_id": "m", "outreach": [{"ts": 5, "channel": "sms"}]}), 400,
                                    NUMBER_AS_TS, "ts"),
    "column_ts_number": Case(_cols(ts=[1, 2]), 400, "valid string", "ts"),
    "column_ts_bad": Case(_cols(ts=["2024-01-01", "soon"]), 400, "ts[1]: not an ISO 8601 timestamp"),
    # --- value ranges and the refund rule (the contract's words)
    "amount_not_a_number": Case(_tp(amount="lots"), 400, "valid number", "amount"),
    "negative_duration": Case(_tp(duration_s=-3), 400, "a negative value", "duration_s"),
    "negative_pages": Case(_tp(pages=-1), 400, "a negative value", "pages"),
    "negative_discount": Case(_tp(discount=-5), 400, "a negative value", "discount"),
    "sentiment_above_range": Case(_tp(sentiment=5.0), 400, "a value outside [-1, 1]", "sentiment"),
    "negative_purchase_amount": Case(_tp(kind="purchase", amount=-20.0), 400,
                                     "a negative amount on a kind other than return"),
    "negative_return_amount": Case(_tp(kind="return", amount=-20.0), 200, ""),
    "infinite_amount_text": Case(json.dumps(_tp(amount=float("inf"))).encode(), 400, "finite number", "amount"),
    "column_negative_purchase": Case(_cols(amount=[-3.0, None]), 400,
                                     "amount[0]: a negative amount on a kind other than return"),
    "column_sentiment_out_of_range": Case(_cols(sentiment=[0.5, -2.0]), 400, "a value outside [-1, 1]", "sentiment"),
    "column_lengths_differ": Case(_cols(channel=["web"]), 400, "column 'channel' has 1 entries but 'ts' has 2"),
    "outreach_without_channel": Case(_one({"customer_id": "m", "outreach": [{"ts": "2024-01-01", "offer": "x"}]}),
                                     400, "channel is required unless holdout is true"),
    "propensity_above_one": Case(_one({"customer_id": "m", "outreach": [{"ts": "2024-01-01", "channel": "sms",
                                                                        "propensity": 1.5}]}),
                                 400, "a propensity outside (0, 1]", "propensity"),
    "propensity_zero": Case(_one({"customer_id": "m", "outreach": [{"ts": "2024-01-01", "channel": "sms",
                                                                   "propensity": 0}]}),
                            400, "a propensity outside (0, 1]", "propensity"),
    # --- feature rows
    "unknown_feature": Case(_features(recency_days=1, frequency=1, chan_email_consent=1, shoe_size=44), 422,
                            "unknown feature(s): shoe_size", "features", route="/score_features"),
    "missing_feature": Case(_features(recency_days=1), 422, "missing feature(s): frequency, chan_email_consent",
                            "features", route="/score_features"),
    "feature_not_a_number": Case(_features(recency_days="old", frequency=1, chan_email_consent=1), 400,
                                 "valid number", "recency_days", route="/score_features"),
    # --- routes and methods
    "unknown_path": Case(None, 404, "Not Found", route="/no/such/path", method="GET"),
    "get_on_score": Case(None, 405, "Method Not Allowed", method="GET"),
    "metadata_without_body": Case(b"", 200, "", route="/metadata"),
    # --- size limits (a server with ENGAGE_MAX_BODY_MB=0.05, ENGAGE_MAX_REQUEST_TOUCHPOINTS=60)
    "body_over_limit": Case(json.dumps(_one(customer("big", 400))).encode(), 413, "ENGAGE_MAX_BODY_MB",
                            server="limits"),
    "touchpoints_over_limit": Case({"customers": [customer(f"t{i}", 20) for i in range(4)]}, 413,
                                   "at most 60 touchpoints per request", server="limits"),
    "touchpoints_at_limit": Case({"customers": [customer(f"t{i}", 20) for i in range(3)]}, 200, "",
                                 server="limits"),
    # --- bearer token (a server with a token); RFC 7235 scheme case, one or more spaces, the exact token
    "no_token": Case(GOOD, 401, "missing or invalid bearer token", server="auth"),
    "wrong_token": Case(GOOD, 401, "missing or invalid bearer token", headers={"authorization": "Bearer nope"},
                        server="auth"),
    "other_scheme": Case(GOOD, 401, "missing or invalid bearer token", headers={"authorization": f"Token {TOKEN}"},
                         server="auth"),
    "tab_after_scheme": Case(GOOD, 401, "missing or invalid bearer token",
                             headers={"authorization": f"Bearer\t{TOKEN}"}, server="auth"),
    "token_with_extra_character": Case(GOOD, 401, "missing or invalid bearer token",
                                       headers={"authorization": f"{AUTH}x"}, server="auth"),
    "token_in_other_case": Case(GOOD, 401, "missing or invalid bearer token",
                                headers={"authorization": f"Bearer {TOKEN.upper()}"}, server="auth"),
    "scheme_in_lower_case": Case(GOOD, 200, "", headers={"authorization": f"bearer {TOKEN}"}, server="auth"),
    "scheme_in_upper_case_and_spaces": Case(GOOD, 200, "", headers={"authorization": f"BEARER   {TOKEN}"},
                                            server="auth"),
    "probe_without_token": Case(None, 200, "", route="/livez", method="GET", server="auth"),
    "docs_without_token": Case(None, 200, "", route="/docs.json", method="GET", server="auth"),
    # --- no model
    "not_ready": Case(GOOD, 503, "model file not found", server="no_model"),
    "readyz_not_ready": Case(None, 503, "", route="/readyz", method="GET", server="no_model"),
    "metadata_not_ready": Case({}, 200, "", route="/metadata", server="no_model"),
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One in-process server per configuration the catalogue names."""
    model = write_model(tmp_path_factory.mktemp("catalogue") / "system.joblib")
    configs: dict[str, tuple[Path, dict[str, str]]] = {
        "default": (model, {}),
        "limits": (model, LIMITS),
        "auth": (model, {"ENGAGE_API_TOKEN": TOKEN}),
        "no_model": (model.parent / "missing.joblib", {}),
    }
    clients: dict[str, Any] = {}
    patches = pytest.MonkeyPatch()
    try:
        for name, (path, env) in configs.items():
            client = make_client(patches, path, **env).__enter__()
            clients[name] = client
            if name != "no_model":
                wait_ready(client)
            for key in env:
                patches.delenv(key)
        yield clients
    finally:
        for client in clients.values():
            client.__exit__(None, None, None)
        patches.undo()


def send(servers: dict[str, Any], case: Case) -> Any:
    client = servers[case.server]
    api = case.route in ("/score", "/score_features", "/metadata")
    headers = {**({"authorization": AUTH} if case.server == "auth" and api and case.status != 401 else {}),
               **case.headers}
    if case.body is None:
        return client.request(case.method, case.route, headers=headers)
    if isinstance(case.body, bytes):
        return client.request(case.method, case.route, content=case.body, headers={**JSON, **headers})
    return client.request(case.method, case.route, json=case.body, headers=headers)


def _problems(answer: Any) -> tuple[str, list[str]]:
    """The answer's words (error, detail text) and the field names its detail locates."""
    try:
        body = answer.json()
    except ValueError:
        return answer.text, []
    if not isinstance(body, dict):
        return json.dumps(body), []
    detail = body.get("detail")
    locs = [str(part) for item in detail for part in item["loc"]] if isinstance(detail, list) else []
    return json.dumps(body), locs


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_catalogue(servers, name):
    case = CATALOGUE[name]
    answer = send(servers, case)
    words, locs = _problems(answer)
    assert answer.status_code == case.status, (name, answer.status_code, answer.text[:500])
    assert case.words in words, (name, words[:500])
    if case.loc is not None:
        assert case.loc in locs, (name, locs)
    if case.status in (400, 422):
        body = answer.json()
        assert isinstance(body["detail"], list) and body["error"].endswith(("ScoreRequest", "FeatureScoreRequest"))
    if case.status in (413, 415, 503) and case.route != "/readyz":
        assert isinstance(answer.json()["detail"], str)


def test_refusals_are_logged_at_info_once_without_traceback_or_client_data(servers, caplog):
    """Client errors: one INFO line each from engage, no ERROR, no traceback; neither keys nor values the client
    sent appear in any log line (BentoML's access log included)."""
    secrets = ("secret-attribute-key", "secret-customer-id", "secret-value-text")
    body = _one({"customer_id": secrets[1], "attributes": {secrets[0]: secrets[2]},
                 "touchpoints": [{"ts": "2024-01-01", "channel": secrets[2], "kind": "visit", "direction": "x"}]})
    with caplog.at_level(logging.DEBUG):
        answer = servers["default"].post("/score", json=body)
        extra = servers["default"].post("/score", json={**body, secrets[0]: 1})
        for name in ("not_json", "multipart_without_boundary", "negative_purchase_amount"):
            send(servers, CATALOGUE[name])
        send(servers, CATALOGUE["touchpoints_over_limit"])
    assert answer.status_code == 400 and extra.status_code == 400
    assert not any(secret in answer.text for secret in (secrets[1], secrets[2]))  # values never echoed
    records = [r for r in caplog.records if r.name.startswith(("engage", "bentoml"))]
    assert not [r for r in records if r.levelno >= logging.WARNING], [r.getMessage() for r in records]
    assert not [r for r in records if r.exc_info or r.exc_text]
    refusals = [r for r in records if r.name == "engage.serving" and "answered" in r.getMessage()]
    assert len(refusals) == 6 and all(r.levelno == logging.INFO for r in refusals)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in secrets:
        assert secret not in logged


# Value rules the service and batch validation share (features.contract.values): the request is refused and the
# same touchpoint in a data folder is refused, in the same words.
SHARED_RULES = {
    "negative_purchase_amount": ({"kind": "purchase", "amount": -20.0},
                                 "a negative amount on a kind other than return"),
    "sentiment_above_range": ({"sentiment": 5.0}, "a value outside [-1, 1]"),
    "negative_discount": ({"discount": -5.0}, "a negative value"),
    "negative_duration": ({"duration_s": -3.0}, "a negative value"),
    "ts_json_number": ({"ts": 1_700_000_000}, "use ISO 8601 text"),
}


@pytest.mark.parametrize("name", sorted(SHARED_RULES))
def test_service_and_batch_validation_refuse_the_same_values(servers, name):
    from features.contract.errors import DataError
    from features.contract.schema import Tables
    from features.contract.validate import validate_tables

    change, words = SHARED_RULES[name]
    answer = servers["default"].post("/score", json=_tp(**change))
    assert answer.status_code == 400 and words in answer.text
    row = {"customer_id": "m", "ts": "2024-01-02T00:00:00Z", "channel": "web", "kind": "visit",
           "direction": "inbound", **change}
    customers = pd.DataFrame({"customer_id": ["m"], "signup_ts": [None], "consent_email": [True],
                              "consent_sms": [True], "consent_push": [True], "consent_call": [True]})
    with pytest.raises(DataError) as refused:
        validate_tables(Tables(customers=customers, touchpoints=pd.DataFrame([row])))
    assert words in str(refused.value)
