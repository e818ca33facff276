"""Online shoppers' purchasing intention (UCI): web sessions of one year, each from a different user.

Source: ``online_shoppers_intention.csv.gz`` (Sakar et al. 2018, the corrected UCI version without
missing values), one row per session: pages and seconds per page type, Google-Analytics rates, month,
technical codes, visitor type, weekend flag and ``Revenue`` (the session ended in a purchase).

Mapping: each session becomes a customer ``sNNNNN`` (row number). Every session gives a ``visit``
touchpoint (web, inbound) with the session's total ``pages`` and ``duration_s``, and for each page type
visited a breakdown touchpoint: Administrative → ``page_view`` (topic ``account``), Informational →
``page_view`` (topic ``product_info``: information content, the know moment), ProductRelated →
``product_view``, each with ``pages`` and ``duration_s``. The other session fields are customer
attributes (the integer codes as text: they have no order). ``Revenue`` becomes the ``labels`` table
(label = purchase in the session), never a touchpoint, so features cannot see the answer.

Quirks: a session has only a month (``June`` is spelt out), so ``ts`` = the 1st of that month, 12:00 UTC,
in the nominal year ``SHOPPERS_YEAR``, and the manifest's cutoff is the start of the next year. There are
no customer histories (one session per customer), no page order inside a session and no labels for the
integer codes.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract.errors import DataError
from features.contract.schema import Tables
from features.sources.importers.frames import concat_touch, customers_frame, finish_import, touch
from features.sources.importers.source_files import MONTHS, bool_column, read_csv_file

# One (unnamed) year of sessions; the month is all we have.
SHOPPERS_YEAR = 2017
SHOPPER_MONTHS = {**MONTHS, "june": 6}
SHOPPER_ATTRIBUTES = ("PageValues", "BounceRates", "ExitRates", "SpecialDay", "OperatingSystems", "Browser",
                      "Region", "TrafficType", "VisitorType", "Weekend")
SHOPPER_CODES = ("OperatingSystems", "Browser", "Region", "TrafficType")
PAGE_TYPES = ("Administrative", "Informational", "ProductRelated")
# Page type → touchpoint kind and topic (None: no topic).
PAGE_TOUCHPOINTS = (("Administrative", "page_view", "account"),
                    ("Informational", "page_view", "product_info"),
                    ("ProductRelated", "product_view", None))

# What the dataset really has and what it lacks (written into the manifest).
NOTES: dict[str, list[str]] = {
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
}


def _session_times(df: pd.DataFrame, file: str) -> pd.DatetimeIndex:
    """Each session's time: the 1st of its month, 12:00 UTC, in the nominal year."""
    month = df["Month"].astype("str").str.strip().str.lower().map(SHOPPER_MONTHS)
    if month.isna().any():
        bad = month.isna()
        raise DataError(file, "Month", "an unknown month", df.loc[bad, "Month"].head().tolist(),
                        int(bad.sum()))
    return pd.DatetimeIndex(pd.to_datetime(pd.DataFrame(
        {"year": SHOPPERS_YEAR, "month": month.to_numpy(dtype=np.int64), "day": 1, "hour": 12}), utc=True))


def _page_touchpoints(df: pd.DataFrame, ids: np.ndarray, ts: pd.DatetimeIndex) -> pd.DataFrame:
    """A visit per session with its totals, then a touchpoint per page type the session visited."""
    pages = {k: df[k].to_numpy(dtype="float64") for k in PAGE_TYPES}
    secs = {k: df[f"{k}_Duration"].to_numpy(dtype="float64") for k in PAGE_TYPES}
    frames = [touch(ids, ts, "web", "visit", pages=sum(pages.values()), duration_s=sum(secs.values()))]
    for k, kind, topic in PAGE_TOUCHPOINTS:
        on = (pages[k] > 0) | (secs[k] > 0)
        extra = {"topic": topic} if topic else {}
        frames.append(touch(ids[on], ts[on], "web", kind, pages=pages[k][on], duration_s=secs[k][on],
                            **extra))
    return concat_touch(frames)


def import_online_shoppers(source: str | Path) -> Tables:
    """Online shoppers' purchasing intention: each session becomes a customer with its page views."""
    start = time.perf_counter()
    file = "online_shoppers_intention.csv.gz"
    columns = (*PAGE_TYPES, *(f"{k}_Duration" for k in PAGE_TYPES), "Month", "Revenue", *SHOPPER_ATTRIBUTES)
    folder, df = read_csv_file(source, "online_shoppers", file, columns)
    ts = _session_times(df, file)
    ids = np.array([f"s{i:05d}" for i in range(1, len(df) + 1)])
    pages = _page_touchpoints(df, ids, ts)
    attrs = df[list(SHOPPER_ATTRIBUTES)].copy()
    for c in SHOPPER_CODES:
        attrs[c] = attrs[c].astype("str")
    attrs["VisitorType"] = attrs["VisitorType"].astype("str")
    attrs["Weekend"] = bool_column(df["Weekend"], file, "Weekend")
    customers = customers_frame(pd.Series(ids), None, (), attrs)
    revenue = bool_column(df["Revenue"], file, "Revenue")
    labels = pd.DataFrame({"customer_id": ids, "label": revenue.astype("int8")})
    manifest = {
        "time_base": f"Month only: 1st of the month, 12:00 UTC, nominal year {SHOPPERS_YEAR}",
        "source_rows": {file: len(df)},
        "label_meaning": "purchase in the session (Revenue = TRUE); not a churn label",
        "consent": "unknown (False)",
        "cutoff": f"{SHOPPERS_YEAR + 1}-01-01T00:00:00+00:00",
    }
    tables = Tables(customers=customers, touchpoints=pages, labels=labels)
    return finish_import("online_shoppers", folder, tables, manifest, NOTES, start)
