"""Online Retail II (2009-2010) and Online Retail (2010-2011): invoices of a UK online gift-ware retailer.

Source: two files, ``online_retail_II_2009_2010.csv.gz`` (sheet "Year 2009-2010" of UCI's Online Retail
II) and ``online_retail_2010_2011.csv.gz`` (UCI's older Online Retail, which covers the second year), one
row per product line of an invoice. Their column names differ and are read as published (``Invoice`` =
``InvoiceNo``, ``Price`` = ``UnitPrice``, ``Customer ID`` = ``CustomerID``).

Mapping: each invoice becomes one touchpoint on channel ``web``: ``purchase`` (amount = sum of quantity x
price, ``quantity``, ``lines``, ``invoice``) or, for ``C`` (cancellation) invoices, ``return`` (negative
amount and quantity). ``signup_ts`` = the customer's first invoice; the only static attribute is the
country of the customer's FIRST invoice (a later record's country would leak the future).

Quirks: the first days of December 2010 (``RETAIL_OVERLAP``) are in both files, as the same invoices;
they are dropped from the 2010-2011 file. Lines without a customer id are dropped and counted. Invoice
times are UK local time, converted to UTC; an hour made ambiguous by the autumn clock change takes the
earlier reading. Sign-up is left-censored at the start of the first file.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract.errors import DataError
from features.contract.schema import KINDS, Tables
from features.sources.importers.frames import customers_frame, finish_import, touch
from features.sources.importers.source_files import dataset_folder, require_columns

RETAIL_FILES = ("online_retail_II_2009_2010.csv.gz", "online_retail_2010_2011.csv.gz")
RETAIL_OVERLAP = ("2010-12-01", "2010-12-10")  # [start, end): days held by both files

# What the dataset really has and what it lacks (written into the manifest).
NOTES: dict[str, list[str]] = {
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
}


def _read_retail(path: Path, invoice: str, price: str, customer: str) -> pd.DataFrame:
    """One file's lines with its own column names mapped to ``invoice``, ``price`` and ``customer``."""
    import pyarrow as pa
    import pyarrow.csv as pc

    wanted = (invoice, "Quantity", "InvoiceDate", price, customer, "Country")
    header = pd.read_csv(path, nrows=0).columns
    require_columns(pd.DataFrame(columns=header), path.name, wanted)
    types = {invoice: pa.string(), customer: pa.float64(), "InvoiceDate": pa.string(), "Country": pa.string()}
    try:
        tbl = pc.read_csv(path, convert_options=pc.ConvertOptions(column_types=types,
                                                                 include_columns=list(wanted)))
    except pa.ArrowInvalid as exc:
        detail = " ".join(str(exc).split())[:200]
        raise DataError(path.name, None, f"not readable as CSV ({detail})") from None
    df = tbl.to_pandas()
    return df.rename(columns={invoice: "invoice", price: "price", customer: "customer"})


def _with_utc_times(df: pd.DataFrame) -> pd.DataFrame:
    """Lines with ``ts`` (UK local invoice time in UTC), ``value`` (quantity x price) and text customer ids."""
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
    return df


def _invoices(df: pd.DataFrame) -> pd.DataFrame:
    """One row per invoice: customer, first line's time, amount, quantity, lines and country."""
    g = df.groupby("invoice", sort=False).agg(
        customer_id=("customer", "first"), ts=("ts", "min"), amount=("value", "sum"),
        quantity=("Quantity", "sum"), lines=("Quantity", "size"), country=("Country", "first"),
        n_customers=("customer", "nunique"))
    if (g["n_customers"] > 1).any():
        raise DataError("online_retail", "Customer ID", "an invoice holding lines of several customers",
                        g.index[g["n_customers"] > 1][:5].tolist(), int((g["n_customers"] > 1).sum()))
    g = g.reset_index()
    g["amount"] = g["amount"].round(2)
    return g


def import_online_retail(source: str | Path) -> Tables:
    """Online Retail II (2009-2010) + Online Retail (2010-2011): one purchase or return per invoice."""
    start = time.perf_counter()
    folder = dataset_folder(source, "online_retail", RETAIL_FILES)
    a = _read_retail(folder / RETAIL_FILES[0], "Invoice", "Price", "Customer ID")
    b = _read_retail(folder / RETAIL_FILES[1], "InvoiceNo", "UnitPrice", "CustomerID")
    lo, hi = RETAIL_OVERLAP
    in_b = (b["InvoiceDate"] >= lo) & (b["InvoiceDate"] < hi)
    overlap_invoices = int(b.loc[in_b, "invoice"].nunique())
    df = pd.concat([a, b[~in_b]], ignore_index=True)
    n_lines = len(df)
    no_id = df["customer"].isna().to_numpy()
    invoices_all = int(df["invoice"].nunique())
    g = _invoices(_with_utc_times(df[~no_id]))
    is_return = g["invoice"].str.startswith("C").to_numpy()
    invoices = touch(g["customer_id"], g["ts"], "web", "purchase", amount=g["amount"].to_numpy(),
                     quantity=g["quantity"].to_numpy(dtype="float64"),
                     lines=g["lines"].to_numpy(dtype="int64"), invoice=g["invoice"])
    invoices["kind"] = pd.Categorical.from_codes(
        np.where(is_return, KINDS.index("return"), KINDS.index("purchase")).astype(np.int8),
        categories=pd.Index(KINDS, dtype="str"))
    # First invoice per customer (time, then invoice number) gives sign-up and the country.
    first = g.sort_values(["ts", "invoice"], kind="stable").drop_duplicates("customer_id")
    first = first.sort_values("customer_id", kind="stable").reset_index(drop=True)
    customers = customers_frame(first["customer_id"], first["ts"], (),
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
    tables = Tables(customers=customers, touchpoints=invoices)
    return finish_import("online_retail", folder, tables, manifest, NOTES, start)
