"""Bounded requests in-process: large requests are scored in slices with the same answers and with smaller requests'
work in between, a streamed body is cut off at the limit, and the item-by-item JSON decoder reads what
``json.loads`` reads."""

from __future__ import annotations

import json
import threading
import time

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.coalesce import CoalescingScorer, slice_bounds
from serving.engine import ModelInfo, ScoringEngine
from serving.jsonstream import STREAMED, JsonSyntaxError, decode_object
from serving.requests import tables_from_request
from serving.responses import frame_to_results
from serving.schemas import ScoreRequest
from tests.serving.standin import CUTOFF, CountingSystem, customer, make_client, wait_ready, write_model

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`"),
]


def _customers(prefix: str, n: int, touchpoints: int) -> list:
    body = {"customers": [customer(f"{prefix}{i:03d}", touchpoints) for i in range(n)]}
    return ScoreRequest.model_validate(body).customers


def test_slice_bounds_cover_every_customer_once():
    customers = _customers("s", 7, 4)  # weight 4 each
    assert slice_bounds(customers, 10) == [(0, 3), (3, 6), (6, 7)]
    assert slice_bounds(customers, 1) == [(i, i + 1) for i in range(7)]
    assert slice_bounds(customers, 1_000) == [(0, 7)]


def test_a_sliced_request_gets_the_answers_of_one_piece():
    engine = ScoringEngine(CountingSystem(), ModelInfo("v1"))
    customers = _customers("c", 30, 9)
    sliced = CoalescingScorer(lambda: engine, slice_touchpoints=40)
    at, results, scored_by = sliced.submit(customers, None).result(30)
    assert scored_by is engine
    assert sliced.slices == 6 and sliced.requests == 1  # 5 customers of 9 touchpoints reach 40
    assert sliced.slice_calls == 3  # alone in the queue: 1, 2, then the last 3 slices in one call
    assert abs((at - pd.Timestamp.now(tz="UTC")).total_seconds()) < 60  # one "now" for every slice
    whole = frame_to_results(engine.score_tables(tables_from_request(customers), at))
    assert results == whole
    cut = pd.Timestamp(CUTOFF)
    assert sliced.submit(customers, cut).result(30)[1] == frame_to_results(
        engine.score_tables(tables_from_request(customers), cut))


class _Watched(CountingSystem):
    """Records each scoring call's customer ids; holds a call for 50 ms when ``hold(call_number, ids)`` says so
    (``held`` is set as the first held call starts)."""

    def __init__(self, hold):
        self.hold, self.calls, self.held = hold, [], threading.Event()

    def score(self, tables, cutoff):
        ids = list(tables.customers["customer_id"])
        self.calls.append(ids)
        if self.hold(len(self.calls), ids):
            self.held.set()
            time.sleep(0.05)
        return super().score(tables, cutoff)


def test_small_requests_are_scored_between_the_slices_of_a_large_one():
    system = _Watched(lambda n, ids: ids[0].startswith("big"))
    engine = ScoringEngine(system, ModelInfo("v1"))
    scorer = CoalescingScorer(lambda: engine, slice_touchpoints=20, linger_s=0)
    cut = pd.Timestamp(CUTOFF)
    big = scorer.submit(_customers("big", 40, 5), cut)  # 10 slices of 4 customers
    assert system.held.wait(10)
    small = [scorer.submit(_customers(f"small{k}-", 1, 3), cut) for k in range(3)]
    t0 = time.monotonic()
    for future in small:
        future.result(10)
    waited = time.monotonic() - t0
    assert not big.done() and waited < 0.5  # answered after the current slice, long before the large request
    assert [r["customer_id"] for r in big.result(30)[1]] == [f"big{i:03d}" for i in range(40)]
    calls = ["big" if ids[0].startswith("big") else "small" for ids in system.calls]
    assert calls[0] == "big" and "small" in calls[1:3] and calls[-1] == "big"


def test_a_lone_large_request_is_scored_in_growing_pieces_that_shrink_when_others_arrive():
    system = _Watched(lambda n, ids: n == 3)  # a small request arrives during the third call (four slices)
    engine = ScoringEngine(system, ModelInfo("v1"))
    scorer = CoalescingScorer(lambda: engine, slice_touchpoints=20, linger_s=0)
    cut = pd.Timestamp(CUTOFF)
    big = scorer.submit(_customers("big", 60, 5), cut)  # 15 slices of 4 customers
    assert system.held.wait(10)
    small = scorer.submit(_customers("small", 1, 3), cut)
    assert [r["customer_id"] for r in small.result(10)[1]] == ["small000"]
    rows = big.result(30)[1]
    assert [r["customer_id"] for r in rows] == [f"big{i:03d}" for i in range(60)]
    # 1, 2, 4 slices while alone; the small request next; then one slice again, growing back to the cap
    sizes = [len(ids) if ids[0].startswith("big") else -len(ids) for ids in system.calls]
    assert sizes == [4, 8, 16, -1, 4, 8, 16, 4]
    assert scorer.slices == 15 and scorer.slice_calls == 7
    assert rows == frame_to_results(engine.score_tables(tables_from_request(_customers("big", 60, 5)), cut))


def test_a_failing_slice_fails_its_request_only():
    class Picky(CountingSystem):
        def score(self, tables, cutoff):
            if "bad017" in set(tables.customers["customer_id"]):
                raise RuntimeError("cannot score bad017")
            return super().score(tables, cutoff)

    engine = ScoringEngine(Picky(), ModelInfo("v1"))
    scorer = CoalescingScorer(lambda: engine, slice_touchpoints=20)
    cut = pd.Timestamp(CUTOFF)
    bad = scorer.submit(_customers("bad", 30, 5), cut)
    good = scorer.submit(_customers("ok", 2, 3), cut)
    with pytest.raises(RuntimeError, match="bad017"):
        bad.result(30)
    assert [r["customer_id"] for r in good.result(30)[1]] == ["ok000", "ok001"]


def test_a_streamed_body_is_cut_off_at_the_limit(monkeypatch, tmp_path):
    model = write_model(tmp_path / "system.joblib")
    with make_client(monkeypatch, model, ENGAGE_MAX_BODY_MB="0.01") as c:
        wait_ready(c)

        def chunks():
            yield b'{"customers": ['
            for _ in range(100):
                yield b" " * 1_000

        r = c.post("/score", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "ENGAGE_MAX_BODY_MB" in r.json()["detail"]
        assert r.headers["connection"] == "close"
        ok = c.post("/score", content=iter([json.dumps({"customers": [customer("a", 2)]}).encode()]),
                    headers={"content-type": "application/json"})
        assert ok.status_code == 200


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=5), st.lists(JSON_VALUES, max_size=5),
       st.sampled_from([None, 1, 2]), st.booleans())
def test_the_item_decoder_reads_what_json_loads_reads(top, items, indent, streamed):
    top = {k: v for k, v in top.items() if k != "customers"}
    if streamed:
        top["customers"] = items
    text = json.dumps(top, indent=indent)
    seen: list = []
    out = decode_object(text, "customers", lambda i, item: seen.append((i, item)))
    if streamed:
        assert out.pop("customers") is STREAMED and [item for _, item in seen] == items
        assert [i for i, _ in seen] == list(range(len(items)))
    assert out == {k: v for k, v in json.loads(text).items() if k != "customers"}


@pytest.mark.parametrize("text", ["", "[1]", "{", '{"a" 1}', '{"a": 1,}', '{"a": 1} 2', '{"customers": [1,]}',
                                  '{"customers": [1 2]}', '{"a": 1, "a": 2}', '{a: 1}'])
def test_the_item_decoder_refuses_what_json_loads_refuses_or_a_repeated_key(text):
    with pytest.raises(JsonSyntaxError, match="line 1 column"):
        decode_object(text, "customers", lambda i, item: None)
