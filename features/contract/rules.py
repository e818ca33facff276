"""Value rules on normalised tables, declared as pandera schemas, and their failures as DataErrors.

The converters fix each column's type; these rules then check what holds across values: ranges,
uniqueness, missing values and dtypes. :func:`run_checks` reports the first failure as a
:class:`~features.contract.errors.DataError` and mentions the others.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa

from features.contract.errors import MAX_EXAMPLES, DataError, raise_or_collect, reported
from features.contract.schema import (
    CHANNELS,
    CONSENT_COLUMNS,
    DIRECTIONS,
    KINDS,
    OUTREACH_CHANNELS,
    REFERRERS,
    UTC_NS,
)
from features.contract.values import OUTREACH_RANGES, TOUCHPOINT_RANGES, ValueRange


def _vocab_dtype(vocab: tuple[str, ...]) -> pd.CategoricalDtype:
    return pd.CategoricalDtype(pd.Index(vocab, dtype="str"))


def customer_checks(ids: pd.Index) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "customer_id": pa.Column("str", unique=True, nullable=False, report_duplicates="exclude_first"),
            "signup_ts": pa.Column(UTC_NS, nullable=True),
            **{c: pa.Column(bool, nullable=False) for c in CONSENT_COLUMNS.values()},
        },
        name="customers",
    )


def _range_check(rng: ValueRange) -> pa.Check:
    """The pandera check of a declared value range (features.contract.values), named by its problem."""
    if rng.low is not None and rng.high is not None:
        return pa.Check.in_range(rng.low, rng.high, include_min=rng.include_low, error=rng.problem)
    if rng.low is not None:
        return (pa.Check.ge if rng.include_low else pa.Check.gt)(rng.low, error=rng.problem)
    return pa.Check.le(rng.high, error=rng.problem)


def _ranged(column: str, ranges: dict[str, ValueRange], **options) -> pa.Column:
    return pa.Column(float, _range_check(ranges[column]), **options)


def touchpoint_checks(ids: pd.Index) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            # Built as a Categorical over ids above; a dtype check here would rebuild the id index.
            "customer_id": pa.Column(nullable=False),
            "ts": pa.Column(UTC_NS, nullable=False),
            "channel": pa.Column(_vocab_dtype(CHANNELS), nullable=False),
            "kind": pa.Column(_vocab_dtype(KINDS), nullable=False),
            "direction": pa.Column(_vocab_dtype(DIRECTIONS), nullable=False),
            "referrer": pa.Column(_vocab_dtype(REFERRERS), nullable=True, required=False),
            **{c: _ranged(c, TOUCHPOINT_RANGES, nullable=True, required=False) for c in TOUCHPOINT_RANGES},
            "amount": pa.Column(float, nullable=True, required=False),
        },
        name="touchpoints",
    )


def outreach_checks(ids: pd.Index) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "customer_id": pa.Column(nullable=False),
            "ts": pa.Column(UTC_NS, nullable=False),
            "channel": pa.Column(_vocab_dtype(OUTREACH_CHANNELS), nullable=True),
            "propensity": _ranged("propensity", OUTREACH_RANGES, nullable=True),
            "holdout": pa.Column(bool, nullable=False),
        },
        name="outreach",
    )


def label_checks(ids: pd.Index) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "customer_id": pa.Column(
                "str", pa.Check.isin(ids, error="a customer id missing from the customers table"),
                nullable=False,
            ),
            "label": pa.Column(np.int8, pa.Check.isin([0, 1], error="a label other than 0 or 1")),
            "cutoff": pa.Column(UTC_NS, nullable=False, required=False),
        },
        name="labels",
    )


def run_checks(schema: pa.DataFrameSchema, df: pd.DataFrame, table: str) -> None:
    """Apply a pandera schema and turn each failing column and check into a DataError (raised at the first,
    or all recorded while problems are being collected; a column already reported is not repeated)."""
    try:
        schema.validate(df, lazy=True, inplace=True)
        return
    except pa.errors.SchemaErrors as exc:
        fc = exc.failure_cases
    errors = []
    for (column, check), rows in fc.groupby(["column", "check"], sort=False, dropna=False):
        name = None if pd.isna(column) else str(column)
        rows = rows[rows["index"].notna()] if rows["index"].notna().any() else rows
        examples = list(pd.unique(rows["failure_case"].dropna()))[:MAX_EXAMPLES]
        index = pd.to_numeric(rows["index"], errors="coerce").dropna()
        errors.append(DataError(table, name, _pandera_problem(str(check)), examples,
                                len(rows) if len(index) else None,
                                row=int(index.min()) + 1 if len(index) else None))
    for error in errors:
        if not reported(table, error.column):
            raise_or_collect(error)


def _pandera_problem(check: str) -> str:
    if check.startswith("dtype("):
        return f"a wrong data type (expected {check[6:-1]})"
    if check == "field_uniqueness":
        return "a duplicate value"
    if check == "not_nullable":
        return "a missing value"
    if check == "column_in_dataframe":
        return "a required column missing"
    return check
