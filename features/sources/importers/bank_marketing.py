"""UCI bank marketing (bank-full): a bank's phone campaigns for term deposits, one row per client called.

Source: ``bank-full.csv.gz`` (Moro, Cortez & Rita 2014; semicolon-separated), one row per client, with the
client's attributes, the current campaign's last call, the previous campaign's outcome and whether the
client subscribed (``y``).

Mapping: each client gets an id ``bankNNNNN`` (row number) and the attributes (``contact`` renamed
``contact_type``; ``pdays`` missing where the client was never called before). The current campaign's
last call becomes an outreach row (channel ``call``, offer ``term_deposit``, ``contacts_in_campaign`` =
``campaign``) and, where ``pdays >= 0``, the previous campaign's last call another one ``pdays`` days
earlier (offer ``unknown``, ``contacts_in_campaign`` = ``previous``). A subscription (``y = yes``) is an
``offer_redeemed`` touchpoint on ``call_center`` at the call, a previous-campaign ``success`` one at that
campaign's call. Every client was called: ``consent_call``.

Quirks: the file has day and month but no year. Rows are in time order from May 2008, so the year starts
at ``BANK_FIRST_YEAR`` and goes up by one wherever the month number falls from one row to the next; the
rows where it does are in the manifest. Calls are dated at 12:00 UTC (no time of day). ``duration`` is
known only after the call and leaks the outcome: it is kept only as outreach column ``call_duration_s``
(the feature builders never read it), never as an attribute. Calls were not randomised, so outreach has
no propensity.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract.errors import DataError
from features.contract.schema import Tables
from features.sources.importers.frames import concat_touch, customers_frame, finish_import, touch
from features.sources.importers.source_files import MONTHS, read_csv_file

# Rows are in time order from May 2008; the year is counted up at each month rollover.
BANK_FIRST_YEAR = 2008
COLUMNS = ("age", "job", "marital", "education", "default", "balance", "housing", "loan", "contact", "day",
           "month", "duration", "campaign", "pdays", "previous", "poutcome", "y")
ATTRIBUTES = ["age", "job", "marital", "education", "default", "balance", "housing", "loan", "contact", "pdays",
              "previous", "poutcome"]

# What the dataset really has and what it lacks (written into the manifest).
NOTES: dict[str, list[str]] = {
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
}


def _call_dates(df: pd.DataFrame, file: str) -> tuple[pd.Series, np.ndarray]:
    """The last call's time per row (year inferred from the row order) and its month number."""
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
    return ts, m


def _outreach(df: pd.DataFrame, ids: pd.Series, ts: pd.Series, had: np.ndarray) -> pd.DataFrame:
    """The previous campaign's last call (where there was one), then the current campaign's."""
    current = pd.DataFrame({
        "customer_id": ids.array, "ts": ts.array, "channel": "call", "offer": "term_deposit",
        "campaign_id": "current", "propensity": np.nan, "holdout": False,
        "contacts_in_campaign": df["campaign"].to_numpy(dtype="int64"),
        "contact_type": df["contact"].astype("str").to_numpy(),
        "call_duration_s": df["duration"].to_numpy(dtype="float64"),
    })
    prev_ts = ts[had] - pd.to_timedelta(df.loc[had, "pdays"].to_numpy(), unit="D")
    previous = pd.DataFrame({
        "customer_id": ids[had].array, "ts": prev_ts.array, "channel": "call", "offer": "unknown",
        "campaign_id": "previous", "propensity": np.nan, "holdout": False,
        "contacts_in_campaign": df.loc[had, "previous"].to_numpy(dtype="int64"),
        "contact_type": "unknown", "call_duration_s": np.nan,
    })
    return pd.concat([previous, current], ignore_index=True)


def import_bank_marketing(source: str | Path) -> Tables:
    """UCI bank marketing (bank-full): clients, their campaign calls (outreach) and responses."""
    start = time.perf_counter()
    file = "bank-full.csv.gz"
    folder, df = read_csv_file(source, "bank_marketing", file, COLUMNS, sep=";")
    ts, m = _call_dates(df, file)
    ids = pd.Series([f"bank{i:05d}" for i in range(1, len(df) + 1)])
    attrs = df[ATTRIBUTES].rename(columns={"contact": "contact_type"})
    attrs = attrs.assign(pdays=attrs["pdays"].astype("float64").where(attrs["pdays"] >= 0))
    customers = customers_frame(ids, None, ("call",), attrs)
    had = (df["pdays"] >= 0).to_numpy()
    outreach = _outreach(df, ids, ts, had)
    yes = (df["y"].astype("str").str.strip().str.lower() == "yes").to_numpy()
    won = had & (df["poutcome"].astype("str").str.strip().str.lower() == "success").to_numpy()
    responses = concat_touch([
        touch(ids[yes], ts[yes], "call_center", "offer_redeemed", campaign_id="current",
              offer_id="term_deposit"),
        touch(ids[won], (ts[won] - pd.to_timedelta(df.loc[won, "pdays"].to_numpy(), unit="D")),
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
    tables = Tables(customers=customers, touchpoints=responses, outreach=outreach)
    return finish_import("bank_marketing", folder, tables, manifest, NOTES, start)
