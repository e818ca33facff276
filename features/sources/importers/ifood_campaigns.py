"""iFood CRM campaigns: customers with two years of totals and the response to a sixth, phoned campaign.

Source: ``ml_project1_data.csv.gz`` (iFood's hiring case for CRM analysts, the table that circulates as
``marketing_campaign.csv``), one row per customer. The case says the data are a curated sample that mocks
real customers.

Mapping: ``ID`` is the customer id and ``Dt_Customer`` (enrolment date) the sign-up; ``Response``
(accepted the sixth campaign's offer) becomes the ``labels`` table; every other column (demographics,
spend per category, purchases per channel, acceptance of the five earlier campaigns, ``Recency``) is a
customer attribute. The constant columns ``Z_CostContact`` and ``Z_Revenue`` (cost per contact, revenue
per acceptance of the pilot) go to the manifest as campaign economics. Everyone was phoned in the last
campaign: ``consent_call``.

Quirks: the table holds counts and totals only, with no dates besides enrolment, so there are no
touchpoints. The totals and ``Recency`` describe the time up to the campaign, so they are attributes at
that one moment.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from features.contract.errors import DataError
from features.contract.schema import Tables
from features.sources.importers.frames import customers_frame, empty_touchpoints, finish_import
from features.sources.importers.source_files import read_csv_file

# What the dataset really has and what it lacks (written into the manifest).
NOTES: dict[str, list[str]] = {
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
}


def import_ifood_campaigns(source: str | Path) -> Tables:
    """iFood CRM campaigns: customers with attributes, ``labels`` = response to the last campaign."""
    start = time.perf_counter()
    file = "ml_project1_data.csv.gz"
    folder, df = read_csv_file(source, "ifood_campaigns", file,
                               ("ID", "Dt_Customer", "Response", "Z_CostContact", "Z_Revenue"))
    signup = pd.to_datetime(df["Dt_Customer"], format="%Y-%m-%d", errors="coerce", utc=True)
    if signup.isna().any():
        bad = signup.isna()
        raise DataError(file, "Dt_Customer", "a date that is not YYYY-MM-DD",
                        df.loc[bad, "Dt_Customer"].head().tolist(), int(bad.sum()))
    attrs = df.drop(columns=["ID", "Dt_Customer", "Response", "Z_CostContact", "Z_Revenue"])
    ids = df["ID"].astype("int64").astype("str")
    customers = customers_frame(ids, signup, ("call",), attrs)
    labels = pd.DataFrame({"customer_id": ids.to_numpy(), "label": df["Response"].to_numpy()})
    manifest = {
        "time_base": "Dt_Customer (enrolment date) only; no event dates",
        "source_rows": {file: len(df)},
        "label_meaning": "accepted the offer of the sixth (pilot, phone) campaign (Response = 1)",
        "campaign_economics": {"cost_per_contact": sorted(df["Z_CostContact"].unique().tolist()),
                               "revenue_per_acceptance": sorted(df["Z_Revenue"].unique().tolist())},
        "consent": "call for every customer (all were phoned in the pilot); others unknown (False)",
    }
    tables = Tables(customers=customers, touchpoints=empty_touchpoints(), labels=labels)
    return finish_import("ifood_campaigns", folder, tables, manifest, NOTES, start)
