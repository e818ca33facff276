"""The scoring service's logic in-process (BentoML ASGI app + the stand-in decision system of
``tests/serving/standin.py``): request validation, contract tables, cold start, auth, readiness, versions,
decision log, batch parity. The real model is served in ``test_serving_integration.py``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from serving.auth import BearerAuthMiddleware, token_from_env, token_matches
from serving.decision_log import read_decision_log
from serving.engine import ModelInfo, ScoringEngine
from serving.requests import tables_from_request
from serving.responses import frame_to_results
from serving.schemas import ScoreRequest
from tests.serving.standin import CUTOFF, FEATURES, TOKEN, CountingSystem, customer, make_client, wait_ready

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`"),
]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "system.joblib"
    joblib.dump(CountingSystem(), path)
    return path


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, model_file: Path):
    with make_client(monkeypatch, model_file) as c:
        wait_ready(c)
        yield c


# ------------------------------------------------------------------------------------- contract


def test_request_tables_equal_validated_tables():
    from features.contract.validate import validate_tables

    body = {
        "customers": [
            customer("b", 7),
            customer("a", 4, shape="columns", product="p-1"),
            customer("c", 0),
            {
                **customer("d", 3),
                "attributes": {"plan": "gold", "age": 41.0},
                "outreach": [
                    {
                        "ts": "2024-02-01T10:00:00Z",
                        "channel": "sms",
                        "offer": "discount_10",
                        "propensity": 0.3,
                    },
                    {"ts": "2024-01-05T10:00:00Z", "holdout": True, "offer": "none"},
                ],
            },
        ],
        "cutoff": CUTOFF,
    }
    body["customers"][0]["touchpoints"] = body["customers"][0]["touchpoints"][::-1]  # out of order
    tables = tables_from_request(ScoreRequest.model_validate(body).customers)
    validated, _ = validate_tables(tables)
    for name in ("customers", "touchpoints", "outreach"):
        ours, theirs = getattr(tables, name), getattr(validated, name)
        pd.testing.assert_frame_equal(ours, theirs.loc[:, ours.columns], check_like=False)
    assert (
        tables.touchpoints["ts"].is_monotonic_increasing
        or tables.touchpoints["customer_id"].cat.codes[0] == 0
    )
    assert list(tables.customers["customer_id"]) == ["b", "a", "c", "d"]


def test_rows_and_columns_give_the_same_answer(client):
    rows = client.post("/score", json={"customers": [customer("x", 9)], "cutoff": CUTOFF}).json()
    cols = client.post(
        "/score", json={"customers": [customer("x", 9, shape="columns")], "cutoff": CUTOFF}
    ).json()
    assert rows["results"] == cols["results"]


# -------------------------------------------------------------------------------- happy path


def test_score_returns_every_customer_in_order_with_versions(client):
    body = {
        "customers": [customer("c2", 12), customer("c1", 3, email=False), customer("c3", 1)],
        "cutoff": CUTOFF,
    }
    r = client.post("/score", json=body)
    assert r.status_code == 200
    out = r.json()
    assert out["model_version"] == "counting-1"
    assert out["model_versions"] == {"churn": "c1", "policy": "p1"}
    assert [x["customer_id"] for x in out["results"]] == ["c2", "c1", "c3"]
    assert all(x["model_version"] == "counting-1" for x in out["results"])
    first = out["results"][0]
    assert 0 < first["churn_probability"] < 1
    assert first["store_ladder"] in ("visitor", "interested", "almost_buyer", "buyer")
    assert len(first["alternatives"]) == 3  # at most three runner-ups
    assert first["churn_reasons"][0]["feature"] == "recency_days"
    assert out["cutoff"].startswith("2024-04-01T00:00:00")
    assert out["results"][1]["next_best_action"]["action"] == "no_contact"
    assert out["results"][1]["no_contact_reason"]


def test_cold_start_customers_get_an_answer(client):
    late = customer("late", 4, start="2024-05-01")  # all touchpoints after the cutoff
    r = client.post(
        "/score", json={"customers": [customer("new", 0), late, customer("old", 5)], "cutoff": CUTOFF}
    )
    assert r.status_code == 200
    res = {x["customer_id"]: x for x in r.json()["results"]}
    assert res["new"]["cold_start"] and res["late"]["cold_start"] and not res["old"]["cold_start"]
    assert res["new"]["churn_probability"] is not None


def test_default_cutoff_is_now(client):
    r = client.post("/score", json={"customers": [customer("n", 2)]})
    assert r.status_code == 200
    cutoff = pd.Timestamp(r.json()["cutoff"])
    assert abs((pd.Timestamp.now(tz="UTC") - cutoff).total_seconds()) < 60


def test_score_features_and_metadata_carry_the_version(client):
    meta = client.post("/metadata", json={}).json()
    assert meta["ready"] and meta["model_version"] == "counting-1"
    assert meta["features"] == FEATURES
    assert meta["actions"][0]["id"] == "no_contact"
    assert "web" in meta["vocabularies"]["channel"]
    rows = [
        {"customer_id": "f1", "features": {"recency_days": 90, "frequency": 2, "chan_email_consent": 1}},
        {"customer_id": "f2", "features": {"recency_days": None, "frequency": 0, "chan_email_consent": 0}},
    ]
    r = client.post("/score_features", json={"rows": rows, "cutoff": CUTOFF})
    assert r.status_code == 200
    out = r.json()
    assert out["model_version"] == "counting-1" and all(
        x["model_version"] == "counting-1" for x in out["results"]
    )
    assert out["results"][0]["defense_target"] and not out["results"][1]["defense_target"]


# ------------------------------------------------------------------------------ auth, readiness


def test_token_comparison():
    assert token_matches(b"Bearer " + TOKEN.encode(), TOKEN.encode())
    assert token_matches(b"bearer  " + TOKEN.encode(), TOKEN.encode())
    assert not token_matches(b"Bearer wrong", TOKEN.encode())
    assert not token_matches(TOKEN.encode(), TOKEN.encode())
    assert not token_matches(None, TOKEN.encode())


def test_token_from_env_or_file(tmp_path):
    assert token_from_env({}) is None
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    assert token_from_env({"ENGAGE_API_TOKEN_FILE": str(f)}) == TOKEN
    with pytest.raises(ValueError, match="16 characters"):
        token_from_env({"ENGAGE_API_TOKEN": "short"})
    with pytest.raises(ValueError, match="not both"):
        token_from_env({"ENGAGE_API_TOKEN": TOKEN, "ENGAGE_API_TOKEN_FILE": str(f)})
    assert BearerAuthMiddleware(None, env={}).token is None


def test_auth_required_when_configured(monkeypatch, model_file):
    with make_client(monkeypatch, model_file, ENGAGE_API_TOKEN=TOKEN) as c:
        assert c.get("/livez").status_code == 200
        wait_ready(c)
        body = {"customers": [customer("a", 2)], "cutoff": CUTOFF}
        r = c.post("/score", json=body)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert c.post("/score", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert c.post("/score_features", json={"rows": []}).status_code == 401
        assert c.post("/metadata", json={}).status_code == 401
        ok = c.post("/score", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json()["model_version"] == "counting-1"


def test_not_ready_before_the_model_is_loaded(monkeypatch, model_file, tmp_path):
    from serving.holder import ModelHolder
    from serving.loading import ModelSource

    holder = ModelHolder(ModelSource("path", str(model_file)), freeze_heap=False)
    assert not holder.ready and holder.engine is None
    assert holder.load()
    assert holder.ready and holder.engine.info.version == "counting-1"

    with make_client(monkeypatch, tmp_path / "missing.joblib") as c:
        time.sleep(0.2)
        assert c.get("/livez").status_code == 200
        assert c.get("/readyz").status_code == 503
        r = c.post("/score", json={"customers": [customer("a", 1)]})
        assert r.status_code == 503 and "not found" in r.json()["detail"]
        meta = c.post("/metadata", json={}).json()
        assert (
            meta["ready"] is False
            and meta["model_version"] is None
            and "missing.joblib" in meta["load_error"]
        )


# --------------------------------------------------------------------------- decision log, batch


def test_decision_log_records_every_decision_with_propensity(monkeypatch, model_file, tmp_path):
    log = tmp_path / "decisions.jsonl"
    with make_client(monkeypatch, model_file, ENGAGE_DECISION_LOG=str(log)) as c:
        wait_ready(c)
        c.post(
            "/score", json={"customers": [customer("a", 3), customer("b", 3, email=False)], "cutoff": CUTOFF}
        )
        c.post(
            "/score_features",
            json={
                "rows": [
                    {
                        "customer_id": "f",
                        "features": {"recency_days": 80, "frequency": 1, "chan_email_consent": 1},
                    }
                ]
            },
        )
    records = read_decision_log(log)
    assert [r["customer_id"] for r in records] == ["a", "b", "f"]
    assert all(r["propensity"] == 0.9 and r["model_version"] == "counting-1" for r in records)
    assert records[0]["source"] == "score" and records[2]["source"] == "score_features"
    assert records[0]["cutoff"].startswith("2024-04-01")


def test_batch_scoring_equals_the_service(client, model_file, tmp_path):
    from features.sources.io import write_tables
    from serving.batch import score_data, score_feature_table

    body = {
        "customers": [customer(f"k{i}", 3 + 2 * i, email=i % 2 == 0) for i in range(6)] + [customer("z", 0)],
        "cutoff": CUTOFF,
    }
    served = client.post("/score", json=body).json()
    tables = tables_from_request(ScoreRequest.model_validate(body).customers)
    data = tmp_path / "data"
    write_tables(tables, data)
    out, defense = tmp_path / "scores.parquet", tmp_path / "defense.csv"
    summary = score_data(
        data,
        out,
        cutoff=CUTOFF,
        defense_out=defense,
        model_path=model_file,
        decision_log=tmp_path / "log.jsonl",
    )
    table = pd.read_parquet(out)
    assert summary["customers"] == 7 and summary["model_version"] == "counting-1"
    assert (table["model_version"] == "counting-1").all()
    assert (pd.to_datetime(table["cutoff"], utc=True) == pd.Timestamp(CUTOFF)).all()
    by_id = table.set_index("customer_id")
    for res in served["results"]:
        row = by_id.loc[res["customer_id"]]
        assert row["churn_probability"] == pytest.approx(res["churn_probability"])
        assert row["nba_action"] == res["next_best_action"]["action"]
        assert bool(row["cold_start"]) == res["cold_start"]
        assert json.loads(row["churn_reasons"]) == res["churn_reasons"]
    targets = pd.read_csv(defense)
    assert set(targets["customer_id"]) == {r["customer_id"] for r in served["results"] if r["defense_target"]}
    with pytest.raises(FileExistsError):
        score_data(data, out, cutoff=CUTOFF, model_path=model_file)

    feats = pd.DataFrame(
        {
            "customer_id": ["q1", "q2"],
            "recency_days": [5.0, 200.0],
            "frequency": [3.0, 1.0],
            "chan_email_consent": [1.0, 1.0],
        }
    )
    feats.to_csv(tmp_path / "features.csv", index=False)
    fs = score_feature_table(tmp_path / "features.csv", tmp_path / "fscores.csv", model_path=model_file)
    assert fs["customers"] == 2


def test_engine_keeps_input_order_and_stamps_rows():
    engine = ScoringEngine(CountingSystem(), ModelInfo("v9"))
    body = {"customers": [customer("b", 2), customer("a", 0)]}
    tables = tables_from_request(ScoreRequest.model_validate(body).customers)
    frame = engine.score_tables(tables, pd.Timestamp(CUTOFF))
    assert list(frame["customer_id"]) == ["b", "a"]
    assert list(frame["cold_start"]) == [False, True]
    assert (frame["model_version"] == "v9").all()


def test_engine_reorders_rows_a_system_returns_out_of_order():
    class Reversed(CountingSystem):
        def score(self, tables, cutoff):
            return super().score(tables, cutoff).iloc[::-1].reset_index(drop=True)

    body = {"customers": [customer("b", 2), customer("a", 0), customer("c", 1)]}
    tables = tables_from_request(ScoreRequest.model_validate(body).customers)
    cut = pd.Timestamp(CUTOFF)
    straight = ScoringEngine(CountingSystem(), ModelInfo("v9")).score_tables(tables, cut)
    assert list(straight["customer_id"]) == ["b", "a", "c"]
    assert list(straight["cold_start"]) == [False, True, False]
    pd.testing.assert_frame_equal(ScoringEngine(Reversed(), ModelInfo("v9")).score_tables(tables, cut), straight)
    # Plain string ids (as a data folder's tables may hold) give the same cold starts as categorical ones.
    tp = tables.touchpoints
    plain = tables.with_(touchpoints=tp.assign(customer_id=tp["customer_id"].astype(str)))
    pd.testing.assert_frame_equal(ScoringEngine(CountingSystem(), ModelInfo("v9")).score_tables(plain, cut), straight)


def test_engine_columns_path_gives_the_frame_path_answers():
    """What the service converts (score_columns -> columns_to_results) equals the frame path's rows."""
    from serving.responses import columns_to_results

    body = {"customers": [customer("b", 2), customer("a", 0), customer("c", 1)]}
    tables = tables_from_request(ScoreRequest.model_validate(body).customers)
    cut = pd.Timestamp(CUTOFF)
    engine = ScoringEngine(CountingSystem(), ModelInfo("v9"))
    cols = engine.score_columns(tables, cut)
    assert columns_to_results(cols, 3) == frame_to_results(engine.score_tables(tables, cut))
    assert [r["customer_id"] for r in columns_to_results(cols, 3)] == ["b", "a", "c"]


