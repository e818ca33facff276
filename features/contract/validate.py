"""Validation and normalisation of the touchpoint data contract.

:func:`validate_tables` is the one entry point every loader uses. It turns loosely typed frames (CSV text,
parquet from another tool, importer output) into the normalised form described in :mod:`features.contract.schema`
and rejects bad input with a :class:`DataError` that names the table, column, problem, a few offending
values and how many rows are affected.

Conversions (text → categories, timestamps, booleans) are hand-written vectorised passes because they
must produce the offending values for the message; value rules on the normalised frames (ranges,
uniqueness, dtypes) are declared as pandera schemas.

Decisions (also documented in the README's data-contract section):

- Timestamps without a time zone are read as UTC and the report carries a warning.
- Exact duplicate touchpoints (every column equal) are dropped and counted.
- A customer id in several ``customers`` records is merged into one record: the earliest ``signup_ts``;
  a consent flag only if *every* record consents (consent is a hard limit, so any refusal wins); every
  other attribute from the last record (in file order) where it is not missing. The merged record keeps
  the position of the id's first record.
- A missing consent value means no consent (counted as a warning); a missing ``holdout`` is an error.
- ``amount`` may be negative only for ``kind == "return"`` (refunds); ``duration_s``, ``pages`` and
  ``discount`` are never negative; ``sentiment`` lies in [-1, 1]; ``propensity`` in (0, 1] or missing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pa

from features.contract.schema import (
    CHANNELS,
    CONSENT_COLUMNS,
    CUSTOMER_COLUMNS,
    DIRECTIONS,
    KINDS,
    LABEL_COLUMNS,
    OUTREACH_CHANNELS,
    OUTREACH_REQUIRED,
    REFERRERS,
    REQUIRED_TABLES,
    TOUCHPOINT_REQUIRED,
    UTC_NS,
    Tables,
)

TOUCH_NUMERIC: tuple[str, ...] = ("duration_s", "pages", "amount", "discount", "sentiment")
TOUCH_TEXT: tuple[str, ...] = ("topic", "device", "offer_id", "campaign_id", "product_id")
TOUCH_CATEGORIES: dict[str, tuple[str, ...]] = {
    "channel": CHANNELS, "kind": KINDS, "direction": DIRECTIONS, "referrer": REFERRERS,
}
# Text columns a CSV reader should keep as text (never guess numbers, never turn "NA" into missing).
TEXT_COLUMNS: frozenset[str] = frozenset(
    {"customer_id", "channel", "kind", "direction", "referrer", "offer", *TOUCH_TEXT}
)
DUPLICATE_RULE = (
    "records sharing a customer_id are merged into one: earliest signup_ts; a consent flag only if every "
    "record consents; other attributes from the last record (file order) where they are present"
)
MAX_EXAMPLES = 5
_TRUE = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "0.0"})
_TZ_SUFFIX = re.compile(r"(?:Z|[+-]\d\d(?::?\d\d)?|UTC|GMT)$", re.IGNORECASE)


class DataError(ValueError):
    """Input that breaks the data contract; the message names table, column, problem, examples and rows.

    ``count`` is the number of affected rows (``None`` for table- or file-level problems), ``examples``
    a few distinct offending values, ``row`` the 1-based position of the first affected row in the table
    as given, ``allowed`` the accepted values where there is a fixed list.
    """

    def __init__(
        self,
        table: str,
        column: str | None,
        problem: str,
        examples: Sequence = (),
        count: int | None = None,
        *,
        allowed: Sequence[str] = (),
        row: int | None = None,
        source: str = "",
    ) -> None:
        self.table = table
        self.column = column
        self.problem = problem
        self.examples = list(examples)[:MAX_EXAMPLES]
        self.count = count
        self.allowed = list(allowed)
        self.row = row
        self.source = source
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        if self.count is not None:
            text = f"{where}: {self.count:,} {'row' if self.count == 1 else 'rows'} with {self.problem}"
        else:
            text = f"{where}: {self.problem}"
        details = []
        if self.examples:
            details.append(", ".join(_show(v) for v in self.examples))
        if self.row is not None:
            details.append(f"first at row {self.row:,}")
        if details:
            text += f" ({'; '.join(details)})"
        if self.allowed:
            text += f"; allowed: {', '.join(self.allowed)}"
        return f"{self.source}: {text}" if self.source else text

    def __reduce__(self):
        # Rebuild from the fields (the default would call __init__ with the message only).
        return (_rebuild_data_error, (self.table, self.column, self.problem, self.examples, self.count,
                                      self.allowed, self.row, self.source))

    def with_source(self, source: str) -> DataError:
        """The same error, attributed to a file or folder."""
        return DataError(self.table, self.column, self.problem, self.examples, self.count,
                         allowed=self.allowed, row=self.row, source=source)


def _rebuild_data_error(table, column, problem, examples, count, allowed, row, source) -> DataError:
    return DataError(table, column, problem, examples, count, allowed=allowed, row=row, source=source)


def _show(value) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class ValidationReport:
    """What validation found and changed: row counts per table, duplicates resolved, warnings."""

    source: str = ""
    rows_in: dict[str, int] = field(default_factory=dict)
    rows_out: dict[str, int] = field(default_factory=dict)
    duplicate_touchpoints_dropped: int = 0
    duplicate_customer_ids: int = 0
    duplicate_customer_records_merged: int = 0
    duplicate_customer_examples: list[str] = field(default_factory=list)
    duplicate_rule: str = DUPLICATE_RULE
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Validation passed (a report only exists for data that passed)."""
        return True

    def to_dict(self) -> dict:
        """A JSON-ready view of the report."""
        return asdict(self)

    def summary(self) -> str:
        """A short human-readable account, one line per fact."""
        lines = [f"valid: {self.source}" if self.source else "valid"]
        for table, n_in in self.rows_in.items():
            n_out = self.rows_out.get(table, n_in)
            lines.append(f"  {table}: {n_out:,} rows" + (f" ({n_in:,} read)" if n_out != n_in else ""))
        if self.duplicate_touchpoints_dropped:
            lines.append(f"  dropped {self.duplicate_touchpoints_dropped:,} exact duplicate touchpoints")
        if self.duplicate_customer_ids:
            ex = ", ".join(self.duplicate_customer_examples)
            lines.append(
                f"  merged {self.duplicate_customer_ids:,} customer ids found in several records "
                f"({self.duplicate_customer_records_merged:,} extra records, e.g. {ex}): "
                f"{self.duplicate_rule}"
            )
        lines.extend(f"  warning: {w}" for w in self.warnings)
        lines.append(f"  checked in {self.seconds:.2f} s")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------- helpers


