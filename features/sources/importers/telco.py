"""IBM Telco customer churn: a snapshot of customers with their services, billing and a churn label.

Source: ``Telco-Customer-Churn.csv.gz`` (IBM's sample data, the file Kaggle distributes as
``WA_Fn-UseC_-Telco-Customer-Churn.csv``), one row per customer.

Mapping: every column but ``customerID`` and ``Churn`` becomes a customer attribute; ``Churn`` (Yes/No)
becomes the ``labels`` table (label 1 = churned). There are no touchpoints.

Quirks: ``TotalCharges`` is text and blank (a single space) for customers with tenure 0; it becomes a
number, missing where blank. There are no dates, so ``signup_ts`` is missing and ``tenure`` (months) stays
an attribute. Consent is not recorded: every flag is ``False``.
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
    "has": ["7,043 customers with demographics, services, contract and billing attributes",
            "a churn label per customer (labels table)"],
    "lacks": ["any touchpoint or date (a single snapshot; tenure in months is an attribute)",
              "outreach, consent"],
}


def import_telco(source: str | Path) -> Tables:
    """IBM Telco churn: customers with every attribute, ``labels`` from ``Churn``, no touchpoints."""
    start = time.perf_counter()
    file = "Telco-Customer-Churn.csv.gz"
    folder, df = read_csv_file(source, "telco", file, ("customerID", "Churn", "TotalCharges", "tenure"),
                               dtype={"customerID": "str", "TotalCharges": "str"})
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
    customers = customers_frame(df["customerID"], None, (), attrs)
    labels = pd.DataFrame({"customer_id": df["customerID"].to_numpy(),
                           "label": (churn == "yes").to_numpy().astype("int8")})
    manifest = {
        "time_base": "none: a single snapshot without dates",
        "source_rows": {file: len(df)},
        "label_meaning": "churn (Churn = Yes)",
        "blank_total_charges": int((total == "").sum()),
        "consent": "unknown (False)",
    }
    tables = Tables(customers=customers, touchpoints=empty_touchpoints(), labels=labels)
    return finish_import("telco", folder, tables, manifest, NOTES, start)
