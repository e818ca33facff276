"""The data contract: malformed inputs are rejected clearly; valid data is normalised and round-trips."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.contract.errors import DataError, DataProblemsError
from features.contract.schema import CHANNELS, KINDS, OUTREACH_CHANNELS, Tables, subset_tables
from features.contract.validate import validate_tables
from features.sources.io import read_manifest, read_tables, write_frame, write_tables

# A small valid data set as text, the way a CSV export holds it.
TINY_CSV = {
    "customers": """\
customer_id,signup_ts,consent_email,consent_sms,consent_push,consent_call,plan
C1,2024-01-05T09:00:00Z,true,false,1,0,gold
C2,2024-02-01T00:00:00Z,yes,no,0,0,basic
C3,,0,1,true,false,basic
""",
    "touchpoints": """\
customer_id,ts,channel,kind,direction,duration_s,pages,amount,sentiment,topic,referrer,campaign_id
C2,2024-03-02T10:00:00Z,web,page_view,inbound,30,3,,,,organic,
C1,2024-03-01T12:00:00Z,store,purchase,inbound,,,49.90,,,,
C1,2024-03-01T08:30:00+00:00,email,message_open,inbound,,,,,,email,K1
C3,2024-03-03T00:00:00Z,app,visit,inbound,120,5,,,,,
C1,2024-03-05T18:15:00Z,call_center,service_contact,inbound,300,,,-0.5,fault,,
C2,2024-03-04T09:00:00Z,web,return,inbound,,,-20,,,ad,
""",
    "outreach": """\
customer_id,ts,channel,offer,campaign_id,propensity,holdout
C1,2024-03-01T08:00:00Z,email,discount_10,K1,0.25,false
C2,2024-03-01T08:00:00Z,sms,none,K1,1,false
C3,2024-03-01T08:00:00Z,,,K1,0.5,true
""",
    "labels": """\
