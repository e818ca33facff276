"""The contract as one flat frame: customers, touchpoints and outreach as rows of a single table.

A registered MLflow model takes one table, while the contract has three. The flat frame holds them together,
one row per record:

* a row with a ``kind`` is a touchpoint (``customer_id, ts, channel, kind, direction`` and the optional
  touchpoint columns), so a touchpoints table as read (``pd.read_parquet``, :func:`features.sources.io.read_tables`)
  is already a flat frame;
* a row without a ``kind`` but with ``outreach.*`` values is a past outreach contact at ``ts``
  (``outreach.channel``, ``outreach.offer``, ``outreach.campaign_id``, ``outreach.propensity``,
  ``outreach.holdout``), which the frequency caps need;
* customer-level values ride along as ``customer.<column>`` (``customer.signup_ts``, ``customer.consent_email``,
  static attributes such as ``customer.region``) on any row of the customer, the first non-missing value
  winning; a customer with no history is one row with only ``customer_id`` and its ``customer.*`` values.

Every column but ``customer_id, ts, channel, kind, direction`` is optional: missing consents count as no
consent, missing attributes as unknown. :func:`flat_frame` builds the frame from tables (dtypes as read:
UTC timestamps, categories), :func:`tables_from_flat` takes it apart again (unvalidated: validation is
:func:`features.contract.validate.validate_tables`'s), and :func:`flat_columns` declares its columns, from
which the registry writes the model signature.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from features.contract.schema import (
    CONSENT_COLUMNS,
    CUSTOMER_COLUMNS,
    OUTREACH_OPTIONAL,
    OUTREACH_REQUIRED,
    TOUCH_CATEGORIES,
    TOUCHPOINT_OPTIONAL,
    TOUCHPOINT_REQUIRED,
    Tables,
)

CUSTOMER_PREFIX = "customer."
OUTREACH_PREFIX = "outreach."
# The outreach columns of a flat frame (customer_id and ts are shared with touchpoints).
OUTREACH_FIELDS: tuple[str, ...] = tuple(
    c for c in (*OUTREACH_REQUIRED, *OUTREACH_OPTIONAL) if c not in ("customer_id", "ts")
)
NUMERIC_TOUCH: tuple[str, ...] = ("duration_s", "pages", "amount", "discount", "sentiment")


@dataclass(frozen=True)
class FlatColumn:
    """One column of the flat frame: its name, value type and whether the frame must have it.

    ``kind`` is ``string``, ``double``, ``boolean`` or ``any``. ``any`` marks columns whose values come in more
    than one valid form: ids and vocabularies (text, or categories as parquet gives them back), timestamps
    (timezone-aware, naive = UTC, or ISO 8601 text) and customer attributes (whatever the data holds).
    """

    name: str
    kind: str
    required: bool = False


def flat_columns(attributes: Mapping[str, str] | None = None) -> list[FlatColumn]:
    """The flat frame's columns; ``attributes`` maps the static attributes a model reads to their kind
    (``categorical``, ``bool``, ``numeric``, ``datetime``: what the static feature family found at fit)."""
    cols = [FlatColumn(c, "any", True) for c in TOUCHPOINT_REQUIRED]
    for c in TOUCHPOINT_OPTIONAL:
        kind = "double" if c in NUMERIC_TOUCH else "any" if c in TOUCH_CATEGORIES else "string"
        cols.append(FlatColumn(c, kind))
    cols.append(FlatColumn(f"{CUSTOMER_PREFIX}signup_ts", "any"))
    cols += [FlatColumn(f"{CUSTOMER_PREFIX}{c}", "boolean") for c in CONSENT_COLUMNS.values()]
    for name, kind in (attributes or {}).items():
        cols.append(FlatColumn(f"{CUSTOMER_PREFIX}{name}", "boolean" if kind == "bool" else "any"))
    kinds = {"channel": "any", "propensity": "double", "holdout": "boolean"}  # channel: a vocabulary
    cols += [FlatColumn(f"{OUTREACH_PREFIX}{c}", kinds.get(c, "string")) for c in OUTREACH_FIELDS]
    return cols


def _prefixed(df: pd.DataFrame, prefix: str, keep: tuple[str, ...] = ("customer_id", "ts")) -> pd.DataFrame:
    return df.rename(columns={c: f"{prefix}{c}" for c in df.columns if c not in keep})


def flat_frame(tables: Tables) -> pd.DataFrame:
    """``tables`` as one flat frame: touchpoints, then outreach rows, then one row per customer with neither;
    each row carries its customer's ``customer.*`` values. Dtypes stay as in the tables."""
    tp = tables.touchpoints.assign(customer_id=tables.touchpoints["customer_id"].astype(str))
    parts = [tp]
    seen = set(tp["customer_id"])
    if tables.outreach is not None and len(tables.outreach):
        out = _prefixed(tables.outreach.assign(customer_id=tables.outreach["customer_id"].astype(str)), OUTREACH_PREFIX)
        parts.append(out)
        seen |= set(out["customer_id"])
    customers = tables.customers.assign(customer_id=tables.customers["customer_id"].astype(str))
    alone = customers.loc[~customers["customer_id"].isin(seen), ["customer_id"]]
    if len(alone):
        parts.append(alone)
    rows = pd.concat([p for p in parts if len(p.columns)], ignore_index=True, sort=False)
    return rows.merge(_prefixed(customers, CUSTOMER_PREFIX, ("customer_id",)), on="customer_id", how="left")


