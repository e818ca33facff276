"""Importers: real public datasets turned into the touchpoint data contract.

Each importer reads one dataset folder as published under ``../shared/datasets/<name>`` (see the README
there), keeps what the dataset really has, documents what it lacks, and returns validated
:class:`~features.contract.schema.Tables` whose ``meta["manifest"]`` records the dataset, the decisions taken
(time base, dropped rows, leaks) and the counts. ``import_dataset(name, source)`` is the entry point;
``IMPORTERS`` maps each name to its function. Nothing here writes files: the CLI does that.

Decisions shared by every importer:

- Timestamps are UTC. Where a dataset has no calendar date (starbucks hours, bank_marketing day+month,
  online_shoppers month) the time base is a documented constant and is written into the manifest.
- Consent is not recorded in any of these datasets. A consent flag is set only where the data show the
  company used that channel for every customer (starbucks email + push, bank_marketing / ifood calls);
  everything else is ``False`` ("no known consent"), so a policy never contacts on a guess.
- Static attributes (extra ``customers`` columns) only hold information known at the customer's first
  record; a value from a later record would leak the future into every cutoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract.schema import (
    CHANNELS,
    CONSENT_COLUMNS,
    DIRECTIONS,
    KINDS,
    OUTREACH_CHANNELS,
    TOUCHPOINT_REQUIRED,
    UTC_NS,
    Tables,
)
from features.contract.validate import DataError, validate_tables

# starbucks: the transcript counts hours from the start of a 30-day test and has no calendar date. Every
# membership date (last 2018-07-26) lies before this base, so sign-up always precedes activity.
STARBUCKS_BASE = pd.Timestamp("2018-08-01T00:00:00Z")
# The 10 offers were assigned uniformly at random to whoever received one in a wave (see the manifest's
# check); a receipt in a wave happened with probability ~0.75, independently of the customer's attributes.
STARBUCKS_OFFER_SHARE = 0.1
STARBUCKS_RECEIPT_RATE = 0.75
# bank_marketing: rows are in time order from May 2008; the year is counted up at each month rollover.
BANK_FIRST_YEAR = 2008
# online_shoppers: one (unnamed) year of sessions; the month is all we have.
SHOPPERS_YEAR = 2017

MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}

# What each dataset really has and what it lacks (also in the manifest and the README).
DATASET_NOTES: dict[str, dict[str, list[str]]] = {
    "starbucks": {
        "has": [
            "17,000 rewards-app members with gender, age, income and membership date",
            "offer receipts (outreach: 10 offers, bogo / discount / informational, full channel set)",
            "offer views (message_open) and completions (offer_redeemed with the reward as discount)",
            "transactions (purchase with amount; discount = rewards earned by that transaction)",
            "random offer assignment: propensity 0.1 per offer given a receipt",
        ],
        "lacks": [
            "calendar dates (hours since test start; base date in the manifest)",
            "which channel actually delivered an offer (email is in every offer's set: used as the channel)",
            "web/app browsing, service contacts, products bought, cancellations",
            "consent records (email and push assumed: every member received offers by email and mobile)",
        ],
    },
    "online_retail": {
        "has": [
            "invoices 2009-12-01..2011-12-09 of customers with an id (purchase per invoice with amount, "
            "quantity, lines; C-invoices as return with negative amount)",
            "country of the customer's first invoice (static attribute)",
        ],
        "lacks": [
            "lines without a customer id (dropped, counted in the manifest)",
            "product-level touchpoints (invoices are aggregated; stock codes are not kept)",
            "sign-up dates (signup_ts = first invoice, left-censored at 2009-12-01)",
            "browsing, outreach, service contacts, consent",
        ],
    },
    "cdnow": {
        "has": ["purchases 1997-01-01..1998-06-30 (day precision) with dollar amount and number of CDs",
                "signup_ts = first purchase (the cohort of Q1 1997 first-time buyers)"],
        "lacks": ["time of day, products, demographics, browsing, outreach, consent"],
    },
    "telco": {
        "has": ["7,043 customers with demographics, services, contract and billing attributes",
                "a churn label per customer (labels table)"],
        "lacks": ["any touchpoint or date (a single snapshot; tenure in months is an attribute)",
                  "outreach, consent"],
    },
    "bank_marketing": {
        "has": [
            "45,211 clients with demographics and banking attributes",
            "the current campaign's last call (outreach, channel call, with the number of contacts)",
            "the previous campaign's last call where pdays >= 0 (outreach, dated pdays before)",
            "responses: subscription (y = yes) and previous-campaign success as offer_redeemed",
        ],
        "lacks": [
            "a year (inferred from the time order of the rows, starting May 2008)",
            "time of day and the dates of all but the last call of a campaign",
            "logging propensities (calls were not randomised)",
            "call duration as a usable feature: it is known only after the call and leaks the outcome; kept "
            "only as outreach column call_duration_s (never read by the feature builders)",
        ],
    },
    "online_shoppers": {
        "has": [
            "12,330 sessions, each a customer: a visit with session totals, page_view (account pages, "
            "topic 'account'), page_view (informational pages, topic 'product_info') and product_view "
            "touchpoints with pages and duration_s",
            "session fields as attributes (PageValues, BounceRates, ExitRates, SpecialDay, codes, "
            "VisitorType, Weekend)",
            "Revenue as labels (label = purchase in the session), not as a purchase touchpoint",
        ],
        "lacks": [
            "customer ids and histories (one session per customer)",
            "year and day (month only: ts = 1st of the month, 12:00 UTC, of a nominal year)",
            "the order of pages inside a session, labels for the integer codes, outreach, consent",
        ],
    },
    "ifood_campaigns": {
        "has": [
            "2,240 customers with demographics, enrolment date (signup_ts), two-year spend per category, "
            "purchase counts per channel and the acceptance of five earlier campaigns (attributes)",
            "the response to the sixth (phone) campaign as labels (label = accepted the offer)",
        ],
        "lacks": [
            "any event log (counts and totals only, no dates besides enrolment), so no touchpoints",
            "campaign dates and channels (the last one was by phone: consent_call)",
            "the data are a curated sample that mocks real customers",
        ],
    },
}


# ------------------------------------------------------------------------------------------- helpers


def _folder(source: str | Path, dataset: str, files: tuple[str, ...]) -> Path:
    """The dataset folder (a file inside it is accepted too), checked to hold every file needed."""
    path = Path(source)
    if path.is_file():
        path = path.parent
    if not path.is_dir():
        raise FileNotFoundError(f"{dataset}: source folder {path} does not exist "
                                f"(expected e.g. ../shared/datasets/{dataset})")
    missing = [f for f in files if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{dataset}: {path} lacks {', '.join(missing)} (expected the dataset folder "
                                f"holding {', '.join(files)})")
    return path


def _require(df: pd.DataFrame, file: str, columns: tuple[str, ...] | list[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        found = ", ".join(map(str, df.columns[:20]))
        raise DataError(file, missing[0] if len(missing) == 1 else None,
                        f"source column{'s' if len(missing) > 1 else ''} {', '.join(missing)} missing "
                        f"(found: {found})")


def _customers(ids: pd.Series, signup: pd.Series | None = None, consent: tuple[str, ...] = (),
               attributes: pd.DataFrame | None = None) -> pd.DataFrame:
    """A customers table: ids, sign-up (NaT when unknown), consent flags, then static attributes."""
    n = len(ids)
    cols: dict[str, object] = {"customer_id": ids.astype("str").array}
    cols["signup_ts"] = (pd.Series(pd.NaT, index=range(n), dtype=UTC_NS).array if signup is None
                         else pd.Series(signup).astype(UTC_NS).array)
    for channel, col in CONSENT_COLUMNS.items():
        cols[col] = np.full(n, channel in consent)
    out = pd.DataFrame(cols)
    if attributes is not None:
        for c in attributes.columns:
            out[c] = attributes[c].to_numpy()
    return out


def _empty_touchpoints() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=UTC_NS if c == "ts" else "str") for c in TOUCHPOINT_REQUIRED})


def _vocab(value: str, vocab: tuple[str, ...], n: int) -> pd.Categorical:
    """A constant column as a categorical over the contract's vocabulary (cheap to build and validate)."""
    return pd.Categorical.from_codes(np.full(n, vocab.index(value), dtype=np.int8),
                                     categories=pd.Index(vocab, dtype="str"))