def test_flat_table_built_by_columns_equals_the_one_built_by_rows():
    """columns_to_table (batch files) = results_to_frame(columns_to_results(...)): values, types, order."""
    from serving.responses import columns_to_results, columns_to_table, results_to_frame

    cut = pd.Timestamp(CUTOFF)
    n = 6
    alt = {"action": "email:discount_10", "channel": "email", "offer": "discount_10", "expected_incremental_value": 1.5}
    cols = {
        "customer_id": np.array(["a", "b", "c", "d", "e", "f"], dtype=object),
        "churn_probability": np.array([0.1, np.nan, np.inf, 0.5, 1.0, 0.0]),
        "churn_reasons": [[], [{"feature": "f1", "label": "F one", "contribution": 0.3}], None,
                          [{"feature": "f2", "contribution": np.nan}], [], []],
        "engagement_index": np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0]),
        "store_ladder": np.array(["buyer", None, 2.0, np.nan, "visitor", 7], dtype=object),
        "social_ladder": np.array(["promoter"] * n, dtype=object),
        "in_market_stage": np.array([None, "evaluating", np.nan, "none", 3, "interested"], dtype=object),
        "buy_intent_score": np.array([0.1, 0.2, 0.3, np.nan, 0.5, 0.6]),
        "high_engagement_potential": np.array([True, False, True, False, False, True]),
        "nba_action": np.array(["email:discount_10", "no_contact", None, "sms:none", None, "push:x"], dtype=object),
        "nba_channel": np.array(["email", None, None, None, "call", "push"], dtype=object),
        "nba_offer": np.array(["discount_10", None, None, None, "free", "x"], dtype=object),
        "nba_expected_incremental_value": np.array([2.0, 0.0, np.nan, np.inf, 1.0, -1.0]),
        "nba_propensity": np.array([1.0, 1.0, np.nan, 0.5, 1.0, 0.9]),
        "alternatives": [[alt], [], None, [alt, {**alt, "expected_incremental_value": np.nan}],
                         [{"action": "sms:none", "channel": None, "offer": None, "expected_incremental_value": 0.5}],
                         [alt, alt, alt, alt]],
        "defense_target": np.array([True, False, False, True, False, False]),
        "defense_reasons": [["valuable", "at risk"], [], None, ["x"], [], []],
        "no_contact_reason": np.array([None, "negative_uplift", "no_consent", None, None, None], dtype=object),
        "model_version": "v9",
        "cutoff": cut,
        "cold_start": np.array([False, True, False, False, False, True]),
    }
    want = results_to_frame(columns_to_results(cols, n), cut)
    pd.testing.assert_frame_equal(columns_to_table(cols, n, cut), want)
    # reasons of every kind the written text distinguishes (the plain ones are written without json.dumps)
    reason = {"feature": "f", "label": 'Tenure "é"', "contribution": 0.25, "value": 3.5, "attribute": None}
    kinds = [{}, {"value": None}, {"value": "Électronique \"x\""}, {"value": True}, {"value": False},
             {"value": np.nan}, {"value": np.float64(2.0)}, {"value": 7}, {"value": -0.0}, {"value": 1e300},
             {"attribute": "region"}, {"attribute": np.nan}, {"contribution": 0.0}, {"contribution": -0.0},
             {"contribution": np.float64(0.5)}, {"contribution": 1}, {"contribution": np.inf},
             {"contribution": 1e-17}, {"label": None}, {"feature": 3}]
    many = dict(cols)
    for start in range(0, len(kinds), n):
        part = kinds[start : start + n] + [{}] * (n - len(kinds[start : start + n]))
        many["churn_reasons"] = [[{**reason, **k}, reason] for k in part]
        want = results_to_frame(columns_to_results(many, n), cut)
        pd.testing.assert_frame_equal(columns_to_table(many, n, cut), want)
    old = {"feature": "f1", "label": "F one", "contribution": 0.3}  # a model fitted before values: no value keys
    many["churn_reasons"] = [[old, reason]] * n
    pd.testing.assert_frame_equal(columns_to_table(many, n, cut), results_to_frame(columns_to_results(many, n), cut))
    # and on the stand-in system's own output
    body = {"customers": [customer("b", 2), customer("a", 0), customer("c", 1)]}
    tables = tables_from_request(ScoreRequest.model_validate(body).customers)
    engine = ScoringEngine(CountingSystem(), ModelInfo("v9"))
    got = engine.score_columns(tables, cut)
    pd.testing.assert_frame_equal(columns_to_table(got, 3, cut), results_to_frame(columns_to_results(got, 3), cut))


