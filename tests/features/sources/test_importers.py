"""Importers of real public datasets: counts against the dataset READMEs, validation, documented decisions.

Tests marked ``shared`` read ``../shared/datasets`` and skip when it is absent; each dataset is imported
once per module. The other tests build tiny made-up source folders in the shapes the importers read.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.contract.errors import DataError
from features.contract.schema import CUSTOMER_COLUMNS
from features.contract.validate import validate_tables
from features.sources.importers.registry import IMPORTERS, import_dataset
from features.sources.io import read_tables, write_tables
from tests.paths import SHARED, needs_shared

_cache: dict[str, object] = {}


def _imported(name: str):
    """Each real dataset is imported once per test module."""
    if name not in _cache:
        _cache[name] = import_dataset(name, SHARED / name)
    return _cache[name]


@pytest.fixture(scope="module")
def imported():
    yield _imported
    _cache.clear()


def _kinds(tables) -> dict[str, int]:
    return {str(k): int(v) for k, v in tables.touchpoints["kind"].value_counts().items() if v}


# ------------------------------------------------------------------------------ real datasets (shared)


@needs_shared
@pytest.mark.parametrize("name", list(IMPORTERS))
def test_every_import_is_valid_and_documented(imported, name):
    t = imported(name)
    again, report = validate_tables(t, source=name)  # already normalised: validation changes nothing
    assert len(again.touchpoints) == len(t.touchpoints) and report.duplicate_touchpoints_dropped == 0
    man = t.meta["manifest"]
    assert man["dataset"] == name and man["has"] and man["lacks"] and man["time_base"]
    assert t.customers["customer_id"].is_unique
    assert str(t.touchpoints["ts"].dtype) == "datetime64[ns, UTC]"
    json.dumps(man, default=str)  # the manifest is written as JSON


@needs_shared
def test_starbucks_counts_and_offers(imported):
    t = imported("starbucks")
    assert t.n_customers == 17_000
    assert len(t.outreach) == 76_277 and not t.outreach["holdout"].any()
    assert (t.outreach["channel"] == "email").all() and (t.outreach["propensity"] == 0.1).all()
    assert t.outreach["offer"].nunique() == 10 and t.outreach["campaign_id"].nunique() == 6
    assert t.outreach["channels"].str.contains("email").all()
    # Every transcript event is kept: the 397 identical completion lines are completions of the same
    # offer received in two waves, tied to different receipts, so none is a duplicate.
    assert _kinds(t) == {"purchase": 138_953, "message_open": 57_725, "offer_redeemed": 33_579}
    assert t.touchpoints["campaign_id"].notna().sum() == 57_725 + 33_579
    assert t.customers["age"].max() < 118 and t.customers["age"].isna().sum() == 2_175
    assert t.touchpoints["ts"].min() >= t.customers["signup_ts"].max()
    buys = t.touchpoints[t.touchpoints["kind"] == "purchase"]
    assert buys["amount"].min() == pytest.approx(0.05) and buys["amount"].max() == pytest.approx(1062.28)
    redeemed = t.touchpoints.loc[t.touchpoints["kind"] == "offer_redeemed", "discount"].sum()
    assert buys["discount"].sum() == pytest.approx(redeemed)  # completions coincide with a transaction


@needs_shared
def test_online_retail_counts_and_first_country(imported):
    t = imported("online_retail")
    man = t.meta["manifest"]
    assert man["source_rows"] == {"online_retail_II_2009_2010.csv.gz": 525_461,
                                  "online_retail_2010_2011.csv.gz": 541_909}
    assert man["dropped"]["overlap_lines_from_2010_2011_file"] == 22_523
    assert man["dropped"]["overlap_invoices_from_2010_2011_file"] == 1_088
    assert man["invoices_joined"] == 28_816 + 25_900 - 1_088
    assert man["customers_2009_2010_file"] == 4_383 and man["customers_2010_2011_file"] == 4_372
    tp = t.touchpoints
    ts = tp["ts"]
    ids = tp["customer_id"].astype("str")
    # Customer counts per published file, recovered from the joined import.
    assert ids[ts < pd.Timestamp("2010-12-10", tz="Europe/London")].nunique() == 4_383
    assert ids[ts >= pd.Timestamp("2010-12-01", tz="Europe/London")].nunique() == 4_372
    assert t.n_customers == ids.nunique()
    assert tp["invoice"].is_unique
    assert (tp.loc[tp["kind"] == "return", "invoice"].str.startswith("C")).all()
    assert (tp.loc[tp["kind"] == "return", "amount"] < 0).all()
    assert (tp.loc[tp["kind"] == "purchase", "amount"] >= 0).all()
    # signup_ts is the first invoice and the country is the first invoice's.
    first = tp.groupby("customer_id", observed=True)["ts"].min()
    assert (t.customers.set_index("customer_id")["signup_ts"].reindex(first.index.astype("str")).to_numpy()
            == first.to_numpy()).all()
    assert set(t.customers.columns) - set(CUSTOMER_COLUMNS) == {"country"}


@needs_shared
def test_cdnow_counts(imported):
    t = imported("cdnow")
    assert t.n_customers == 23_570
    # 69,659 lines; validation drops the 255 that exactly repeat another line (same customer, day, CDs,
    # value), as the manifest records.
    assert len(t.touchpoints) == 69_659 - 255
    assert t.meta["manifest"]["dropped"]["exact_duplicate_touchpoints"] == 255
    assert t.touchpoints["ts"].min() == pd.Timestamp("1997-01-01", tz="UTC")
    assert t.touchpoints["ts"].max() == pd.Timestamp("1998-06-30", tz="UTC")
    assert t.customers["signup_ts"].max() < pd.Timestamp("1997-04-01", tz="UTC")  # the Q1 1997 cohort
    assert t.touchpoints["quantity"].min() >= 1


@needs_shared
def test_telco_labels_and_attributes(imported):
    t = imported("telco")
    assert t.n_customers == 7_043 and len(t.touchpoints) == 0
    assert int(t.labels["label"].sum()) == 1_869 and len(t.labels) == 7_043
    assert t.customers["TotalCharges"].isna().sum() == 11
    assert (t.customers.loc[t.customers["TotalCharges"].isna(), "tenure"] == 0).all()
    assert "Churn" not in t.customers.columns


@needs_shared
def test_bank_marketing_calls_and_leak(imported):
    t = imported("bank_marketing")
    assert t.n_customers == 45_211
    cur = t.outreach[t.outreach["campaign_id"] == "current"]
    assert len(cur) == 45_211 and (cur["channel"] == "call").all()
    assert cur["ts"].min() == pd.Timestamp("2008-05-05 12:00", tz="UTC")
    assert cur["ts"].max() < pd.Timestamp("2010-12-01", tz="UTC")
    assert cur["contacts_in_campaign"].min() == 1
    assert len(t.outreach) - len(cur) == int(t.customers["pdays"].notna().sum())
    red = t.touchpoints[t.touchpoints["kind"] == "offer_redeemed"]
    assert int((red["campaign_id"] == "current").sum()) == 5_289
    assert (red["channel"] == "call_center").all()
    assert "duration" not in t.customers.columns and "call_duration_s" not in t.touchpoints.columns
    assert "outreach.call_duration_s" in t.meta["manifest"]["leaks"]


@needs_shared
def test_online_shoppers_sessions(imported):
    t = imported("online_shoppers")
    assert t.n_customers == 12_330 and len(t.labels) == 12_330
    assert int(t.labels["label"].sum()) == 1_908
    assert "purchase" not in _kinds(t)  # Revenue is the label, never a touchpoint
    assert _kinds(t)["visit"] == 12_330
    assert {"PageValues", "VisitorType", "Weekend", "TrafficType"} <= set(t.customers.columns)
    assert "Revenue" not in t.customers.columns
    assert int(t.customers["Weekend"].sum()) == 2_868
    assert t.touchpoints["ts"].max() < pd.Timestamp(t.meta["manifest"]["cutoff"])
    views = t.touchpoints[t.touchpoints["kind"] == "product_view"]
    assert views["pages"].max() == 705


@needs_shared
def test_ifood_campaigns(imported):
    t = imported("ifood_campaigns")
    assert t.n_customers == 2_240 and int(t.labels["label"].sum()) == 334
    assert t.customers["consent_call"].all()


# ------------------------------------------------------------------ made-up source folders (no data)


def _gz_csv(path: Path, df: pd.DataFrame, sep: str = ",") -> None:
    path.write_bytes(gzip.compress(df.to_csv(index=False, sep=sep).encode()))


def _gz_jsonl(path: Path, records: list[dict]) -> None:
    path.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in records).encode()))


def test_unknown_dataset_and_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        import_dataset("nope", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        import_dataset("telco", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match=r"Telco-Customer-Churn\.csv\.gz"):
        import_dataset("telco", tmp_path)


def test_telco_bad_label_names_column(tmp_path):
    df = pd.DataFrame({"customerID": ["a", "b"], "tenure": [0, 3], "TotalCharges": [" ", "9.5"],
                       "Churn": ["Yes", "Maybe"]})
    _gz_csv(tmp_path / "Telco-Customer-Churn.csv.gz", df)
    with pytest.raises(DataError, match=r"Churn.*1 row.*Maybe"):
        import_dataset("telco", tmp_path)
    df["Churn"] = ["Yes", "No"]
    _gz_csv(tmp_path / "Telco-Customer-Churn.csv.gz", df)
    t = import_dataset("telco", tmp_path / "Telco-Customer-Churn.csv.gz")  # a file in the folder is accepted
    assert t.labels["label"].tolist() == [1, 0] and np.isnan(t.customers["TotalCharges"].iloc[0])


def test_online_retail_overlap_first_country_and_returns(tmp_path):
    cols2 = ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID",
             "Country"]
    a = pd.DataFrame([
        ["100", "X", "d", 2, "2010-06-01 10:00:00", 1.5, 1.0, "France"],
        ["100", "Y", "d", 1, "2010-06-01 10:00:00", 4.0, 1.0, "France"],
        ["101", "X", "d", 1, "2010-06-02 10:00:00", 1.0, None, "United Kingdom"],
        ["102", "X", "d", 3, "2010-12-02 10:00:00", 1.0, 2.0, "Spain"],
    ], columns=cols2)
    b = pd.DataFrame([
        ["102", "X", "d", 3, "2010-12-02 10:00:00", 1.0, 2.0, "Spain"],  # the overlap days, again
        ["103", "X", "d", 5, "2011-07-01 09:30:00", 2.0, 1.0, "Germany"],
        ["C104", "X", "d", -1, "2011-07-02 09:30:00", 2.0, 1.0, "Germany"],
    ], columns=["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
                "Country"])
    _gz_csv(tmp_path / "online_retail_II_2009_2010.csv.gz", a)
    _gz_csv(tmp_path / "online_retail_2010_2011.csv.gz", b)
    t = import_dataset("online_retail", tmp_path)
    man = t.meta["manifest"]
    assert man["dropped"]["overlap_lines_from_2010_2011_file"] == 1
    assert man["dropped"]["lines_without_customer_id"] == 1
    cus = t.customers.set_index("customer_id")
    assert cus.loc["1", "country"] == "France"  # the first invoice's country, not the latest (Germany)
    assert cus.loc["1", "signup_ts"] == pd.Timestamp("2010-06-01 09:00", tz="UTC")  # BST = UTC+1
    tp = t.touchpoints.set_index("invoice")
    assert tp.loc["100", "amount"] == pytest.approx(7.0) and tp.loc["100", "lines"] == 2
    assert tp.loc["C104", "kind"] == "return" and tp.loc["C104", "amount"] == pytest.approx(-2.0)
    assert len(t.touchpoints) == 4 and tp.loc["102", "ts"] == pd.Timestamp("2010-12-02 10:00", tz="UTC")


def test_bank_year_rollover_and_previous_campaign(tmp_path):
    row = dict(age=30, job="admin.", marital="single", education="tertiary", default="no", balance=10,
               housing="no", loan="no", contact="cellular", duration=100, campaign=2, previous=0,
               poutcome="unknown", pdays=-1, y="no")
    rows = [dict(row, day=20, month="nov"), dict(row, day=31, month="dec", y="yes"),
            dict(row, day=5, month="jan", pdays=10, previous=1, poutcome="success")]
    _gz_csv(tmp_path / "bank-full.csv.gz", pd.DataFrame(rows), sep=";")
    t = import_dataset("bank_marketing", tmp_path)
    cur = t.outreach[t.outreach["campaign_id"] == "current"].set_index(
        t.outreach.loc[t.outreach["campaign_id"] == "current", "customer_id"].astype("str"))
    assert cur.loc["bank00003", "ts"] == pd.Timestamp("2009-01-05 12:00", tz="UTC")
    prev = t.outreach[t.outreach["campaign_id"] == "previous"]
    assert prev["ts"].tolist() == [pd.Timestamp("2008-12-26 12:00", tz="UTC")]
    red = t.touchpoints.sort_values("ts")
    assert red["campaign_id"].tolist() == ["previous", "current"]
    assert red["customer_id"].astype("str").tolist() == ["bank00003", "bank00002"]
    assert "duration" not in t.customers.columns


def _mini_starbucks(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    port = [dict(reward=2, channels=["email", "web"], difficulty=10, duration=7.0, offer_type="discount",
                 id="o1"),
            dict(reward=0, channels=["email", "mobile"], difficulty=0, duration=3.0,
                 offer_type="informational", id="o2")]
    prof = [dict(gender="F", age=40, id="p1", became_member_on="20170101", income=50000.0),
            dict(gender=None, age=118, id="p2", became_member_on="20180101", income=None)]
    tr = [dict(person="p1", event="offer received", value={"offer id": "o1"}, time=0),
          dict(person="p2", event="offer received", value={"offer id": "o2"}, time=0),
          dict(person="p1", event="offer received", value={"offer id": "o1"}, time=168),
          dict(person="p1", event="offer viewed", value={"offer id": "o1"}, time=170),
          dict(person="p1", event="transaction", value={"amount": 25.0}, time=174),
          dict(person="p1", event="offer completed", value={"offer_id": "o1", "reward": 2}, time=174),
          dict(person="p1", event="offer completed", value={"offer_id": "o1", "reward": 2}, time=174)]
    _gz_jsonl(folder / "portfolio.jsonl.gz", port)
    _gz_jsonl(folder / "profile.jsonl.gz", prof)
    _gz_jsonl(folder / "transcript.jsonl.gz", tr)


def test_starbucks_ties_reactions_to_receipts_and_holdout(tmp_path):
    _mini_starbucks(tmp_path)
    t = import_dataset("starbucks", tmp_path)
    tp = t.touchpoints
    assert pd.isna(t.customers.set_index("customer_id").loc["p2", "age"])
    red = tp[tp["kind"] == "offer_redeemed"]
    # Two identical completion lines = the offer received at hours 0 and 168, both completed at once.
    assert sorted(red["campaign_id"]) == ["wave_0h", "wave_168h"]
    assert set(red["offer_id"]) == {"discount_2_10_7d"}
    buy = tp[tp["kind"] == "purchase"].iloc[0]
    assert buy["amount"] == 25.0 and buy["discount"] == 4.0 and buy["channel"] == "store"
    assert tp.loc[tp["kind"] == "message_open", "campaign_id"].tolist() == ["wave_168h"]
    assert tp["ts"].min() == pd.Timestamp("2018-08-01", tz="UTC") + pd.Timedelta(hours=170)
    h = import_dataset("starbucks", tmp_path, holdout=True)
    ho = h.outreach[h.outreach["holdout"]]
    assert ho["customer_id"].astype("str").tolist() == ["p2"] and ho["channel"].isna().all()
    assert ho["propensity"].tolist() == [0.25]
    assert (h.outreach.loc[~h.outreach["holdout"], "propensity"] == 0.075).all()


def test_import_round_trips_through_a_data_folder(tmp_path):
    _mini_starbucks(tmp_path / "src")
    t = import_dataset("starbucks", tmp_path / "src")
    write_tables(t, tmp_path / "out")
    back = read_tables(tmp_path / "out")
    assert len(back.touchpoints) == len(t.touchpoints) and len(back.outreach) == len(t.outreach)
    assert back.meta["manifest"]["dataset"] == "starbucks"