def _col(value, n: int):
    """Column data that keeps pandas dtypes (tz-aware times, arrow strings) instead of object arrays."""
    if isinstance(value, pd.Series | pd.Index):
        return value.array
    if np.isscalar(value) or value is None:
        return np.full(n, value, dtype=object if value is None or isinstance(value, str) else None)
    return value


def _touch(customer_id, ts, channel: str, kind: str, direction: str = "inbound", **extra) -> pd.DataFrame:
    """Touchpoint rows sharing one channel/kind/direction."""
    n = len(customer_id)
    frame = {"customer_id": _col(customer_id, n), "ts": _col(ts, n), "channel": _vocab(channel, CHANNELS, n),
             "kind": _vocab(kind, KINDS, n), "direction": _vocab(direction, DIRECTIONS, n)}
    frame.update({k: _col(v, n) for k, v in extra.items()})
    return pd.DataFrame(frame)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else _empty_touchpoints()


def _finish(name: str, folder: Path, tables: Tables, manifest: dict, start: float) -> Tables:
    """Validate the imported tables and attach the manifest (dataset, decisions, counts)."""
    valid, report = validate_tables(tables, source=f"import {name} from {folder}")
    counts = {t: len(getattr(valid, t)) for t in ("customers", "touchpoints", "outreach", "labels")
              if getattr(valid, t) is not None}
    if len(valid.touchpoints):
        counts["touchpoints_by_kind"] = {
            str(k): int(v) for k, v in valid.touchpoints["kind"].value_counts(sort=False).items() if v}
    if report.duplicate_touchpoints_dropped:
        dropped = manifest.setdefault("dropped", {})
        dropped["exact_duplicate_touchpoints"] = report.duplicate_touchpoints_dropped
    full = {"dataset": name, "source": str(folder), "kind": "import", "counts": counts, **manifest,
            **DATASET_NOTES[name]}
    meta = {**valid.meta, "manifest": full, "import_seconds": round(time.perf_counter() - start, 3)}
    return valid.with_(meta=meta)


# ----------------------------------------------------------------------------------------- starbucks


def _read_jsonl(path: Path) -> pd.DataFrame:
    """JSON lines (gzip allowed) via pyarrow: nested objects become dotted columns; blank lines skipped."""
    import pyarrow.json as pj

    try:
        return pj.read_json(path).flatten().to_pandas()
    except Exception as exc:  # pyarrow raises ArrowInvalid (and others) for unreadable input
        raise DataError(path.name, None, f"not readable as JSON lines ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:200]})") from None


def _offer_name(row: pd.Series) -> str:
    return f"{row['offer_type']}_{int(row['reward'])}_{int(row['difficulty'])}_{int(row['duration'])}d"


