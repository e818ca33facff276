"""customer_value, value_decile and persona: in batch scores, the service response and the pyfunc output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.builders.pipeline import FeaturePipeline
from features.labels import make_labels
from features.models.churn import ChurnModel
from features.models.personas import PersonaModel
from features.system import DecisionSystem, load_system_file, save_system
from training.value.evaluate import ValueSettings, value_at

SEGMENTS = ("customer_value", "value_decile", "persona")


@pytest.fixture(scope="module")
def systems(make_world, tmp_path_factory):
    """A small decision system with a value model and personas (and the same without them), saved to disk."""
    world = make_world(600, 300, seed=8)
    cutoff = pd.Timestamp(world.meta["manifest"]["cutoff"])
    tables = world.without_truth()
    train_at, val_at = cutoff - pd.Timedelta(days=180), cutoff - pd.Timedelta(days=90)
    pipe = FeaturePipeline(n_jobs=1).fit(tables, cutoff=cutoff)
    labels = make_labels(world, [train_at, val_at])

    def frame(at):
        keys = labels[labels["cutoff"] == at]
        return pipe.transform(tables, cutoff=at).loc[keys["customer_id"]], keys["label"].to_numpy()

    churn = ChurnModel({"min_child_samples": 20}, num_boost_round=40, early_stopping_rounds=10, seed=3)
    churn.fit(*frame(train_at), *frame(val_at))
    value = value_at(world, cutoff, pipe, ValueSettings(max_cutoffs=3, model=(("n_estimators", 40),)))
    F = pipe.transform(tables, cutoff=cutoff)
    personas = PersonaModel(k_range=(6, 7), n_splits=2, n_init=3).fit(F)
    full = DecisionSystem(pipe, churn, metadata={"model_version": "seg/1"}, value_model=value, personas=personas)
    plain = DecisionSystem(pipe, churn, metadata={"model_version": "seg/0"})
    folder = tmp_path_factory.mktemp("segments")
    save_system(full, folder / "full")
    return full, plain, world, cutoff, folder


def test_scores_carry_value_and_persona(systems) -> None:
    full, plain, world, cutoff, folder = systems
    scored = full.score(world.without_truth(), cutoff)
    assert [c for c in scored.columns if c in SEGMENTS] == list(SEGMENTS)
    assert np.isfinite(scored["customer_value"]).all() and (scored["customer_value"] >= 0).all()
    assert scored["value_decile"].between(1, 10).all()
    assert set(scored["persona"]) <= set(full.personas.names_)
    # the value decile follows the value
    by_decile = scored.groupby("value_decile")["customer_value"].mean()
    assert by_decile.is_monotonic_increasing
    # a system without the parts scores exactly the columns it always did
    assert not set(SEGMENTS) & set(plain.score(world.without_truth(), cutoff).columns)
    # from precomputed features and after a pickle round trip: the same values
    F = full.features(world, cutoff)
    from_features = full.score_features(F)
    np.testing.assert_allclose(from_features["customer_value"], scored["customer_value"])
    assert from_features["persona"].tolist() == scored["persona"].tolist()
    again = load_system_file(folder / "full").score(world.without_truth(), cutoff)
    pd.testing.assert_frame_equal(again[list(SEGMENTS)], scored[list(SEGMENTS)])


def test_pyfunc_output_has_the_new_columns(systems) -> None:
    from training.input_example import synthetic_input_example

    full, plain, _, cutoff, _ = systems
    example = synthetic_input_example(cutoff, full.static_attribute_kinds())
    out = full.predict(example, {"cutoff": str(cutoff)})
    assert set(SEGMENTS) <= set(out.columns)
    assert out["value_decile"].between(1, 10).all() and out["persona"].isin(full.personas.names_).all()
    assert not set(SEGMENTS) & set(plain.predict(example, {"cutoff": str(cutoff)}).columns)


def test_batch_scores_and_the_service_response(systems, tmp_path, monkeypatch) -> None:
    from features.sources.io import write_tables
    from serving.batch import score_data
    from tests.serving.test_serving import make_client, wait_ready

    full, _, world, cutoff, folder = systems
    data = tmp_path / "data"
    write_tables(world, data)
    out = tmp_path / "scores.parquet"
    score_data(data, out, cutoff=cutoff, model_path=folder / "full")
    table = pd.read_parquet(out)
    want = full.score(world.without_truth(), cutoff).set_index("customer_id")
    got = table.set_index("customer_id").loc[want.index]
    np.testing.assert_allclose(got["customer_value"], want["customer_value"])
    assert got["value_decile"].tolist() == want["value_decile"].tolist()
    assert got["persona"].tolist() == want["persona"].tolist()

    cid = str(want.index[0])
    tp = world.touchpoints[(world.touchpoints["customer_id"].astype(str) == cid) & (world.touchpoints["ts"] < cutoff)]
    body = {"cutoff": cutoff.isoformat(), "customers": [{
        "customer_id": cid,
        "touchpoints": [{"ts": t.isoformat(), "channel": c, "kind": k, "direction": d,
                         **({"amount": float(a)} if a == a else {})}
                        for t, c, k, d, a in zip(tp["ts"], tp["channel"].astype(str), tp["kind"].astype(str),
                                                 tp["direction"].astype(str), tp["amount"], strict=True)],
    }]}
    with make_client(monkeypatch, folder / "full") as client:
        wait_ready(client)
        res = client.post("/score", json=body)
    assert res.status_code == 200, res.text
    row = res.json()["results"][0]
    assert set(SEGMENTS) <= set(row)
    assert row["persona"] in full.personas.names_
    assert 1 <= row["value_decile"] <= 10 and row["customer_value"] >= 0


def test_batch_reason_modes_change_only_the_reasons(systems, tmp_path, monkeypatch) -> None:
    """score --data --reasons at-risk|none: the same table as all, but for the reason codes it leaves out."""
    from features.sources.io import write_tables
    from serving.batch import score_data

    full, _, world, cutoff, folder = systems
    data = tmp_path / "data"
    write_tables(world, data)
    # this system has no policy (at risk from 0.5, which no customer of this small world reaches): the median
    level = float(np.median(full.score(world.without_truth(), cutoff)["churn_probability"]))
    monkeypatch.setattr(DecisionSystem, "at_risk_probability", property(lambda self: level))
    tables = {}
    for mode in ("all", "at-risk", "none"):
        summary = score_data(data, tmp_path / f"{mode}.parquet", cutoff=cutoff, model_path=folder / "full",
                             reasons=mode)
        assert summary["reasons"] == mode
        tables[mode] = pd.read_parquet(tmp_path / f"{mode}.parquet")
    every = tables["all"]
    for mode in ("at-risk", "none"):
        pd.testing.assert_frame_equal(tables[mode].drop(columns="churn_reasons"), every.drop(columns="churn_reasons"))
    assert (tables["none"]["churn_reasons"] == "[]").all()
    at_risk = (every["churn_probability"] >= level).to_numpy()
    assert 0 < at_risk.sum() < len(every)
    assert tables["at-risk"]["churn_reasons"][at_risk].tolist() == every["churn_reasons"][at_risk].tolist()
    assert (tables["at-risk"]["churn_reasons"][~at_risk] == "[]").all()
    assert (every["churn_reasons"][at_risk] != "[]").any()
    with pytest.raises(ValueError, match="reasons"):
        score_data(data, tmp_path / "x.parquet", cutoff=cutoff, model_path=folder / "full", reasons="some")


def test_batch_scoring_leaves_the_truth_unread(systems, tmp_path) -> None:
    """Scoring never sees the ground truth, so a data folder's truth file is not read (nor checked)."""
    from features.contract.errors import DataError
    from features.sources.io import read_tables, write_tables
    from serving.batch import score_data

    _, _, world, cutoff, folder = systems
    data = tmp_path / "data"
    write_tables(world, data)
    before = score_data(data, tmp_path / "a.parquet", cutoff=cutoff, model_path=folder / "full")
    (data / "truth.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="truth"):
        read_tables(data)
    assert read_tables(data, truth=False).truth is None
    after = score_data(data, tmp_path / "b.parquet", cutoff=cutoff, model_path=folder / "full")
    assert after["customers"] == before["customers"]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "b.parquet"), pd.read_parquet(tmp_path / "a.parquet"))