def _fail(table: str, column: str | None, problem: str, values: pd.Series | np.ndarray | None,
          mask: np.ndarray | None, *, allowed: Sequence[str] = ()) -> None:
    """Raise a DataError for the rows in ``mask`` (no-op when no row is flagged)."""
    if mask is None:
        raise DataError(table, column, problem, allowed=allowed)
    mask = np.asarray(mask, dtype=bool)
    count = int(mask.sum())
    if count == 0:
        return
    positions = np.flatnonzero(mask)
    examples: list = []
    if values is not None:
        seen = pd.unique(pd.Series(np.asarray(values, dtype=object)[positions[:10_000]]))
        examples = [v for v in seen if not _is_missing(v)][:MAX_EXAMPLES]
    raise DataError(table, column, problem, examples, count, allowed=allowed, row=int(positions[0]) + 1)


def _is_missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and other containers are values, not missing
        return False


def _require_columns(df: pd.DataFrame, table: str, required: Iterable[str]) -> None:
    if not isinstance(df, pd.DataFrame):
        raise DataError(table, None, f"expected a table (DataFrame), got {type(df).__name__}")
    dup = df.columns[df.columns.duplicated()]
    if len(dup):
        raise DataError(table, None, "duplicate column names", list(dict.fromkeys(map(str, dup))))
    missing = [c for c in required if c not in df.columns]
    if missing:
        found = ", ".join(map(str, df.columns[:12])) + (", ..." if df.shape[1] > 12 else "")
        raise DataError(table, missing[0] if len(missing) == 1 else None,
                        f"required column{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(missing)} missing (found: {found or 'no columns'})")


def _is_textlike(s: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype)