def import_starbucks(source: str | Path, *, holdout: bool = False) -> Tables:
    """Starbucks rewards-app offers: receipts → outreach, views/completions/transactions → touchpoints.

    Offers received become outreach rows on channel ``email`` (every offer's channel set includes email;
    the full set, with mobile meaning app push, is kept in column ``channels``), with offer names
    ``<type>_<reward>_<min spend>_<days>d`` and campaign ``wave_<hour>h``. Views are ``message_open``,
    completions ``offer_redeemed`` (discount = reward), both on ``email`` and tied to the latest receipt of
    the same offer; transactions are ``purchase`` (channel ``store``) with ``amount`` and, as ``discount``,
    the rewards of offers completed by that transaction. Hours count from ``STARBUCKS_BASE``; age 118
    (the placeholder for an empty profile) becomes missing.

    Propensity: in each wave about 75 % of members received exactly one offer, the 10 offers in equal
    shares and independent of gender, age and income (checked; shares in the manifest), so the
    probability of an offer given a receipt is 0.1. With ``holdout=True`` the members who received no
    offer in a wave are added as holdout rows (no contact, propensity 0.25) and offer rows get the
    unconditional propensity 0.075, so ``no_contact`` can be evaluated too.
    """
    start = time.perf_counter()
    files = ("portfolio.jsonl.gz", "profile.jsonl.gz", "transcript.jsonl.gz")
    folder = _folder(source, "starbucks", files)
    port = _read_jsonl(folder / files[0])
    prof = _read_jsonl(folder / files[1])
    tr = _read_jsonl(folder / files[2])
    _require(port, files[0], ("id", "offer_type", "reward", "difficulty", "duration", "channels"))
    _require(prof, files[1], ("id", "gender", "age", "became_member_on", "income"))
    _require(tr, files[2], ("person", "event", "time"))

    # Customers: membership date is the sign-up; age 118 marks an empty profile, not a real age.
    prof = prof.reset_index(drop=True)
    signup = pd.to_datetime(prof["became_member_on"].astype("str"), format="%Y%m%d", errors="coerce",
                            utc=True)
    bad = signup.isna() & prof["became_member_on"].notna()
    if bad.any():
        raise DataError(files[1], "became_member_on", "a date that is not YYYYMMDD",
                        prof.loc[bad, "became_member_on"].head().tolist(), int(bad.sum()))
    age = prof["age"].astype("float64").where(prof["age"] != 118)
    attrs = pd.DataFrame({"gender": prof["gender"].astype("str"), "age": age,
                          "income": prof["income"].astype("float64")})
    customers = _customers(prof["id"], signup, ("email", "push"), attrs)

    # Offer catalogue as published.
    port = port.assign(name=port.apply(_offer_name, axis=1),
                       channels=port["channels"].map(lambda c: ",".join(c)))
    info = port.set_index("id")
    hours = tr["time"].to_numpy()
    ts = STARBUCKS_BASE + pd.to_timedelta(hours, unit="h")
    event = tr["event"].astype("str").to_numpy()
    # Receipts and views spell the key "offer id", completions "offer_id".
    offer_col = np.where(pd.notna(tr.get("value.offer id")), tr.get("value.offer id"),
                         tr.get("value.offer_id"))
    known = {"offer received", "offer viewed", "offer completed", "transaction"}
    unknown = ~np.isin(event, list(known))
    if unknown.any():
        raise DataError(files[2], "event", "an unknown event", pd.unique(event[unknown])[:5].tolist(),
                        int(unknown.sum()), allowed=sorted(known))
    is_offer_event = event != "transaction"
    bad_offer = is_offer_event & ~pd.Series(offer_col).isin(info.index).to_numpy()
    if bad_offer.any():
        raise DataError(files[2], "value", "an offer id missing from the portfolio",
                        pd.unique(offer_col[bad_offer])[:5].tolist(), int(bad_offer.sum()))

    ev = pd.DataFrame({"person": tr["person"].astype("str").array, "hour": hours, "ts": ts,
                       "portfolio_id": offer_col})

    # Outreach: one row per receipt.
    rec = ev[event == "offer received"].reset_index(drop=True)
    o = info.loc[rec["portfolio_id"]]
    rec_share = rec.groupby("hour").size() / len(customers)
    shares = pd.crosstab(rec["hour"], rec["portfolio_id"], normalize="index")
    offer_prop = round(STARBUCKS_OFFER_SHARE * (STARBUCKS_RECEIPT_RATE if holdout else 1.0), 6)
    outreach = pd.DataFrame({
        "customer_id": rec["person"].array, "ts": rec["ts"].array,
        "channel": _vocab("email", OUTREACH_CHANNELS, len(rec)),
        "offer": o["name"].to_numpy(), "campaign_id": [f"wave_{h}h" for h in rec["hour"]],
        "propensity": offer_prop, "holdout": False,
        "channels": o["channels"].to_numpy(), "portfolio_id": rec["portfolio_id"].to_numpy(),
        "offer_type": o["offer_type"].to_numpy(), "reward": o["reward"].to_numpy(dtype="float64"),
        "difficulty": o["difficulty"].to_numpy(dtype="float64"),
        "duration_days": o["duration"].to_numpy(dtype="float64"),
    })
    if holdout:
        waves = np.sort(rec["hour"].unique())
        grid = pd.MultiIndex.from_product([waves, customers["customer_id"]], names=["hour", "person"])
        got = pd.MultiIndex.from_arrays([rec["hour"], rec["person"]])
        none = grid[~grid.isin(got)].to_frame(index=False)
        outreach = pd.concat([outreach, pd.DataFrame({
            "customer_id": none["person"].array,
            "ts": (STARBUCKS_BASE + pd.to_timedelta(none["hour"].to_numpy(), unit="h")),
            "channel": pd.Categorical.from_codes(np.full(len(none), -1, dtype=np.int8),
                                                 categories=pd.Index(OUTREACH_CHANNELS, dtype="str")),
            "offer": "none",
            "campaign_id": [f"wave_{h}h" for h in none["hour"]],
            "propensity": 1.0 - STARBUCKS_RECEIPT_RATE, "holdout": True,
        })], ignore_index=True)

    # Reactions tied to a receipt of the same offer by the same member (for campaign_id): the latest one
    # at or before the reaction. One transaction can complete the same offer received in two waves, which
    # the transcript records as identical lines: the k-th copy is tied to the k-th latest receipt, so
    # these real double completions are not taken for duplicates.
    receipts = rec[["person", "portfolio_id", "hour"]].rename(columns={"hour": "rec_hour"})

    def tie(rows: pd.DataFrame) -> np.ndarray:
        left = rows[["person", "portfolio_id", "hour"]].reset_index(drop=True)
        left["row"] = np.arange(len(left))
        left["copy"] = left.groupby(["person", "portfolio_id", "hour"], sort=False).cumcount()
        m = left.merge(receipts, on=["person", "portfolio_id"], how="inner")
        m = m[m["rec_hour"] <= m["hour"]].sort_values(["row", "rec_hour"], ascending=[True, False])
        m = m[m.groupby("row", sort=False).cumcount().to_numpy() == m["copy"].to_numpy()]
        camp = np.full(len(left), None, dtype=object)
        camp[m["row"].to_numpy()] = ("wave_" + m["rec_hour"].astype("str") + "h").to_numpy()
        return camp

    view = ev[event == "offer viewed"]
    done = ev[event == "offer completed"]
    reward = (tr["value.reward"].to_numpy(dtype="float64") if "value.reward" in tr.columns
              else np.full(len(tr), np.nan))
    done_reward = reward[event == "offer completed"]
    buy = ev[event == "transaction"]
    amount = tr["value.amount"].to_numpy(dtype="float64")[event == "transaction"]
    # Rewards earned by a transaction: completions share the transaction's member and hour.
    earned = pd.Series(done_reward, index=pd.MultiIndex.from_arrays([done["person"], done["hour"]])) \
        .groupby(level=[0, 1]).sum()
    disc = earned.reindex(pd.MultiIndex.from_arrays([buy["person"], buy["hour"]])).fillna(0.0).to_numpy()
    view_camp, done_camp = tie(view), tie(done)
    touch = _concat([
        _touch(view["person"], view["ts"], "email", "message_open",
               offer_id=info.loc[view["portfolio_id"], "name"].to_numpy(), campaign_id=view_camp,
               portfolio_id=view["portfolio_id"].to_numpy()),
        _touch(done["person"], done["ts"], "email", "offer_redeemed", discount=done_reward,
               offer_id=info.loc[done["portfolio_id"], "name"].to_numpy(), campaign_id=done_camp,
               portfolio_id=done["portfolio_id"].to_numpy()),
        _touch(buy["person"], buy["ts"], "store", "purchase", amount=amount, discount=disc),
    ])
    manifest = {
        "time_base": f"transcript hour 0 = {STARBUCKS_BASE.isoformat()} (the data have no calendar dates)",
        "propensity": (f"{offer_prop} per offer: offers assigned uniformly at random among the 10 "
                       + ("(unconditional: receipt rate 0.75 x 0.1; holdout rows 0.25)" if holdout
                          else "given a receipt in the wave")),
        "check_random_assignment": {
            "receipt_share_per_wave": {str(k): round(float(v), 4) for k, v in rec_share.items()},
            "offer_share_min": round(float(shares.to_numpy().min()), 4),
            "offer_share_max": round(float(shares.to_numpy().max()), 4),
        },
        "source_rows": {"profile": len(prof), "transcript": len(tr), "portfolio": len(port),
                        **{f"transcript_{e.replace(' ', '_')}": int((event == e).sum())
                           for e in sorted(known)}},
        "offers": {r["name"]: {"portfolio_id": r["id"], "channels": r["channels"]}
                   for _, r in port.iterrows()},
        "consent": "email and push assumed for every member; sms and call unknown (False)",
        "last_receipt": (STARBUCKS_BASE + pd.Timedelta(hours=int(rec["hour"].max()))).isoformat(),
        "untied_reactions": int(pd.isna(view_camp).sum() + pd.isna(done_camp).sum()),
    }
    tables = Tables(customers=customers, touchpoints=touch, outreach=outreach)
    return _finish("starbucks", folder, tables, manifest, start)


