"""CDNOW master file: every purchase of the customers who first bought at CDNOW in the first quarter of 1997.

Source: ``CDNOW_master.csv.gz`` (the Fader & Hardie master file, as distributed with the ``lifetimes``
package, re-written as CSV with every value kept as text), one purchase per line.

Mapping: each line becomes a ``purchase`` touchpoint on channel ``web`` at 00:00 UTC of its day, with
``amount`` = ``dollar_value`` and ``quantity`` = ``number_of_cds``. ``signup_ts`` is the customer's first
purchase (the cohort is defined by it). There are no attributes, outreach or labels.

Quirks: dates have day precision only. Some lines exactly repeat another line; this importer keeps them
and validation drops them as exact duplicate touchpoints (counted in the manifest): whether they were
real repeat orders cannot be told from the data. Customer ids keep their leading zeros.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from features.contract.errors import DataError
from features.contract.schema import Tables
from features.sources.importers.frames import customers_frame, finish_import, touch
from features.sources.importers.source_files import read_csv_file

# What the dataset really has and what it lacks (written into the manifest).
NOTES: dict[str, list[str]] = {
    "has": ["purchases 1997-01-01..1998-06-30 (day precision) with dollar amount and number of CDs",
            "signup_ts = first purchase (the cohort of Q1 1997 first-time buyers)"],
    "lacks": ["time of day, products, demographics, browsing, outreach, consent"],
}


def import_cdnow(source: str | Path) -> Tables:
    """CDNOW master file: one purchase per line (day precision), amount in dollars, ``quantity`` = CDs."""
    start = time.perf_counter()
    file = "CDNOW_master.csv.gz"
    folder, df = read_csv_file(source, "cdnow", file, ("customer_id", "date", "number_of_cds", "dollar_value"),
                               dtype={"customer_id": "str", "date": "str"})
    ts = pd.to_datetime(df["date"], format="%Y%m%d", errors="coerce", utc=True)
    bad = ts.isna()
    if bad.any():
        raise DataError(file, "date", "a date that is not YYYYMMDD", df.loc[bad, "date"].head().tolist(),
                        int(bad.sum()))
    purchases = touch(df["customer_id"], ts, "web", "purchase",
                      amount=df["dollar_value"].to_numpy(dtype="float64"),
                      quantity=df["number_of_cds"].to_numpy(dtype="float64"))
    first = purchases.groupby("customer_id", sort=True)["ts"].min()
    customers = customers_frame(pd.Series(first.index), pd.Series(first.to_numpy()))
    manifest = {
        "time_base": "purchase dates at 00:00 UTC (day precision; no time of day)",
        "source_rows": {file: len(df)},
        "consent": "unknown (False)",
        "cutoff": "1997-12-31T00:00:00+00:00",
        "horizon_days": 90,
    }
    tables = Tables(customers=customers, touchpoints=purchases)
    return finish_import("cdnow", folder, tables, manifest, NOTES, start)