customer_id,label
C1,0
C2,1
C3,0
""",
}


def tiny_frames() -> dict[str, pd.DataFrame]:
    """The small valid data set as text frames (every cell a string, empty cells empty strings)."""
    return {name: pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False) for name, text in TINY_CSV.items()}


def write_csv_folder(folder: Path, frames: dict[str, pd.DataFrame]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in frames.items():
        df.to_csv(folder / f"{name}.csv", index=False)
    return folder


def tiny_tables() -> Tables:
    return Tables(**tiny_frames())


# ------------------------------------------------------------------------- the malformed catalogue

# Each case: (id, how to break the valid frames, table, column, words the message must contain).
Mutation = Callable[[dict[str, pd.DataFrame]], None]


def _set(table: str, column: str, row: int, value) -> Mutation:
    def mutate(frames: dict[str, pd.DataFrame]) -> None:
        frames[table].loc[row, column] = value

    return mutate


def _drop_column(table: str, column: str) -> Mutation:
    def mutate(frames: dict[str, pd.DataFrame]) -> None:
        frames[table] = frames[table].drop(columns=[column])

    return mutate


def _both(*mutations: Mutation) -> Mutation:
    def mutate(frames: dict[str, pd.DataFrame]) -> None:
        for m in mutations:
            m(frames)

    return mutate


def _duplicate_label(frames: dict[str, pd.DataFrame]) -> None:
    frames["labels"] = pd.concat([frames["labels"], frames["labels"].iloc[[0]]], ignore_index=True)


VALUE_CASES = [
    ("missing-column", _drop_column("touchpoints", "kind"), "touchpoints", "kind",
     ["required column", "kind"]),
    ("missing-consent-column", _drop_column("customers", "consent_sms"), "customers", "consent_sms",
     ["missing"]),
    ("bad-timestamp", _set("touchpoints", "ts", 2, "2024-13-45 25:61"), "touchpoints", "ts",
     ["1 row", "unparseable timestamp", "'2024-13-45 25:61'", "row 3"]),
    ("timestamp-out-of-range", _set("touchpoints", "ts", 0, "3000-01-01T00:00:00Z"), "touchpoints", "ts",
     ["outside the years", "'3000-01-01T00:00:00Z'"]),
    ("bad-signup-ts", _set("customers", "signup_ts", 1, "last tuesday"), "customers", "signup_ts",
     ["unparseable timestamp", "'last tuesday'"]),
    ("unknown-channel",
     _both(_set("touchpoints", "channel", 0, "fax"), _set("touchpoints", "channel", 3, "telex")),
     "touchpoints", "channel", ["2 rows", "unknown value", "'fax'", "'telex'", "allowed: web, app"]),
    ("unknown-kind", _set("touchpoints", "kind", 1, "teleport"), "touchpoints", "kind",
     ["unknown value", "'teleport'", "allowed:"]),
    ("unknown-direction", _set("touchpoints", "direction", 1, "sideways"), "touchpoints", "direction",
     ["unknown value", "'sideways'", "inbound, outbound"]),
    ("unknown-referrer", _set("touchpoints", "referrer", 1, "billboard"), "touchpoints", "referrer",
     ["unknown value", "'billboard'"]),
    ("negative-duration", _set("touchpoints", "duration_s", 0, "-5"), "touchpoints", "duration_s",
     ["1 row", "negative", "-5"]),
    ("negative-pages", _set("touchpoints", "pages", 3, "-1"), "touchpoints", "pages", ["negative"]),
    ("negative-amount-purchase", _set("touchpoints", "amount", 1, "-49.9"), "touchpoints", "amount",
     ["negative amount", "return", "-49.9"]),
    ("non-numeric-pages", _set("touchpoints", "pages", 0, "many"), "touchpoints", "pages",
     ["not a number", "'many'"]),
    ("sentiment-range", _set("touchpoints", "sentiment", 4, "1.5"), "touchpoints", "sentiment",
     ["outside [-1, 1]", "1.5"]),
    ("propensity-zero", _set("outreach", "propensity", 0, "0"), "outreach", "propensity", ["outside (0, 1]"]),
    ("propensity-above-one", _set("outreach", "propensity", 1, "1.2"), "outreach", "propensity",
     ["outside (0, 1]", "1.2"]),
    ("touch-unknown-customer", _set("touchpoints", "customer_id", 0, "C999"), "touchpoints", "customer_id",
     ["missing from the customers table", "'C999'"]),
    ("outreach-unknown-customer", _set("outreach", "customer_id", 2, "ghost"), "outreach", "customer_id",
     ["missing from the customers table", "'ghost'"]),
    ("empty-customer-id", _set("customers", "customer_id", 1, "  "), "customers", "customer_id",
     ["missing or empty customer id"]),
    ("touch-missing-customer-id", _set("touchpoints", "customer_id", 4, ""), "touchpoints", "customer_id",
     ["missing or empty customer id", "row 5"]),
    ("non-boolean-consent", _set("customers", "consent_email", 2, "maybe"), "customers", "consent_email",
     ["not boolean", "'maybe'"]),
    ("unknown-outreach-channel", _set("outreach", "channel", 0, "web"), "outreach", "channel",
     ["unknown value", "'web'", "allowed: email, sms, push, call"]),
    ("missing-outreach-channel", _set("outreach", "channel", 1, ""), "outreach", "channel",
     ["missing channel", "not a holdout"]),
    ("missing-offer", _set("outreach", "offer", 0, ""), "outreach", "offer", ["missing offer", "'none'"]),
    ("holdout-not-boolean", _set("outreach", "holdout", 1, "sometimes"), "outreach", "holdout",
     ["not boolean", "'sometimes'"]),
    ("holdout-missing", _set("outreach", "holdout", 1, ""), "outreach", "holdout", ["missing holdout"]),
    ("label-not-binary", _set("labels", "label", 1, "2"), "labels", "label", ["other than 0 or 1", "'2'"]),
    ("label-duplicate", _duplicate_label, "labels", "customer_id", ["second label"]),
    ("label-unknown-customer", _set("labels", "customer_id", 0, "C42"), "labels", "customer_id",
     ["missing from the customers table", "C42"]),
]


def _broken_frames(mutate: Mutation) -> dict[str, pd.DataFrame]:
    frames = {k: v.copy() for k, v in tiny_frames().items()}
    mutate(frames)
    return frames


@pytest.mark.parametrize(("mutate", "table", "column", "words"),
                         [pytest.param(*c[1:], id=c[0]) for c in VALUE_CASES])
def test_malformed_values_are_rejected_in_memory(mutate, table, column, words):
    with pytest.raises(DataError) as info:
        validate_tables(Tables(**_broken_frames(mutate)))
    err = info.value
    assert (err.table, err.column) == (table, column)
    # a value that breaks the contract may also break what refers to it (an emptied id leaves its events
    # without a customer): those are listed after it
    message = str(err.problems[0]) if isinstance(err, DataProblemsError) else str(err)
    assert message.startswith(f"{table}.{column}") or message.startswith(f"{table}:")
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize(("mutate", "table", "column", "words"),
                         [pytest.param(*c[1:], id=c[0]) for c in VALUE_CASES])
def test_malformed_values_in_files_fail_read_tables(tmp_path, mutate, table, column, words):
    folder = write_csv_folder(tmp_path / "data", _broken_frames(mutate))
    with pytest.raises(DataError) as info:
        read_tables(folder)
    assert (info.value.table, info.value.column) == (table, column)
    assert str(folder) in str(info.value)


def _corrupt_parquet(folder: Path) -> None:
    (folder / "touchpoints.csv").unlink()
    (folder / "touchpoints.parquet").write_bytes(b"PAR1 this is not really parquet PAR1")


def _garbage_csv(folder: Path) -> None:
    (folder / "customers.csv").write_bytes(bytes(range(256)) * 8)


def _ragged_csv(folder: Path) -> None:
    (folder / "touchpoints.csv").write_text(
        "customer_id,ts,channel,kind,direction\nC1,2024-01-01T00:00:00Z,web,visit,inbound,extra,fields\n"
    )


def _empty_file(folder: Path) -> None:
    (folder / "outreach.csv").write_text("")


def _corrupt_gzip(folder: Path) -> None:
    data = gzip.compress((folder / "touchpoints.csv").read_bytes())
    (folder / "touchpoints.csv").unlink()
    (folder / "touchpoints.csv.gz").write_bytes(data[: len(data) // 2])


def _two_formats(folder: Path) -> None:
    pd.read_csv(folder / "customers.csv").to_parquet(folder / "customers.parquet")


def _no_customers(folder: Path) -> None:
    (folder / "customers.csv").unlink()


def _text_file_as_table(folder: Path) -> None:
    (folder / "touchpoints.csv").write_text("hello, this is a letter\nnot a table at all\n")


def _bad_manifest(folder: Path) -> None:
    (folder / "manifest.json").write_text("{not json")


FILE_CASES = [
    ("corrupt-parquet", _corrupt_parquet, "touchpoints", ["touchpoints.parquet", "not a readable parquet"]),
    ("garbage-csv", _garbage_csv, "customers", ["customers.csv", "not a readable CSV"]),
    ("ragged-csv", _ragged_csv, "touchpoints", ["touchpoints.csv", "not a readable CSV"]),
    ("empty-file", _empty_file, "outreach", ["outreach.csv is empty"]),
    ("corrupt-gzip", _corrupt_gzip, "touchpoints", ["touchpoints.csv.gz", "not a readable CSV"]),
    ("two-formats", _two_formats, "customers", ["customers.csv", "customers.parquet", "keep exactly one"]),
    ("missing-table", _no_customers, "customers", ["required table missing", "customers.parquet"]),
    ("prose-not-table", _text_file_as_table, "touchpoints", ["required columns", "customer_id"]),
    ("bad-manifest", _bad_manifest, "manifest", ["manifest.json", "not valid JSON"]),
]


@pytest.mark.parametrize(("corrupt", "table", "words"), [pytest.param(*c[1:], id=c[0]) for c in FILE_CASES])
def test_malformed_files_are_rejected(tmp_path, corrupt, table, words):
    folder = write_csv_folder(tmp_path / "data", tiny_frames())
    corrupt(folder)
    with pytest.raises(DataError) as info:
        read_tables(folder)
    assert info.value.table == table
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def _cli(args: list[str]):
    from training.cli import app

    return CliRunner().invoke(app, args)


CLI_CASES = [pytest.param("file", c[1], c[3][0], id=c[0]) for c in FILE_CASES] + [
    pytest.param("value", c[1], c[4][0], id=c[0]) for c in VALUE_CASES[::3]
]


@pytest.mark.parametrize(("kind", "breaker", "word"), CLI_CASES)
def test_cli_validate_exits_2_with_message(tmp_path, kind, breaker, word):
    folder = tmp_path / "data"
    if kind == "file":
        write_csv_folder(folder, tiny_frames())
        breaker(folder)
    else:
        write_csv_folder(folder, _broken_frames(breaker))
    before = sorted(p.name for p in folder.iterdir())
    result = _cli(["validate", str(folder)])
    assert result.exit_code == 2, result.output
    assert word in result.stderr
    assert "Traceback" not in result.output
    assert sorted(p.name for p in folder.iterdir()) == before  # validation never writes


@pytest.mark.parametrize(("breaker", "word"), [pytest.param(c[1], c[3][0], id=c[0]) for c in FILE_CASES[:4]])
def test_cli_features_writes_nothing_for_bad_data(tmp_path, breaker, word):
    folder = write_csv_folder(tmp_path / "data", tiny_frames())
    breaker(folder)
    out = tmp_path / "out" / "features.parquet"
    result = _cli(["features", "--data", str(folder), "--cutoff", "2024-04-01", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert word in result.stderr
    assert not out.exists() and not out.parent.exists()


def test_engage_console_script_validate(tmp_path):
    folder = write_csv_folder(tmp_path / "data", _broken_frames(_set("touchpoints", "channel", 0, "fax")))
    exe = Path(sys.executable).with_name("engage")
    assert exe.exists(), "the engage console script must be installed by the project (pip install -e .)"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    bad = subprocess.run([str(exe), "validate", str(folder)], capture_output=True, text=True, env=env,
                         timeout=120)
    assert bad.returncode == 2
    assert "touchpoints.channel" in bad.stderr and "'fax'" in bad.stderr
    good = subprocess.run([str(exe), "validate", str(write_csv_folder(tmp_path / "ok", tiny_frames()))],
                          capture_output=True, text=True, env=env, timeout=120)
    assert good.returncode == 0, good.stderr
    assert "touchpoints: 6 rows" in good.stdout


# ------------------------------------------------------------------------------- normalised form


def test_normalised_dtypes_and_order():
    t, report = validate_tables(tiny_tables())
    cus, tp, out, lab = t.customers, t.touchpoints, t.outreach, t.labels
    assert cus["customer_id"].tolist() == ["C1", "C2", "C3"]
    assert str(cus["signup_ts"].dtype) == "datetime64[ns, UTC]" and pd.isna(cus["signup_ts"].iloc[2])
    assert cus["consent_email"].dtype == bool
    assert cus[["consent_email", "consent_sms", "consent_push"]].to_numpy().tolist() == [
        [True, False, True], [True, False, False], [False, True, True]]
    assert cus["plan"].tolist() == ["gold", "basic", "basic"]  # extra attributes kept
    for df in (tp, out):
        assert isinstance(df["customer_id"].dtype, pd.CategoricalDtype)
        assert df["customer_id"].cat.categories.tolist() == ["C1", "C2", "C3"]
        assert str(df["ts"].dtype) == "datetime64[ns, UTC]"
    assert tp["channel"].cat.categories.tolist() == list(CHANNELS)
    assert tp["kind"].cat.categories.tolist() == list(KINDS)
    assert out["channel"].cat.categories.tolist() == list(OUTREACH_CHANNELS)
    for col in ("duration_s", "pages", "amount", "sentiment"):
        assert tp[col].dtype == np.float64
    assert tp["amount"].min() == -20.0  # negative amounts are allowed on returns
    # Rows sorted by (customer, ts).
    assert tp["customer_id"].tolist() == ["C1", "C1", "C1", "C2", "C2", "C3"]
    assert tp["kind"].tolist()[:3] == ["message_open", "purchase", "service_contact"]
    assert tp["ts"].is_monotonic_increasing is False and tp.groupby(
        "customer_id", observed=True)["ts"].apply(lambda s: s.is_monotonic_increasing).all()
    assert out["holdout"].dtype == bool and out["holdout"].tolist() == [False, False, True]
    assert pd.isna(out["channel"].iloc[2])  # holdout rows may lack a channel
    assert out["propensity"].dtype == np.float64
    assert lab["label"].dtype == np.int8 and lab["label"].tolist() == [0, 1, 0]
    assert report.rows_in == report.rows_out == {"customers": 3, "touchpoints": 6, "outreach": 3, "labels": 3}
    assert t.meta["validation"] is report


def test_time_zones_are_converted_and_naive_times_read_as_utc_with_warning():
    frames = tiny_frames()
    frames["touchpoints"].loc[0, "ts"] = "2024-03-02T12:00:00+02:00"
    frames["touchpoints"].loc[1, "ts"] = "2024-03-01 12:00:00"
    t, report = validate_tables(Tables(**frames))
    c2 = t.touchpoints[t.touchpoints["customer_id"] == "C2"]
    assert c2["ts"].iloc[0] == pd.Timestamp("2024-03-02T10:00:00Z")
    assert any("touchpoints.ts" in w and "read as UTC" in w for w in report.warnings)
    naive = tiny_frames()
    naive["touchpoints"]["ts"] = pd.to_datetime(naive["touchpoints"]["ts"], utc=True).dt.tz_localize(None)
    t2, report2 = validate_tables(Tables(**naive))
    assert str(t2.touchpoints["ts"].dtype) == "datetime64[ns, UTC]"
    assert any("without a time zone" in w for w in report2.warnings)
    _, clean = validate_tables(tiny_tables())
    assert not any("touchpoints.ts" in w for w in clean.warnings)


def test_numeric_ids_become_text_and_empty_logs_are_valid(tmp_path):
    frames = tiny_frames()
    frames["customers"]["customer_id"] = [1, 2, 3]
    frames["touchpoints"]["customer_id"] = [2.0, 1.0, 1.0, 3.0, 1.0, 2.0]  # floats from a numeric export
    frames["outreach"]["customer_id"] = ["1", "2", "3"]
    frames["labels"] = pd.DataFrame({"customer_id": [1, 2, 3], "label": [True, False, True]})
    t, _ = validate_tables(Tables(**frames))
    assert t.customers["customer_id"].tolist() == ["1", "2", "3"]
    assert t.touchpoints["customer_id"].tolist() == ["1", "1", "1", "2", "2", "3"]
    assert t.labels["label"].tolist() == [1, 0, 1]
    no_rows = pd.DataFrame({c: [] for c in ("customer_id", "ts", "channel", "kind", "direction")})
    valid, _ = validate_tables(Tables(customers=frames["customers"], touchpoints=no_rows))
    assert len(valid.touchpoints) == 0 and str(valid.touchpoints["ts"].dtype) == "datetime64[ns, UTC]"
    write_tables(valid, tmp_path / "empty")
    pd.testing.assert_frame_equal(read_tables(tmp_path / "empty").touchpoints, valid.touchpoints)


def test_validation_does_not_modify_its_input():
    frames = tiny_frames()
    copies = {k: v.copy() for k, v in frames.items()}
    validate_tables(Tables(**frames))
    for k in frames:
        pd.testing.assert_frame_equal(frames[k], copies[k])


def test_data_error_fields_and_pickling():
    import pickle

    err = DataError("touchpoints", "channel", "an unknown value", ["fax", "telex"], 3, allowed=["web", "app"],
                    row=7, source="data/x")
    assert str(err) == ("data/x: touchpoints.channel: 3 rows with an unknown value ('fax', 'telex'; first at "
                        "row 7); allowed: web, app")
    assert isinstance(err, ValueError)
    back = pickle.loads(pickle.dumps(err))
    assert (back.table, back.column, back.count, back.examples, str(back)) == (
        "touchpoints", "channel", 3, ["fax", "telex"], str(err))


def test_numbers_are_not_timestamps():
    frames = tiny_frames()
    frames["touchpoints"]["ts"] = np.arange(6) * 10**9
    with pytest.raises(DataError, match=r"touchpoints\.ts: .*numbers where timestamps are expected"):
        validate_tables(Tables(**frames))


def test_missing_required_table_in_memory():
    with pytest.raises(DataError, match="touchpoints: required table missing"):
        validate_tables(Tables(customers=tiny_frames()["customers"], touchpoints=None))


# ------------------------------------------------------------------------------------- duplicates


def test_exact_duplicate_touchpoints_are_dropped_and_reported():
    frames = tiny_frames()
    tp = frames["touchpoints"]
    near = tp.iloc[[1]].assign(amount="10")  # same customer and time, different amount: kept
    frames["touchpoints"] = pd.concat([tp, tp.iloc[[1, 1, 4]], near], ignore_index=True)
    t, report = validate_tables(Tables(**frames))
    assert report.duplicate_touchpoints_dropped == 3
    assert len(t.touchpoints) == 7
    assert report.rows_in["touchpoints"] == 10 and report.rows_out["touchpoints"] == 7
    assert "dropped 3 exact duplicate touchpoints" in report.summary()


def test_duplicate_customer_ids_are_merged_by_the_documented_rule():
    frames = tiny_frames()
    extra = pd.DataFrame({
        "customer_id": ["C1", "C1"],
        "signup_ts": ["2023-06-01T00:00:00Z", "2024-06-01T00:00:00Z"],
        "consent_email": ["true", "false"],   # one refusal: no consent
        "consent_sms": ["false", "false"],
        "consent_push": ["true", "true"],     # consents everywhere: consent
        "consent_call": ["", "0"],            # missing counts as no consent
        "plan": ["platinum", ""],             # last present value wins
    })
    frames["customers"] = pd.concat([frames["customers"], extra], ignore_index=True)
    t, report = validate_tables(Tables(**frames))
    cus = t.customers
    assert cus["customer_id"].tolist() == ["C1", "C2", "C3"]  # merged record at the first position
    c1 = cus.iloc[0]
    assert c1["signup_ts"] == pd.Timestamp("2023-06-01T00:00:00Z")  # earliest signup
    assert (c1["consent_email"], c1["consent_sms"], c1["consent_push"], c1["consent_call"]) == (
        False, False, True, False)
    assert c1["plan"] == "platinum"
    assert report.duplicate_customer_ids == 1 and report.duplicate_customer_records_merged == 2
    assert report.duplicate_customer_examples == ["C1"]
    assert any("conflicting consent" in w for w in report.warnings)
    assert "merged 1 customer ids" in report.summary()
    assert len(t.touchpoints) == 6  # C1's touchpoints still attach to the single record


# ------------------------------------------------------------------------------------------ subset


def test_subset_tables_follows_customer_order_and_categories():
    t, _ = validate_tables(tiny_tables())
    s = subset_tables(t, ["C3", "C1"])
    assert s.customers["customer_id"].tolist() == ["C1", "C3"]
    assert s.touchpoints["customer_id"].cat.categories.tolist() == ["C1", "C3"]
    assert s.touchpoints["customer_id"].tolist() == ["C1", "C1", "C1", "C3"]
    assert s.outreach["customer_id"].tolist() == ["C1", "C3"]
    assert s.labels["customer_id"].tolist() == ["C1", "C3"]
    assert t.subset(["C2"]).n_customers == 1
    again, _ = validate_tables(s)
    pd.testing.assert_frame_equal(again.touchpoints, s.touchpoints)
    with pytest.raises(KeyError, match="C9"):
        subset_tables(t, ["C1", "C9"])


# ----------------------------------------------------------------------------------------- file I/O


def test_csv_folder_round_trips_through_parquet_unchanged(tmp_path):
    src = write_csv_folder(tmp_path / "csv", tiny_frames())
    (src / "manifest.json").write_text('{"seed": 3, "cutoff": "2024-04-01T00:00:00+00:00"}')
    first = read_tables(src)
    assert first.meta["manifest"]["seed"] == 3
    write_tables(first, tmp_path / "pq")
    assert sorted(p.name for p in (tmp_path / "pq").iterdir()) == [
        "customers.parquet", "labels.parquet", "manifest.json", "outreach.parquet", "touchpoints.parquet"]
    second = read_tables(tmp_path / "pq")
    for name in ("customers", "touchpoints", "outreach", "labels"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name))
    assert read_manifest(tmp_path / "pq") == first.meta["manifest"]
    # Same data, same bytes.
    write_tables(second, tmp_path / "pq2")
    for f in (tmp_path / "pq").iterdir():
        assert f.read_bytes() == (tmp_path / "pq2" / f.name).read_bytes(), f.name


def test_simulated_world_round_trips(tmp_path, make_world):
    world = make_world(300, 120, seed=5)
    valid, _ = validate_tables(world)
    write_tables(world, tmp_path / "w")
    back = read_tables(tmp_path / "w")
    for name in ("customers", "touchpoints", "outreach", "truth"):
        pd.testing.assert_frame_equal(getattr(valid, name), getattr(back, name))
    assert back.meta["manifest"]["seed"] == world.meta["manifest"]["seed"]


def test_write_tables_refuses_non_empty_folder_and_writes_nothing_on_bad_data(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        write_tables(tiny_tables(), target)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    write_tables(tiny_tables(), target, overwrite=True)
    assert not (target / "keep.txt").exists() and (target / "customers.parquet").exists()

    bad = _broken_frames(_set("touchpoints", "channel", 0, "fax"))
    fresh = tmp_path / "deep" / "fresh"
    with pytest.raises(DataError, match="channel"):
        write_tables(Tables(**bad), fresh)
    assert not (tmp_path / "deep").exists()
    with pytest.raises(DataError):
        write_tables(Tables(**bad), target, overwrite=True)
    assert (target / "customers.parquet").exists()  # the old folder survives a failed overwrite
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp leftovers


@pytest.mark.parametrize("name", ["f.parquet", "f.csv", "f.csv.gz"])
def test_write_frame_by_extension_is_atomic_and_deterministic(tmp_path, name):
    df = pd.DataFrame({"customer_id": ["a", "b"], "x": [1.5, np.nan],
                       "ts": pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True)}).set_index("customer_id")
    write_frame(df, tmp_path / "one" / name)
    write_frame(df, tmp_path / "two" / name)
    assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    back = pd.read_parquet(tmp_path / "one" / name) if name.endswith(".parquet") else pd.read_csv(
        tmp_path / "one" / name)
    assert back.columns.tolist() == ["customer_id", "x", "ts"]
    assert [p.name for p in (tmp_path / "one").iterdir()] == [name]
    with pytest.raises(ValueError, match="unsupported"):
        write_frame(df, tmp_path / "three" / "f.xlsx")
    assert not (tmp_path / "three").exists()