def _present(values: pd.Series) -> pd.Series:
    """Whether each value is given (not missing, not empty text)."""
    text = values.astype("string")
    return values.notna() & text.fillna("").str.strip().ne("")


def _customers(frame: pd.DataFrame, attributes: tuple[str, ...]) -> pd.DataFrame:
    """One row per customer (first appearance order), first non-missing ``customer.*`` value per column."""
    cols = [c for c in frame.columns if c.startswith(CUSTOMER_PREFIX)]
    ids = pd.unique(frame["customer_id"])
    if cols:
        firsts = frame[["customer_id", *cols]].groupby("customer_id", sort=False, dropna=False).first()
        customers = firsts.reindex(ids).rename(columns=lambda c: c.removeprefix(CUSTOMER_PREFIX)).reset_index()
    else:
        customers = pd.DataFrame({"customer_id": ids})
    if "signup_ts" not in customers:
        customers["signup_ts"] = pd.NaT
    for c in CONSENT_COLUMNS.values():
        if c not in customers:
            customers[c] = False
    for attr in attributes:
        if attr not in customers:
            customers[attr] = None
    order = [*CUSTOMER_COLUMNS, *(c for c in customers.columns if c not in CUSTOMER_COLUMNS)]
    return customers[order]


def _outreach_rows(frame: pd.DataFrame, out_cols: list[str], none: pd.Series) -> pd.Series:
    """Rows that record an outreach contact: any ``outreach.*`` value given (``holdout`` only when true)."""
    holdout = f"{OUTREACH_PREFIX}holdout"
    given = [_present(frame[c]) for c in out_cols if c != holdout]
    if holdout in frame:
        flag = frame[holdout].astype("string").str.strip().str.lower().isin(["true", "1", "yes"])
        given.append(flag.fillna(False).astype(bool))
    return pd.concat(given, axis=1).any(axis=1) if given else none


def _check_rows(frame: pd.DataFrame, is_touch: pd.Series, is_outreach: pd.Series, source: str) -> None:
    both = is_touch & is_outreach
    if both.any():
        first = int(both.to_numpy().argmax())
        raise ValueError(
            f"{source}: {int(both.sum()):,} rows have both a touchpoint kind and outreach.* values (first at row "
            f"{first}); a row is either a touchpoint or an outreach contact"
        )


def tables_from_flat(frame: pd.DataFrame, attributes=(), *, source: str = "model input") -> Tables:
    """The contract tables in a flat frame (not yet validated).

    ``attributes``: customer attributes the caller reads; those the frame lacks are added as missing.
    """
    frame = pd.DataFrame(frame)
    missing = [c for c in ("customer_id", "ts") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{source}: missing column(s) {', '.join(missing)}; a flat frame has customer_id, ts, channel, kind, "
            "direction per touchpoint, optional touchpoint columns, customer.* and outreach.* columns"
        )
    frame = frame.reset_index(drop=True).assign(customer_id=frame["customer_id"].astype(str).to_numpy())
    out_cols = [c for c in frame.columns if c.startswith(OUTREACH_PREFIX)]
    none = pd.Series(False, index=frame.index)
    is_touch = _present(frame["kind"]) if "kind" in frame else none
    is_outreach = _outreach_rows(frame, out_cols, none)
    _check_rows(frame, is_touch, is_outreach, source)
    customers = _customers(frame, tuple(attributes))
    own = [c for c in frame.columns if not c.startswith((CUSTOMER_PREFIX, OUTREACH_PREFIX))]
    touchpoints = frame.loc[is_touch.to_numpy(), own].reset_index(drop=True)
    if touchpoints.empty:  # customers only: an empty log still has the contract's columns
        for c in TOUCHPOINT_REQUIRED:
            if c not in touchpoints:
                touchpoints[c] = pd.Series(dtype=object)
    outreach = None
    if is_outreach.any():
        outreach = frame.loc[is_outreach.to_numpy(), ["customer_id", "ts", *out_cols]].reset_index(drop=True)
        outreach = outreach.rename(columns=lambda c: c.removeprefix(OUTREACH_PREFIX))
    return Tables(customers=customers, touchpoints=touchpoints, outreach=outreach, meta={"source": source})