def _blank(s: pd.Series) -> np.ndarray:
    """Missing or empty/whitespace-only text."""
    missing = s.isna().to_numpy()
    if _is_textlike(s) and len(s):
        stripped = s.astype("str").str.strip()
        missing = missing | (stripped == "").fillna(True).to_numpy(dtype=bool)
    return missing


def _id_text(s: pd.Series) -> pd.Series:
    """Customer ids as text; integral numbers lose their ``.0``."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("str")
    if pd.api.types.is_float_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        ok = np.isfinite(v) & (v == np.round(v))
        out = s.astype("str")
        out[ok] = pd.Series(v[ok].astype(np.int64)).astype("str").to_numpy()
        return out.where(s.notna())
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.astype("str")
    return s.astype("str")


def normalise_ids(s: pd.Series, table: str, column: str = "customer_id") -> pd.Series:
    """A customer-id column as non-empty text (categoricals become plain text)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(s.cat.categories.dtype).astype("str") if len(s) else s.astype("str")
    out = _id_text(s).astype("str").reset_index(drop=True)
    _fail(table, column, "a missing or empty customer id", s, _blank(out))
    return out


def _customer_codes(s: pd.Series, ids: pd.Index, table: str) -> pd.Categorical:
    """Ids as a Categorical over ``ids`` (customers order), rejecting empty and unknown ids."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        old = s.cat.codes.to_numpy()
        cats = s.cat.categories
        if cats.equals(ids):
            codes, blank = old, old < 0
        else:
            cat_text = _id_text(pd.Series(cats)).astype("str")
            remap = np.append(ids.get_indexer(pd.Index(cat_text)), -1)  # index -1 (missing) -> -1
            blank_cat = np.append(_blank(cat_text), True)
            codes, blank = remap[old], blank_cat[old]
    else:
        codes, blank = _lookup(_id_text(s), ids)
    _fail(table, "customer_id", "a missing or empty customer id", s, blank)
    _fail(table, "customer_id", "a customer id missing from the customers table", s, codes < 0)
    return pd.Categorical.from_codes(codes.astype(np.int32, copy=False), categories=ids)


def _timestamps(s: pd.Series, table: str, column: str, report: ValidationReport, *,
                allow_missing: bool) -> pd.Series:
    """A timestamp column as datetime64[ns, UTC]; naive values are read as UTC (with a warning)."""
    where = f"{table}.{column}"
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        out = s.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(s.dtype):
        out = s.dt.tz_localize("UTC")
        if s.notna().any():
            report.warnings.append(f"{where}: timestamps without a time zone were read as UTC")
    elif pd.api.types.is_numeric_dtype(s.dtype) and s.notna().any():
        raise DataError(table, column, "numbers where timestamps are expected (use ISO 8601 text, "
                        "e.g. 2024-05-01T12:00:00Z, or a datetime column)",
                        list(pd.unique(s.dropna().head(MAX_EXAMPLES))), int(s.notna().sum()), row=1)
    else:
        strings = _is_textlike(s)
        text = s.astype("str") if strings else s
        try:
            out = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601" if strings else None)
        except (TypeError, ValueError) as exc:  # mixed objects pandas cannot even coerce
            raise DataError(table, column, f"values that are not timestamps ({exc})") from None
        # Only values that failed to parse need the (slow) blank test.
        bad = out.isna().to_numpy().copy()
        failed = np.flatnonzero(bad)
        blank = np.zeros(len(s), dtype=bool)
        blank[failed] = _blank(s.iloc[failed])
        bad &= ~blank
        _fail(table, column, "an unparseable timestamp (use ISO 8601, e.g. 2024-05-01T12:00:00Z)", s, bad)
        if strings:
            sample = text[~blank].head(2_000).str.strip()
            naive = ~sample.str.contains(_TZ_SUFFIX, regex=True).fillna(True)
            if naive.any():
                report.warnings.append(
                    f"{where}: timestamps without a time zone were read as UTC "
                    f"(e.g. {sample[naive].iloc[0]!r})"
                )
    try:
        out = out.dt.as_unit("ns")
    except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime):
        years = out.dt.year
        bad = ((years < 1678) | (years > 2261)).fillna(False).to_numpy(dtype=bool)
        _fail(table, column, "a timestamp outside the years 1678-2261", s, bad)
        raise
    if not allow_missing:
        _fail(table, column, "a missing timestamp", s, out.isna().to_numpy())
    return out.reset_index(drop=True)


def _bools(s: pd.Series, table: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Booleans from bool, 0/1 numbers or true/false/yes/no/1/0 text; returns (values, missing)."""
    missing = s.isna().to_numpy()
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.fillna(False).to_numpy(dtype=bool), missing
    if pd.api.types.is_numeric_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        _fail(table, column, "a value that is not boolean (use true/false, yes/no or 1/0)", s,
              ~missing & (v != 0) & (v != 1))
        return v == 1, missing
    text = s.astype("str").str.strip().str.lower()
    missing = missing | (text == "").fillna(True).to_numpy(dtype=bool)
    is_true = text.isin(_TRUE).to_numpy()
    is_false = text.isin(_FALSE).to_numpy()
    _fail(table, column, "a value that is not boolean (use true/false, yes/no or 1/0)", s,
          ~missing & ~is_true & ~is_false)
    return is_true, missing