def test_request_tables_carry_the_model_attributes_when_no_customer_sends_them():
    body = {"customers": [customer("b", 2), {**customer("a", 0), "attributes": {"region": "north"}}]}
    customers = ScoreRequest.model_validate(body).customers
    tables = tables_from_request(customers, attributes=["region", "segment"])
    cust = tables.customers
    assert list(cust["region"]) [1] == "north" and pd.isna(cust["region"].iloc[0])
    assert cust["segment"].isna().all()
    assert list(tables_from_request(customers).customers.columns).count("segment") == 0


def test_each_worker_listens_on_its_own_reuseport_socket():
    """serving.reuseport: the shared socket's descriptor is replaced by this process's own listening socket
    on the same address; the shared socket stops taking connections; connections reach the new socket."""
    import socket
    import sys

    from serving.reuseport import listen_on_own_socket, worker_fd

    assert worker_fd(["x", "--fd", "7", "--worker-id", "1"]) == 7
    assert worker_fd(["x", "--fd=9"]) == 9
    assert worker_fd(["x", "--port", "3000"]) is None
    if not sys.platform.startswith("linux"):
        pytest.skip("SO_REUSEPORT workers are used on Linux only")
    shared = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    shared.bind(("127.0.0.1", 0))
    shared.listen(16)
    address = shared.getsockname()
    supervisor = socket.socket(fileno=os.dup(shared.fileno()))  # the copy bentoml's supervisor keeps
    fd = shared.fileno()
    try:
        assert listen_on_own_socket(fd)
        own = socket.socket(fileno=os.dup(fd))
        assert own.getsockname() == address
        assert own.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        assert own.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        assert supervisor.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 0
        # a sibling worker (same shared descriptor, already switched) gets its own socket too
        sibling_fd = os.dup(supervisor.fileno())
        assert listen_on_own_socket(sibling_fd)
        sibling = socket.socket(fileno=sibling_fd)
        for _ in range(8):
            with socket.create_connection(address, timeout=5):
                pass
        own.settimeout(0.2)
        sibling.settimeout(0.2)
        accepted = 0
        for listener in (own, sibling):
            while True:
                try:
                    conn, _ = listener.accept()
                except (TimeoutError, BlockingIOError):
                    break
                conn.close()
                accepted += 1
        assert accepted == 8  # every connection reached a worker's own socket, none the shared one
        own.close()
        sibling.close()
    finally:
        shared.close()
        supervisor.close()