# ------------------------------------------------------------------------------------- online_retail


RETAIL_FILES = ("online_retail_II_2009_2010.csv.gz", "online_retail_2010_2011.csv.gz")
RETAIL_OVERLAP = ("2010-12-01", "2010-12-10")  # [start, end): days held by both files


def _read_retail(path: Path, invoice: str, price: str, customer: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.csv as pc

    wanted = (invoice, "Quantity", "InvoiceDate", price, customer, "Country")
    header = pd.read_csv(path, nrows=0).columns
    _require(pd.DataFrame(columns=header), path.name, wanted)
    types = {invoice: pa.string(), customer: pa.float64(), "InvoiceDate": pa.string(), "Country": pa.string()}
    try:
        tbl = pc.read_csv(path, convert_options=pc.ConvertOptions(column_types=types,
                                                                 include_columns=list(wanted)))
    except pa.ArrowInvalid as exc:
        detail = " ".join(str(exc).split())[:200]
        raise DataError(path.name, None, f"not readable as CSV ({detail})") from None
    df = tbl.to_pandas()
    return df.rename(columns={invoice: "invoice", price: "price", customer: "customer"})


def import_online_retail(source: str | Path) -> Tables:
    """Online Retail II (2009-2010) + Online Retail (2010-2011): one purchase or return per invoice.

    The days 2010-12-01..2010-12-09 are in both files (the same 1,088 invoices); they are dropped from the
    2010-2011 file. Lines without a customer id are dropped and counted. Each invoice becomes one
    touchpoint on channel ``web``: ``purchase`` (amount = sum of quantity x price, ``quantity``,
    ``lines``, ``invoice``) or, for ``C`` invoices, ``return`` (negative amount and quantity). Invoice
    times are UK local time, converted to UTC. ``signup_ts`` = the first invoice; the only static
    attribute is the country of the customer's FIRST invoice (a later record's country would leak).
    """
    start = time.perf_counter()
    folder = _folder(source, "online_retail", RETAIL_FILES)
    a = _read_retail(folder / RETAIL_FILES[0], "Invoice", "Price", "Customer ID")
    b = _read_retail(folder / RETAIL_FILES[1], "InvoiceNo", "UnitPrice", "CustomerID")
    lo, hi = RETAIL_OVERLAP
    in_b = (b["InvoiceDate"] >= lo) & (b["InvoiceDate"] < hi)
    overlap_invoices = int(b.loc[in_b, "invoice"].nunique())
    df = pd.concat([a, b[~in_b]], ignore_index=True)
    n_lines = len(df)
    no_id = df["customer"].isna().to_numpy()
    invoices_all = int(df["invoice"].nunique())
    df = df[~no_id]
    when = pd.to_datetime(df["InvoiceDate"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
    bad = when.isna()
    if bad.any():
        raise DataError("online_retail", "InvoiceDate", "an unparseable date",
                        df.loc[bad, "InvoiceDate"].head().tolist(), int(bad.sum()))
    df = df.assign(
        ts=when.dt.tz_localize("Europe/London", ambiguous="NaT", nonexistent="shift_forward"),
        value=df["Quantity"] * df["price"],
        customer=df["customer"].astype("int64").astype("str"),
    )
    if df["ts"].isna().any():  # an ambiguous hour at the autumn clock change: take the earlier reading
        amb = df["ts"].isna()
        df.loc[amb, "ts"] = when[amb].dt.tz_localize("Europe/London", ambiguous=True)
    df["ts"] = df["ts"].dt.tz_convert("UTC")
    g = df.groupby("invoice", sort=False).agg(
        customer_id=("customer", "first"), ts=("ts", "min"), amount=("value", "sum"),
        quantity=("Quantity", "sum"), lines=("Quantity", "size"), country=("Country", "first"),
        n_customers=("customer", "nunique"))
    if (g["n_customers"] > 1).any():
        raise DataError("online_retail", "Customer ID", "an invoice holding lines of several customers",
                        g.index[g["n_customers"] > 1][:5].tolist(), int((g["n_customers"] > 1).sum()))
    g = g.reset_index()
    g["amount"] = g["amount"].round(2)
    is_return = g["invoice"].str.startswith("C").to_numpy()
    touch = _touch(g["customer_id"], g["ts"], "web", "purchase", amount=g["amount"].to_numpy(),
                   quantity=g["quantity"].to_numpy(dtype="float64"), lines=g["lines"].to_numpy(dtype="int64"),
                   invoice=g["invoice"])
    touch["kind"] = pd.Categorical.from_codes(
        np.where(is_return, KINDS.index("return"), KINDS.index("purchase")).astype(np.int8),
        categories=pd.Index(KINDS, dtype="str"))
    # First invoice per customer (time, then invoice number) gives sign-up and the country.
    first = g.sort_values(["ts", "invoice"], kind="stable").drop_duplicates("customer_id")
    first = first.sort_values("customer_id", kind="stable").reset_index(drop=True)
    customers = _customers(first["customer_id"], first["ts"], (),
                           pd.DataFrame({"country": first["country"].astype("str")}))
    manifest = {
        "time_base": "InvoiceDate is UK local time (Europe/London), converted to UTC",
        "source_rows": {RETAIL_FILES[0]: len(a), RETAIL_FILES[1]: len(b)},
        "dropped": {"overlap_lines_from_2010_2011_file": int(in_b.sum()),
                    "overlap_invoices_from_2010_2011_file": overlap_invoices,
                    "lines_without_customer_id": int(no_id.sum()),
                    "invoices_without_customer_id": invoices_all - len(g)},
        "lines_joined": n_lines, "invoices_joined": invoices_all,
        "customers_2009_2010_file": int(pd.Series(a["customer"].dropna().unique()).size),
        "customers_2010_2011_file": int(pd.Series(b["customer"].dropna().unique()).size),
        "attributes": "country = Country of the customer's first invoice (information at first purchase)",
        "consent": "unknown (False)",
        "cutoff": "2011-09-01T00:00:00+00:00",
        "horizon_days": 90,
    }
    tables = Tables(customers=customers, touchpoints=touch)
    return _finish("online_retail", folder, tables, manifest, start)


# --------------------------------------------------------------------------------------------- cdnow


def import_cdnow(source: str | Path) -> Tables:
    """CDNOW master file: one purchase per line (day precision), amount in dollars, ``quantity`` = CDs.

    ``signup_ts`` is the customer's first purchase. The 255 lines that exactly repeat another line are
    kept by this importer and dropped by validation as exact duplicate touchpoints (counted in the
    manifest); whether they were real repeat orders cannot be told from the data.
    """
    start = time.perf_counter()
    file = "CDNOW_master.csv.gz"
    folder = _folder(source, "cdnow", (file,))
    df = pd.read_csv(folder / file, dtype={"customer_id": "str", "date": "str"})
    _require(df, file, ("customer_id", "date", "number_of_cds", "dollar_value"))
    ts = pd.to_datetime(df["date"], format="%Y%m%d", errors="coerce", utc=True)
    bad = ts.isna()
    if bad.any():
        raise DataError(file, "date", "a date that is not YYYYMMDD", df.loc[bad, "date"].head().tolist(),
                        int(bad.sum()))
    touch = _touch(df["customer_id"], ts, "web", "purchase",
                   amount=df["dollar_value"].to_numpy(dtype="float64"),
                   quantity=df["number_of_cds"].to_numpy(dtype="float64"))
    first = touch.groupby("customer_id", sort=True)["ts"].min()
    customers = _customers(pd.Series(first.index), pd.Series(first.to_numpy()))
    manifest = {
        "time_base": "purchase dates at 00:00 UTC (day precision; no time of day)",
        "source_rows": {file: len(df)},
        "consent": "unknown (False)",
        "cutoff": "1997-12-31T00:00:00+00:00",
        "horizon_days": 90,
    }
    return _finish("cdnow", folder, Tables(customers=customers, touchpoints=touch), manifest, start)


# --------------------------------------------------------------------------------------------- telco


def import_telco(source: str | Path) -> Tables:
    """IBM Telco churn: customers with every attribute, ``labels`` from ``Churn``, no touchpoints.

    ``TotalCharges`` is blank (a single space) for the 11 customers with tenure 0: it becomes missing.
    There are no dates, so ``signup_ts`` is missing and ``tenure`` (months) stays an attribute.
    """
    start = time.perf_counter()
    file = "Telco-Customer-Churn.csv.gz"
    folder = _folder(source, "telco", (file,))
    df = pd.read_csv(folder / file, dtype={"customerID": "str", "TotalCharges": "str"})
    _require(df, file, ("customerID", "Churn", "TotalCharges", "tenure"))
    churn = df["Churn"].astype("str").str.strip().str.lower()
    bad = ~churn.isin(["yes", "no"])
    if bad.any():
        raise DataError(file, "Churn", "a value other than Yes/No", df.loc[bad, "Churn"].head().tolist(),
                        int(bad.sum()))
    total = df["TotalCharges"].astype("str").str.strip()
    charges = pd.to_numeric(total.where(total != ""), errors="coerce")
    bad = charges.isna() & (total != "")
    if bad.any():
        raise DataError(file, "TotalCharges", "a value that is not a number",
                        df.loc[bad, "TotalCharges"].head().tolist(), int(bad.sum()))
    attrs = df.drop(columns=["customerID", "Churn"]).assign(TotalCharges=charges.astype("float64"))
    customers = _customers(df["customerID"], None, (), attrs)
    labels = pd.DataFrame({"customer_id": df["customerID"].to_numpy(),
                           "label": (churn == "yes").to_numpy().astype("int8")})
    manifest = {
        "time_base": "none: a single snapshot without dates",
        "source_rows": {file: len(df)},
        "label_meaning": "churn (Churn = Yes)",
        "blank_total_charges": int((total == "").sum()),
        "consent": "unknown (False)",
    }
    tables = Tables(customers=customers, touchpoints=_empty_touchpoints(), labels=labels)
    return _finish("telco", folder, tables, manifest, start)


# ------------------------------------------------------------------------------------ bank_marketing


def import_bank_marketing(source: str | Path) -> Tables:
    """UCI bank marketing (bank-full): clients, their campaign calls (outreach) and responses.

    The file has day and month but no year; rows are in time order from May 2008, so the year starts at
    ``BANK_FIRST_YEAR`` and goes up by one wherever the month number falls from one row to the next (twice:
    into 2009 and 2010). Calls are dated at 12:00 UTC (no time of day). Each client gets an outreach row
    for the current campaign's last call (channel ``call``, offer ``term_deposit``, ``contacts_in_campaign``
    = ``campaign``) and, where ``pdays >= 0``, one for the previous campaign's last call ``pdays`` days
    earlier (offer ``unknown``, ``contacts_in_campaign`` = ``previous``). A subscription (``y = yes``) is
    an ``offer_redeemed`` touchpoint on ``call_center`` at the call; a previous-campaign ``success`` one at
    that campaign's call. ``duration`` is known only after the call and leaks the outcome: it is kept only
    as outreach column ``call_duration_s`` (the feature builders never read it), never as an attribute.
    """
    start = time.perf_counter()
    file = "bank-full.csv.gz"
    folder = _folder(source, "bank_marketing", (file,))
    df = pd.read_csv(folder / file, sep=";")
    cols = ("age", "job", "marital", "education", "default", "balance", "housing", "loan", "contact", "day",
            "month", "duration", "campaign", "pdays", "previous", "poutcome", "y")
    _require(df, file, cols)
    month = df["month"].astype("str").str.strip().str.lower().map(MONTHS)
    if month.isna().any():
        bad = month.isna()
        raise DataError(file, "month", "an unknown month", df.loc[bad, "month"].head().tolist(),
                        int(bad.sum()), allowed=list(MONTHS))
    m = month.to_numpy(dtype=np.int64)
    year = BANK_FIRST_YEAR + np.concatenate([[0], np.cumsum(np.diff(m) < 0)])
    ts = pd.to_datetime(pd.DataFrame({"year": year, "month": m, "day": df["day"].to_numpy(), "hour": 12}),
                        errors="coerce", utc=True)
    if ts.isna().any():
        bad = ts.isna()
        raise DataError(file, "day", "a day that does not exist in its (inferred) month",
                        (df.loc[bad, "day"].astype(str) + " " + df.loc[bad, "month"]).head().tolist(),
                        int(bad.sum()))
    ids = pd.Series([f"bank{i:05d}" for i in range(1, len(df) + 1)])
    attrs = df[["age", "job", "marital", "education", "default", "balance", "housing", "loan", "contact",
                "pdays", "previous", "poutcome"]].rename(columns={"contact": "contact_type"})
    attrs = attrs.assign(pdays=attrs["pdays"].astype("float64").where(attrs["pdays"] >= 0))
    customers = _customers(ids, None, ("call",), attrs)
    current = pd.DataFrame({
        "customer_id": ids.array, "ts": ts.array, "channel": "call", "offer": "term_deposit",
        "campaign_id": "current", "propensity": np.nan, "holdout": False,
        "contacts_in_campaign": df["campaign"].to_numpy(dtype="int64"),
        "contact_type": df["contact"].astype("str").to_numpy(),
        "call_duration_s": df["duration"].to_numpy(dtype="float64"),
    })
    had = (df["pdays"] >= 0).to_numpy()
    prev_ts = ts[had] - pd.to_timedelta(df.loc[had, "pdays"].to_numpy(), unit="D")
    previous = pd.DataFrame({
        "customer_id": ids[had].array, "ts": prev_ts.array, "channel": "call", "offer": "unknown",
        "campaign_id": "previous", "propensity": np.nan, "holdout": False,
        "contacts_in_campaign": df.loc[had, "previous"].to_numpy(dtype="int64"),
        "contact_type": "unknown", "call_duration_s": np.nan,
    })
    outreach = pd.concat([previous, current], ignore_index=True)
    yes = (df["y"].astype("str").str.strip().str.lower() == "yes").to_numpy()
    won = had & (df["poutcome"].astype("str").str.strip().str.lower() == "success").to_numpy()
    touch = _concat([
        _touch(ids[yes], ts[yes], "call_center", "offer_redeemed", campaign_id="current",
               offer_id="term_deposit"),
        _touch(ids[won], (ts[won] - pd.to_timedelta(df.loc[won, "pdays"].to_numpy(), unit="D")),
               "call_center", "offer_redeemed", campaign_id="previous", offer_id="unknown"),
    ])
    manifest = {
        "time_base": (f"no year in the data: year {BANK_FIRST_YEAR} at the first row, +1 at each month "
                      "rollover in row order; calls at 12:00 UTC"),
        "year_rollover_rows": [int(i) + 2 for i in np.flatnonzero(np.diff(m) < 0)],  # 1-based data rows
        "source_rows": {file: len(df)},
        "leaks": {"outreach.call_duration_s": "call duration is known only after the call and leaks the "
                                              "outcome; do not use it as a feature"},
        "responses": {"subscribed": int(yes.sum()), "previous_success": int(won.sum())},
        "consent": "call for every client (all were called); email, sms, push unknown (False)",
    }
    tables = Tables(customers=customers, touchpoints=touch, outreach=outreach)
    return _finish("bank_marketing", folder, tables, manifest, start)


# ----------------------------------------------------------------------------------- online_shoppers


SHOPPER_MONTHS = {**MONTHS, "june": 6}
SHOPPER_ATTRIBUTES = ("PageValues", "BounceRates", "ExitRates", "SpecialDay", "OperatingSystems", "Browser",
                      "Region", "TrafficType", "VisitorType", "Weekend")
SHOPPER_CODES = ("OperatingSystems", "Browser", "Region", "TrafficType")


def import_online_shoppers(source: str | Path) -> Tables:
    """Online shoppers' purchasing intention: each session becomes a customer with its page views.

    Every session gives a ``visit`` touchpoint (web, inbound) with the session's total pages and seconds,
    and for each page type visited a breakdown touchpoint: Administrative → ``page_view`` (topic
    ``account``), Informational → ``page_view`` (topic ``product_info``: information content, the
    know moment), ProductRelated → ``product_view``, each with ``pages`` and ``duration_s``. The session
    has only a month: ``ts`` = the 1st of that month, 12:00 UTC, in the nominal year ``SHOPPERS_YEAR``.
    The other session fields are customer attributes (the integer codes as text: they have no order).
    ``Revenue`` becomes the ``labels`` table (label = purchase in the session), never a touchpoint, so
    features cannot see the answer.
    """
    start = time.perf_counter()
    file = "online_shoppers_intention.csv.gz"
    folder = _folder(source, "online_shoppers", (file,))
    df = pd.read_csv(folder / file)
    kinds = ("Administrative", "Informational", "ProductRelated")
    _require(df, file, (*kinds, *(f"{k}_Duration" for k in kinds), "Month", "Revenue", *SHOPPER_ATTRIBUTES))
    month = df["Month"].astype("str").str.strip().str.lower().map(SHOPPER_MONTHS)
    if month.isna().any():
        bad = month.isna()
        raise DataError(file, "Month", "an unknown month", df.loc[bad, "Month"].head().tolist(),
                        int(bad.sum()))
    ts = pd.DatetimeIndex(pd.to_datetime(pd.DataFrame(
        {"year": SHOPPERS_YEAR, "month": month.to_numpy(dtype=np.int64), "day": 1, "hour": 12}), utc=True))
    ids = np.array([f"s{i:05d}" for i in range(1, len(df) + 1)])
    pages = {k: df[k].to_numpy(dtype="float64") for k in kinds}
    secs = {k: df[f"{k}_Duration"].to_numpy(dtype="float64") for k in kinds}
    frames = [_touch(ids, ts, "web", "visit", pages=sum(pages.values()), duration_s=sum(secs.values()))]
    for k, kind, topic in (("Administrative", "page_view", "account"),
                           ("Informational", "page_view", "product_info"),
                           ("ProductRelated", "product_view", None)):
        on = (pages[k] > 0) | (secs[k] > 0)
        extra = {"topic": topic} if topic else {}
        frames.append(_touch(ids[on], ts[on], "web", kind, pages=pages[k][on], duration_s=secs[k][on],
                             **extra))
    touch = _concat(frames)
    attrs = df[list(SHOPPER_ATTRIBUTES)].copy()
    for c in SHOPPER_CODES:
        attrs[c] = attrs[c].astype("str")
    attrs["VisitorType"] = attrs["VisitorType"].astype("str")
    attrs["Weekend"] = _bool_column(df["Weekend"], file, "Weekend")
    customers = _customers(pd.Series(ids), None, (), attrs)
    revenue = _bool_column(df["Revenue"], file, "Revenue")
    labels = pd.DataFrame({"customer_id": ids, "label": revenue.astype("int8")})
    manifest = {
        "time_base": f"Month only: 1st of the month, 12:00 UTC, nominal year {SHOPPERS_YEAR}",
        "source_rows": {file: len(df)},
        "label_meaning": "purchase in the session (Revenue = TRUE); not a churn label",
        "consent": "unknown (False)",
        "cutoff": f"{SHOPPERS_YEAR + 1}-01-01T00:00:00+00:00",
    }
    tables = Tables(customers=customers, touchpoints=touch, labels=labels)
    return _finish("online_shoppers", folder, tables, manifest, start)


def _bool_column(s: pd.Series, file: str, column: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=bool)
    text = s.astype("str").str.strip().str.lower()
    bad = ~text.isin(["true", "false"])
    if bad.any():
        raise DataError(file, column, "a value other than TRUE/FALSE", s[bad].head().tolist(), int(bad.sum()))
    return (text == "true").to_numpy()


# ----------------------------------------------------------------------------------- ifood_campaigns


def import_ifood_campaigns(source: str | Path) -> Tables:
    """iFood CRM campaigns: customers with attributes, ``labels`` = response to the last campaign.

    The table holds counts and totals only (spend per category, purchases per channel, earlier campaign
    acceptances), so there are no touchpoints. ``Dt_Customer`` is the sign-up; the constant columns
    ``Z_CostContact`` and ``Z_Revenue`` (cost per contact, revenue per acceptance of the pilot) go to the
    manifest. Everyone was phoned in the last campaign: ``consent_call``. Note that the totals and
    ``Recency`` describe the time up to the campaign, so they are attributes at that one moment.
    """
    start = time.perf_counter()
    file = "ml_project1_data.csv.gz"
    folder = _folder(source, "ifood_campaigns", (file,))
    df = pd.read_csv(folder / file)
    _require(df, file, ("ID", "Dt_Customer", "Response", "Z_CostContact", "Z_Revenue"))
    signup = pd.to_datetime(df["Dt_Customer"], format="%Y-%m-%d", errors="coerce", utc=True)
    if signup.isna().any():
        bad = signup.isna()
        raise DataError(file, "Dt_Customer", "a date that is not YYYY-MM-DD",
                        df.loc[bad, "Dt_Customer"].head().tolist(), int(bad.sum()))
    attrs = df.drop(columns=["ID", "Dt_Customer", "Response", "Z_CostContact", "Z_Revenue"])
    ids = df["ID"].astype("int64").astype("str")
    customers = _customers(ids, signup, ("call",), attrs)
    labels = pd.DataFrame({"customer_id": ids.to_numpy(), "label": df["Response"].to_numpy()})
    manifest = {
        "time_base": "Dt_Customer (enrolment date) only; no event dates",
        "source_rows": {file: len(df)},
        "label_meaning": "accepted the offer of the sixth (pilot, phone) campaign (Response = 1)",
        "campaign_economics": {"cost_per_contact": sorted(df["Z_CostContact"].unique().tolist()),
                               "revenue_per_acceptance": sorted(df["Z_Revenue"].unique().tolist())},
        "consent": "call for every customer (all were phoned in the pilot); others unknown (False)",
    }
    tables = Tables(customers=customers, touchpoints=_empty_touchpoints(), labels=labels)
    return _finish("ifood_campaigns", folder, tables, manifest, start)


# ---------------------------------------------------------------------------------------- entry point


IMPORTERS: dict[str, Callable[..., Tables]] = {
    "starbucks": import_starbucks,
    "online_retail": import_online_retail,
    "cdnow": import_cdnow,
    "telco": import_telco,
    "bank_marketing": import_bank_marketing,
    "online_shoppers": import_online_shoppers,
    "ifood_campaigns": import_ifood_campaigns,
}


def import_dataset(name: str, source: str | Path, **options) -> Tables:
    """Import the dataset ``name`` from its folder ``source`` into validated tables (nothing is written).

    ``options`` go to the importer (only ``starbucks`` has one: ``holdout``). The manifest in
    ``meta["manifest"]`` records what the dataset has and lacks, the decisions taken and the counts.
    """
    if name not in IMPORTERS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(IMPORTERS)}")
    return IMPORTERS[name](Path(source), **options)