def _categories(s: pd.Series, vocab: tuple[str, ...], table: str, column: str, *,
                allow_missing: bool) -> pd.Categorical:
    """A column as a Categorical over a fixed vocabulary, rejecting values outside it."""
    cats = pd.Index(vocab, dtype="str")
    if isinstance(s.dtype, pd.CategoricalDtype):
        old = s.cat.codes.to_numpy()
        if s.cat.categories.equals(cats):
            codes = old
        else:
            remap = cats.get_indexer(pd.Index(s.cat.categories.astype("str")))
            codes = np.where(old >= 0, remap[np.maximum(old, 0)] if len(remap) else -1, -1)
        missing = old < 0
    else:
        codes, missing = _lookup(s, cats)
    codes = np.asarray(codes)
    _fail(table, column, "an unknown value", s, (codes < 0) & ~missing, allowed=vocab)
    if not allow_missing:
        _fail(table, column, "a missing value", s, missing, allowed=vocab)
    return pd.Categorical.from_codes(codes.astype(np.int8, copy=False), categories=cats)


def _lookup(s: pd.Series, index: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """Positions of text values in ``index`` (-1 = not found) and which values are missing or blank.

    Factorising first means each distinct value is looked up once, however long the column.
    """
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    uniq = pd.Index(uniques).astype("str")
    blank_u = np.append(_blank(pd.Series(uniq)), True)  # code -1 (missing) -> blank
    pos_u = np.append(index.get_indexer(uniq), -1)
    return pos_u[codes], blank_u[codes]


def _floats(s: pd.Series, table: str, column: str) -> np.ndarray:
    """A numeric column as float64 (NaN = missing); text that is not a number is an error."""
    if pd.api.types.is_bool_dtype(s.dtype):
        raise DataError(table, column, "booleans where numbers are expected")
    if pd.api.types.is_numeric_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        failed = np.flatnonzero(np.isnan(v))
        bad = np.zeros(len(s), dtype=bool)
        bad[failed] = ~_blank(s.iloc[failed])  # blank text is missing, anything else is not a number
        _fail(table, column, "a value that is not a number", s, bad)
    _fail(table, column, "an infinite value", s, np.isinf(v))
    return v


def _text(s: pd.Series) -> pd.Series:
    """Free text as pandas text (categoricals are kept: they are text already, and smaller)."""
    if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == "str":
        return s.reset_index(drop=True)
    return s.astype("str").reset_index(drop=True)


# -------------------------------------------------------------------------- pandera value rules


def _vocab_dtype(vocab: tuple[str, ...]) -> pd.CategoricalDtype:
    return pd.CategoricalDtype(pd.Index(vocab, dtype="str"))


def _checks_customers(ids: pd.Index) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "customer_id": pa.Column("str", unique=True, nullable=False, report_duplicates="exclude_first"),
            "signup_ts": pa.Column(UTC_NS, nullable=True),
            **{c: pa.Column(bool, nullable=False) for c in CONSENT_COLUMNS.values()},
        },
        name="customers",
    )