def test_heap_frozen_after_loading(model_file, tmp_path):
    """The GC workaround: after the model loads, the start-up heap sits in the permanent generation."""
    import subprocess
    import sys

    code = (
        "import gc, sys; sys.path.insert(0, sys.argv[2]); import test_serving\n"
        "from serving.holder import ModelHolder\n"
        "from serving.loading import ModelSource\n"
        "for freeze in (False, True):\n"
        "    h = ModelHolder(ModelSource('path', sys.argv[1]), freeze_heap=freeze); h.load()\n"
        "    assert h.ready\n"
        "    print(gc.get_freeze_count())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(model_file), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert int(out[0]) == 0 and int(out[1]) > 10_000


def test_missing_static_attributes_are_unknown_not_errors():
    class WithAttributes(CountingSystem):
        def static_attributes(self) -> list[str]:
            return ["region"]

        def score(self, tables, cutoff):
            assert tables.customers["region"].isna().all()  # the model sees the column, all unknown
            return super().score(tables, cutoff)

    engine = ScoringEngine(WithAttributes(), ModelInfo("v1"))
    tables = tables_from_request(ScoreRequest.model_validate({"customers": [customer("a", 2)]}).customers)
    frame = engine.score_tables(tables, pd.Timestamp(CUTOFF))
    assert "region" not in tables.customers.columns and len(frame) == 1


def test_concurrent_requests_are_scored_together_with_the_same_answers():
    from serving.coalesce import CoalescingScorer, _Job

    class Picky(CountingSystem):
        calls = 0

        def score(self, tables, cutoff):
            Picky.calls += 1
            if "boom" in set(tables.customers["customer_id"]):
                raise RuntimeError("cannot score boom")
            return super().score(tables, cutoff)

    engine = ScoringEngine(Picky(), ModelInfo("v1"))
    scorer = CoalescingScorer(lambda: engine)
    cut = pd.Timestamp(CUTOFF)

    def job(*ids: str, cutoff=cut) -> _Job:
        body = {"customers": [customer(i, 3 + len(i)) for i in ids]}
        return _Job(ScoreRequest.model_validate(body).customers, cutoff)

    jobs = [job("a", "b"), job("c"), job("a"), job("d", cutoff=None)]
    scorer._process(jobs)
    assert Picky.calls == 3  # {a,b}+{c} merged; the second "a" and the no-cutoff request apart
    for j in jobs[:3]:
        at, results, scored_by = j.future.result()
        assert scored_by is engine
        alone = engine.score_tables(tables_from_request(j.customers), cut)
        assert at == cut
        assert results == frame_to_results(alone)
    assert abs((jobs[3].future.result()[0] - pd.Timestamp.now(tz="UTC")).total_seconds()) < 60

    bad, good = job("boom"), job("fine")
    scorer._process([bad, good])
    with pytest.raises(RuntimeError, match="boom"):
        bad.future.result()
    assert [r["customer_id"] for r in good.future.result()[1]] == ["fine"]


def test_scorer_waits_for_concurrent_requests_only_when_they_arrive_together(monkeypatch):
    """The coalescing worker lingers before a batch only after it merged several requests (concurrency), never
    for a lone request; what it merges still gets each request its own answers."""
    import threading

    import serving.coalesce as coalesce

    gate = threading.Event()

    class Slow(CountingSystem):
        calls = 0

        def score(self, tables, cutoff):
            Slow.calls += 1
            if Slow.calls == 1:
                gate.wait(10)  # hold the first batch until the next requests are queued
            return super().score(tables, cutoff)

    sleeps: list[float] = []
    real_sleep = time.sleep
    monkeypatch.setattr(coalesce.time, "sleep", lambda s: (sleeps.append(s), real_sleep(s)))
    engine = ScoringEngine(Slow(), ModelInfo("v1"))
    scorer = coalesce.CoalescingScorer(lambda: engine, linger_s=0.005)
    cut = pd.Timestamp(CUTOFF)

    def submit(cid: str):
        return scorer.submit(ScoreRequest.model_validate({"customers": [customer(cid, 3)]}).customers, cut)

    first = submit("a")
    real_sleep(0.05)  # the worker has taken "a" alone: no wait
    later = [submit("b"), submit("c")]
    gate.set()
    assert [r["customer_id"] for r in first.result(10)[1]] == ["a"]
    assert [[r["customer_id"] for r in f.result(10)[1]] for f in later] == [["b"], ["c"]]
    assert sleeps == [] and scorer.batches == 2  # b and c merged into one batch, nobody waited
    last = submit("d")
    assert [r["customer_id"] for r in last.result(10)[1]] == ["d"]
    assert sleeps == [0.005]  # after a merged batch the worker waited once for more
    assert coalesce.CoalescingScorer(lambda: engine, linger_s=-1).linger_s == 0.0


def test_extreme_timestamp_with_offset_is_a_validation_error() -> None:
    """Found by the fuzzer: year 1 with a positive UTC offset overflowed instead of failing validation."""
    from datetime import datetime, timedelta, timezone

    import pytest as _pytest

    from serving.schemas import _utc

    with _pytest.raises(ValueError, match="between 1900"):
        _utc(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))))