def _checks_touchpoints(ids: pd.Index) -> pa.DataFrameSchema:
    nonneg = "a negative value"
    return pa.DataFrameSchema(
        {
            # Built as a Categorical over ids above; a dtype check here would rebuild the id index.
            "customer_id": pa.Column(nullable=False),
            "ts": pa.Column(UTC_NS, nullable=False),
            "channel": pa.Column(_vocab_dtype(CHANNELS), nullable=False),
            "kind": pa.Column(_vocab_dtype(KINDS), nullable=False),
            "direction": pa.Column(_vocab_dtype(DIRECTIONS), nullable=False),
            "referrer": pa.Column(_vocab_dtype(REFERRERS), nullable=True, required=False),
            "duration_s": pa.Column(float, pa.Check.ge(0, error=nonneg), nullable=True, required=False),
            "pages": pa.Column(float, pa.Check.ge(0, error=nonneg), nullable=True, required=False),
            "amount": pa.Column(float, nullable=True, required=False),
            "discount": pa.Column(float, pa.Check.ge(0, error=nonneg), nullable=True, required=False),
            "sentiment": pa.Column(float, pa.Check.in_range(-1, 1, error="a value outside [-1, 1]"),
                                   nullable=True, required=False),
        },
        name="touchpoints",
    )


def _checks_outreach(ids: pd.Index) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "customer_id": pa.Column(nullable=False),
            "ts": pa.Column(UTC_NS, nullable=False),
            "channel": pa.Column(_vocab_dtype(OUTREACH_CHANNELS), nullable=True),
            "propensity": pa.Column(
                float,
                pa.Check.in_range(0, 1, include_min=False, error="a propensity outside (0, 1]"),
                nullable=True,
            ),
            "holdout": pa.Column(bool, nullable=False),
        },
        name="outreach",
    )


def _checks_labels(ids: pd.Index) -> pa.DataFrameSchema:
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


def _run_checks(schema: pa.DataFrameSchema, df: pd.DataFrame, table: str) -> None:
    """Apply a pandera schema and turn its first failure into a DataError (others are mentioned)."""
    try:
        schema.validate(df, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as exc:
        fc = exc.failure_cases
        groups = list(fc.groupby(["column", "check"], sort=False, dropna=False))
        (column, check), rows = groups[0]
        rows = rows[rows["index"].notna()] if rows["index"].notna().any() else rows
        examples = list(pd.unique(rows["failure_case"].dropna()))[:MAX_EXAMPLES]
        index = pd.to_numeric(rows["index"], errors="coerce").dropna()
        problem = _pandera_problem(str(check))
        if len(groups) > 1:
            others = "; ".join(f"{c}: {_pandera_problem(str(k))}" for (c, k), _ in groups[1:4])
            problem += f" [also: {others}]"
        raise DataError(table, None if pd.isna(column) else str(column), problem, examples,
                        len(rows) if len(index) else None,
                        row=int(index.min()) + 1 if len(index) else None) from None


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


# ------------------------------------------------------------------------------------------ tables


def _customers(df: pd.DataFrame, report: ValidationReport) -> pd.DataFrame:
    table = "customers"
    _require_columns(df, table, CUSTOMER_COLUMNS)
    out = df.reset_index(drop=True).copy()
    out["customer_id"] = normalise_ids(out["customer_id"], table)
    out["signup_ts"] = _timestamps(out["signup_ts"], table, "signup_ts", report, allow_missing=True)
    no_consent = 0
    for col in CONSENT_COLUMNS.values():
        values, missing = _bools(out[col], table, col)
        no_consent += int(missing.sum())
        out[col] = values
    if no_consent:
        report.warnings.append(f"customers: {no_consent:,} missing consent values read as no consent")
    return _merge_duplicate_customers(out, report)


def _merge_duplicate_customers(cus: pd.DataFrame, report: ValidationReport) -> pd.DataFrame:
    """Resolve customer ids found in several records by the documented rule (see module docstring)."""
    dup = cus["customer_id"].duplicated(keep=False).to_numpy()
    if not dup.any():
        return cus
    part = cus[dup].copy()
    for col in part.columns:
        if col != "customer_id" and _is_textlike(part[col]):
            part[col] = part[col].where(~_blank(part[col]))  # empty text is missing, not a value
    g = part.groupby("customer_id", sort=False, observed=True)
    merged = g.last()  # last non-missing value per attribute, in file order
    merged["signup_ts"] = g["signup_ts"].min()
    consent_cols = list(CONSENT_COLUMNS.values())
    everyone = g[consent_cols].all()
    conflicts = int((everyone != g[consent_cols].any()).any(axis=1).sum())
    merged[consent_cols] = everyone
    out = cus.drop_duplicates("customer_id", keep="first").reset_index(drop=True)
    pos = pd.Index(out["customer_id"]).get_indexer(merged.index)
    for col in merged.columns:
        values = merged[col].to_numpy()
        if out[col].dtype == bool:
            values = values.astype(bool)
        column = out[col].copy()
        column.iloc[pos] = values
        out[col] = column
    n_ids = len(merged)
    report.duplicate_customer_ids = n_ids
    report.duplicate_customer_records_merged = int(dup.sum()) - n_ids
    report.duplicate_customer_examples = [str(x) for x in merged.index[:MAX_EXAMPLES]]
    if conflicts:
        report.warnings.append(
            f"customers: {conflicts:,} merged customers had conflicting consent; kept only consents "
            "given in every record"
        )
    return out


def _order_by_customer_time(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rows in (customer, ts) order, ties in input order; also returns the codes and ns times."""
    codes = df["customer_id"].cat.codes.to_numpy()
    ts = df["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    if len(df) > 1:
        dc = np.diff(codes)
        in_order = bool((dc >= 0).all() and (np.diff(ts)[dc == 0] >= 0).all())
        if not in_order:
            # Two stable sorts (time, then customer) keep ties in input order; exports already in time
            # order need only the second. Both beat np.lexsort on large logs.
            if (np.diff(ts) >= 0).all():
                order = np.argsort(codes, kind="stable")
            else:
                by_time = np.argsort(ts, kind="stable")
                order = by_time[np.argsort(codes[by_time], kind="stable")]
            df = df.take(order).reset_index(drop=True)
            codes, ts = codes[order], ts[order]
    return df, codes, ts


def _drop_exact_duplicates(df: pd.DataFrame, codes: np.ndarray, ts: np.ndarray) -> tuple[pd.DataFrame, int]:
    """Drop rows equal in every column; only rows sharing (customer, ts) with a neighbour can be equal."""
    if len(df) < 2:
        return df, 0
    same = (codes[1:] == codes[:-1]) & (ts[1:] == ts[:-1])
    if not same.any():
        return df, 0
    cand = np.zeros(len(df), dtype=bool)
    cand[1:] |= same
    cand[:-1] |= same
    sub = df[cand]
    try:
        dup_sub = sub.duplicated(keep="first").to_numpy()
    except TypeError:  # unhashable extras (lists, dicts): compare their text form
        as_text = {c: "str" for c in sub.columns if sub[c].dtype == object}
        dup_sub = sub.astype(as_text).duplicated().to_numpy()
    drop = np.zeros(len(df), dtype=bool)
    drop[np.flatnonzero(cand)[dup_sub]] = True
    n = int(drop.sum())
    return (df[~drop].reset_index(drop=True) if n else df), n


def _touchpoints(df: pd.DataFrame, ids: pd.Index, report: ValidationReport) -> pd.DataFrame:
    table = "touchpoints"
    _require_columns(df, table, TOUCHPOINT_REQUIRED)
    df = df.reset_index(drop=True)
    cols: dict[str, object] = {}
    for col in df.columns:
        s = df[col]
        if col == "customer_id":
            cols[col] = _customer_codes(s, ids, table)
        elif col == "ts":
            cols[col] = _timestamps(s, table, col, report, allow_missing=False)
        elif col in TOUCH_CATEGORIES:
            cols[col] = _categories(s, TOUCH_CATEGORIES[col], table, col, allow_missing=col == "referrer")
        elif col in TOUCH_NUMERIC:
            cols[col] = _floats(s, table, col)
        elif col in TOUCH_TEXT:
            cols[col] = _text(s)
        else:
            cols[col] = s
    out = pd.DataFrame(cols, copy=False)
    if "amount" in out.columns:
        neg = (out["amount"].to_numpy() < 0) & (out["kind"].cat.codes.to_numpy() != KINDS.index("return"))
        _fail(table, "amount", "a negative amount on a kind other than return", df["amount"], neg)
    _run_checks(_checks_touchpoints(ids), out, table)
    out, codes, ts = _order_by_customer_time(out)
    out, n_dup = _drop_exact_duplicates(out, codes, ts)
    report.duplicate_touchpoints_dropped = n_dup
    return out


def _outreach(df: pd.DataFrame, ids: pd.Index, report: ValidationReport) -> pd.DataFrame:
    table = "outreach"
    _require_columns(df, table, OUTREACH_REQUIRED)
    df = df.reset_index(drop=True)
    n = len(df)
    if "holdout" in df.columns:
        holdout, missing = _bools(df["holdout"], table, "holdout")
        _fail(table, "holdout", "a missing holdout flag (use true/false)", df["holdout"], missing)
    else:
        holdout = np.zeros(n, dtype=bool)
    cols: dict[str, object] = {}
    for col in df.columns:
        s = df[col]
        if col == "customer_id":
            cols[col] = _customer_codes(s, ids, table)
        elif col == "ts":
            cols[col] = _timestamps(s, table, col, report, allow_missing=False)
        elif col == "channel":
            ch = _categories(s, OUTREACH_CHANNELS, table, col, allow_missing=True)
            _fail(table, col, "a missing channel on a contact that is not a holdout", s,
                  (ch.codes < 0) & ~holdout)
            cols[col] = ch
        elif col == "offer":
            blank = _blank(s)
            _fail(table, col, "a missing offer on a contact that is not a holdout (use 'none' for no offer)",
                  s, blank & ~holdout)
            cols[col] = _text(s)
        elif col == "campaign_id":
            cols[col] = _text(s)
        elif col == "propensity":
            cols[col] = _floats(s, table, col)
        elif col == "holdout":
            cols[col] = holdout
        else:
            cols[col] = s
    # Absent optional columns get their "unknown" value so downstream code sees one shape.
    cols.setdefault("campaign_id", pd.Series(pd.NA, index=range(n), dtype="str"))
    cols.setdefault("propensity", np.full(n, np.nan))
    cols.setdefault("holdout", holdout)
    out = pd.DataFrame(cols, copy=False)
    _run_checks(_checks_outreach(ids), out, table)
    out, _, _ = _order_by_customer_time(out)
    try:
        n_dup = int(out.duplicated().sum())
    except TypeError:
        n_dup = 0
    if n_dup:
        report.warnings.append(f"outreach: {n_dup:,} rows are exact duplicates of another row (kept)")
    return out


def _labels(df: pd.DataFrame, ids: pd.Index, report: ValidationReport) -> pd.DataFrame:
    table = "labels"
    _require_columns(df, table, LABEL_COLUMNS)
    out = df.reset_index(drop=True).copy()
    out["customer_id"] = normalise_ids(out["customer_id"], table)
    lab = out["label"]
    if pd.api.types.is_bool_dtype(lab.dtype):
        values = lab.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        num = pd.to_numeric(lab.where(~_blank(lab)), errors="coerce")
        values = num.to_numpy(dtype=np.float64, na_value=np.nan)
    _fail(table, "label", "a label other than 0 or 1", lab, ~np.isin(values, (0.0, 1.0)))
    out["label"] = values.astype(np.int8)
    keys = ["customer_id"]
    if "cutoff" in out.columns:
        out["cutoff"] = _timestamps(out["cutoff"], table, "cutoff", report, allow_missing=False)
        keys.append("cutoff")
    _run_checks(_checks_labels(ids), out, table)
    dup = out.duplicated(keys, keep=False).to_numpy()
    _fail(table, "customer_id", f"a second label for the same {' and '.join(keys)}", out["customer_id"], dup)
    return out


def _truth(df: pd.DataFrame, ids: pd.Index) -> pd.DataFrame:
    table = "truth"
    _require_columns(df, table, ("customer_id",))
    out = df.reset_index(drop=True).copy()
    out["customer_id"] = normalise_ids(out["customer_id"], table)
    _fail(table, "customer_id", "a customer id missing from the customers table", out["customer_id"],
          ~out["customer_id"].isin(ids).to_numpy())
    _fail(table, "customer_id", "a duplicate customer id (truth has one row per customer)",
          out["customer_id"], out["customer_id"].duplicated().to_numpy())
    return out


def validate_tables(tables: Tables, *, source: str = "") -> tuple[Tables, ValidationReport]:
    """Check ``tables`` against the data contract and return them normalised, with a report.

    Raises :class:`DataError` for the first problem found (the message names table, column, problem,
    examples and row count). Input frames are never modified.
    """
    start = time.perf_counter()
    report = ValidationReport(source=source)
    try:
        for name in REQUIRED_TABLES:
            if getattr(tables, name, None) is None:
                raise DataError(name, None, "required table missing")
        for name in ("customers", "touchpoints", "outreach", "labels", "truth"):
            df = getattr(tables, name)
            if df is not None:
                if not isinstance(df, pd.DataFrame):
                    raise DataError(name, None, f"expected a table (DataFrame), got {type(df).__name__}")
                report.rows_in[name] = len(df)
        customers = _customers(tables.customers, report)
        _run_checks(_checks_customers(pd.Index([])), customers, "customers")
        ids = pd.Index(customers["customer_id"])
        touchpoints = _touchpoints(tables.touchpoints, ids, report)
        outreach = None if tables.outreach is None else _outreach(tables.outreach, ids, report)
        labels = None if tables.labels is None else _labels(tables.labels, ids, report)
        truth = None if tables.truth is None else _truth(tables.truth, ids)
    except DataError as exc:
        if source and not exc.source:
            raise exc.with_source(source) from None
        raise
    out = Tables(customers=customers, touchpoints=touchpoints, outreach=outreach, labels=labels, truth=truth,
                 meta=dict(tables.meta))
    for name in report.rows_in:
        report.rows_out[name] = len(getattr(out, name))
    report.seconds = time.perf_counter() - start
    out.meta["validation"] = report
    return out, report


def subset_tables(tables: Tables, customer_ids) -> Tables:
    """The tables restricted to some customers, in the customers table's order.

    Id columns stay categoricals whose categories are the remaining customers; unknown ids are an error.
    """
    cus = tables.customers
    all_ids = pd.Index(cus["customer_id"].astype("str"))
    wanted = pd.Index(pd.Series(list(customer_ids) if not isinstance(customer_ids, pd.Series | pd.Index)
                                else customer_ids).astype("str")).unique()
    unknown = wanted.difference(all_ids)
    if len(unknown):
        raise KeyError(f"subset: {len(unknown):,} customer ids are not in the tables "
                       f"(e.g. {', '.join(map(repr, unknown[:MAX_EXAMPLES]))})")
    keep = all_ids.isin(wanted)
    new_cus = cus[keep].reset_index(drop=True)
    new_ids = pd.Index(new_cus["customer_id"].astype("str"))
    remap = np.full(len(all_ids) + 1, -1, dtype=np.int64)
    remap[:-1][keep] = np.arange(int(keep.sum()))

    def restrict(df: pd.DataFrame | None) -> pd.DataFrame | None:
        if df is None:
            return None
        col = df["customer_id"]
        if isinstance(col.dtype, pd.CategoricalDtype) and col.cat.categories.equals(all_ids):
            codes = remap[col.cat.codes.to_numpy()]  # code -1 maps to remap[-1] == -1
            rows = codes >= 0
            out = df[rows].reset_index(drop=True)
            out["customer_id"] = pd.Categorical.from_codes(codes[rows].astype(np.int32), categories=new_ids)
            return out
        rows = col.astype("str").isin(new_ids).to_numpy()
        return df[rows].reset_index(drop=True)

    meta = {k: v for k, v in tables.meta.items() if k != "validation"}
    meta["subset_of"] = len(all_ids)
    return Tables(customers=new_cus, touchpoints=restrict(tables.touchpoints),
                  outreach=restrict(tables.outreach), labels=restrict(tables.labels),
                  truth=restrict(tables.truth), meta=meta)