def test_timeout_timers_are_cancelled_and_timeouts_still_answer_504():
    """BentoML's per-request timeout timer no longer outlives its request; a slow request still gets 504."""
    import asyncio

    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    from serving.service import cancel_timeout_timers

    assert cancel_timeout_timers()

    async def app(scope, receive, send, delay: float = 0.0) -> None:
        await asyncio.sleep(delay)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def call(delay: float, timeout: float) -> tuple[list[dict], int]:
        sent: list[dict] = []

        async def send(message) -> None:
            sent.append(message)

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def slow(scope, receive, send) -> None:
            await app(scope, receive, send, delay)

        scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
        await TimeoutMiddleware(slow, timeout=timeout)(scope, receive, send)
        # A cancelled timer drops its callback and arguments (the request's objects) at once.
        return sent, sum(not h.cancelled() for h in asyncio.get_running_loop()._scheduled)

    sent, pending = asyncio.run(call(0.0, 30.0))
    assert sent[0]["status"] == 200 and pending == 0  # no 30-second timer left behind
    sent, _ = asyncio.run(call(0.5, 0.05))
    assert sent[0]["status"] == 504


def test_a_malformed_linger_setting_names_itself(monkeypatch, model_file):
    with pytest.raises(ValueError, match="ENGAGE_BATCH_LINGER_MS"), make_client(
        monkeypatch, model_file, ENGAGE_BATCH_LINGER_MS="soon"
    ):
        pass


def test_reason_codes_carry_the_customers_value_and_older_reasons_still_validate():
    """Reasons gained ``value`` and ``attribute``; a reason without them (an older model's) gets nulls."""
    from serving.responses import _reason
    from serving.schemas import Reason

    new = {"feature": "attr_plan_yes", "label": "plan = yes", "contribution": 0.4, "value": "yes", "attribute": "plan"}
    numeric = {"feature": "recency_days", "label": "days", "contribution": 0.2, "value": np.float64(12.0),
               "attribute": None}
    flag = {"feature": "attr_vip", "label": "vip = true", "contribution": 0.1, "value": np.bool_(True),
            "attribute": "vip"}
    old = {"feature": "recency_days", "label": "days", "contribution": 0.2}
    got = [Reason.model_validate(_reason(r)).model_dump() for r in (new, numeric, flag, old)]
    assert [(g["value"], g["attribute"]) for g in got] == [("yes", "plan"), (12.0, None), (True, "vip"), (None, None)]
    assert type(got[1]["value"]) is float and type(got[2]["value"]) is bool
    assert [list(g)[:3] for g in got] == [["feature", "label", "contribution"]] * 4  # the fields clients read first
