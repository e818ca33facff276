"""Request → contract tables: the service's customers, touchpoints and outreach as validated ``Tables``.

A score request carries customers with their touchpoints (as rows or as columns) and outreach. The
tables are built already normalised, exactly as :func:`features.contract.validate.validate_tables` leaves
them (the request's pydantic schema has checked every value), so a request is scored by the same code as
a data folder. Feature-score requests become a feature frame in the model's column order instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd

from features.contract.cutoffs import utc_timestamp
from features.contract.schema import CONSENT_COLUMNS, OUTREACH_CHANNELS, TOUCH_CATEGORIES, TOUCHPOINT_OPTIONAL, Tables
from serving.schemas import (
    NUMERIC_FIELDS,
    STRING_FIELDS,
    CustomerIn,
    FeatureRow,
    TouchpointColumns,
    epoch_ns,
)

CONSENTS: tuple[str, ...] = tuple(CONSENT_COLUMNS.values())
# Built once: validating categories on every request costs more than the rest of the conversion.
DTYPES: dict[str, pd.CategoricalDtype] = {
    name: pd.CategoricalDtype(pd.Index(values, dtype="str"))
    for name, values in {**TOUCH_CATEGORIES, "outreach_channel": OUTREACH_CHANNELS}.items()
}


class RequestError(ValueError):
    """A request that is well-formed JSON but cannot be scored; ``errors`` are pydantic-style dicts."""

    def __init__(self, title: str, errors: list[dict[str, Any]]):
        self.title = title
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))


def as_cutoff(value: Any | None) -> pd.Timestamp:
    """A UTC timestamp cutoff; ``None`` means now."""
    return pd.Timestamp.now(tz="UTC") if value is None else utc_timestamp(value)


def tables_from_request(customers: Sequence[CustomerIn], attributes: Sequence[str] = ()) -> Tables:
    """Contract tables, normalised as ``features.contract.validate.validate_tables`` leaves them.

    ``attributes``: customer attribute columns to have even when no customer sends them (missing values),
    e.g. the ones the model reads, so that scoring need not add them to a copy of the table.
    """
    ids = [c.customer_id for c in customers]
    id_dtype = pd.CategoricalDtype(pd.Index(ids, dtype="str", name="customer_id"))
    return Tables(
        customers=_customer_frame(customers, ids, attributes),
        touchpoints=_touchpoint_frame(_gather_touchpoints(customers), id_dtype),
        outreach=_outreach_frame(customers, id_dtype),
    )


@dataclass(frozen=True)
class _TouchLog:
    """Every customer's touchpoints as flat columns, in request order (not yet sorted by customer and time)."""

    codes: np.ndarray  # each row's customer, as its position in the request
    ts_ns: np.ndarray  # each row's time in UTC nanoseconds
    columns: dict[str, list]  # every other field some customer sent, one value per row (None = missing)


def _utc_ns(ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(ns.astype("datetime64[ns]")).tz_localize("UTC")


def _customer_frame(customers: Sequence[CustomerIn], ids: list[str], attributes: Sequence[str]) -> pd.DataFrame:
    """The customers table: ids, signup time, consents, and every attribute sent or asked for."""
    data_c: dict[str, Any] = {
        "customer_id": pd.array(ids, dtype="str"),
        "signup_ts": _utc_ns(
            np.array(
                [np.iinfo(np.int64).min if c.signup_ts is None else epoch_ns([c.signup_ts])[0] for c in customers],
                dtype=np.int64,
            )
        ),
        **{name: np.array([getattr(c, name) for c in customers], dtype=bool) for name in CONSENTS},
    }
    sent = {k for c in customers for k in c.attributes}
    for name in sorted(sent):
        data_c[name] = pd.Series([c.attributes.get(name) for c in customers]).infer_objects().array
    for name in attributes:
        if name not in sent:
            data_c[name] = np.full(len(customers), None, dtype=object)
    # One constructor call: adding the columns one by one costs far more on a request of a few customers.
    return pd.DataFrame(data_c, index=pd.RangeIndex(len(customers)))


def _touch_columns(tp: list | TouchpointColumns) -> dict[str, list]:
    """A customer's touchpoints as columns, whichever shape the request used."""
    if isinstance(tp, TouchpointColumns):
        return {"ts": tp.ts_ns, **{name: getattr(tp, name) for name in type(tp).model_fields if name != "ts"}}
    fields = ("channel", "kind", "direction", *NUMERIC_FIELDS, *STRING_FIELDS, "referrer")
    return {"ts": epoch_ns([t.ts for t in tp]), **{name: [getattr(t, name) for t in tp] for name in fields}}


def _gather_touchpoints(customers: Sequence[CustomerIn]) -> _TouchLog:
    """All customers' touchpoints appended into one set of columns."""
    cols: dict[str, list] = {}
    codes: list[np.ndarray] = []
    stamps: list[np.ndarray] = []
    done = 0  # rows so far (a running count: summing the parts per customer made large requests quadratic)
    for code, c in enumerate(customers):
        tc = _touch_columns(c.touchpoints)
        n = len(tc["ts"])
        if n == 0:
            continue
        codes.append(np.full(n, code, dtype=np.int32))
        stamps.append(tc.pop("ts"))
        for name, values in tc.items():
            if values is not None:
                cols.setdefault(name, []).extend(values)
            elif name in cols:
                cols[name].extend([None] * n)
        # a column first seen at a later customer needs its leading missing values
        done += n
        for values in cols.values():
            if len(values) < done:
                values[:0] = [None] * (done - len(values))
    return _TouchLog(
        codes=np.concatenate(codes) if codes else np.zeros(0, dtype=np.int32),
        ts_ns=np.concatenate(stamps) if stamps else np.zeros(0, dtype=np.int64),
        columns=cols,
    )


def _categorical(
    values: list | None, dtype: pd.CategoricalDtype, n: int, order: np.ndarray
) -> pd.Categorical:
    """Codes through a lookup table: the values were checked against the vocabulary already."""
    if values is None:
        return pd.Categorical.from_codes(np.full(n, -1, dtype=np.int8), dtype=dtype)
    lut = {c: i for i, c in enumerate(dtype.categories)}
    codes = np.fromiter(map(lut.get, values, repeat(-1)), dtype=np.int8, count=len(values))
    return pd.Categorical.from_codes(codes[order], dtype=dtype)


def _touchpoint_frame(log: _TouchLog, id_dtype: pd.CategoricalDtype) -> pd.DataFrame:
    """The touchpoints table in (customer, time) order, with id codes over the request's customers."""
    n_total = len(log.codes)
    order = np.lexsort((log.ts_ns, log.codes))
    data: dict[str, Any] = {
        "customer_id": pd.Categorical.from_codes(log.codes[order], dtype=id_dtype),
        "ts": _utc_ns(log.ts_ns[order]),
    }
    for name in ("channel", "kind", "direction"):
        data[name] = _categorical(log.columns.get(name), DTYPES[name], n_total, order)
    # Optional columns exist only when the request carries them, as in a data folder's file.
    for name in TOUCHPOINT_OPTIONAL:
        values = log.columns.get(name)
        if values is None or all(v is None for v in values):
            continue
        if name in NUMERIC_FIELDS:
            data[name] = np.array(values, dtype=np.float64)[order]
        elif name == "referrer":
            data[name] = _categorical(values, DTYPES[name], n_total, order)
        else:
            data[name] = pd.array(np.array(values, dtype=object)[order], dtype="str")
    return pd.DataFrame(data)


def _outreach_frame(customers: Sequence[CustomerIn], id_dtype: pd.CategoricalDtype) -> pd.DataFrame | None:
    """The outreach table in (customer, time) order, with id codes over the request's customers (``None``
    when no customer sends outreach)."""
    orows = [(code, o) for code, c in enumerate(customers) for o in c.outreach]
    if not orows:
        return None  # as a data folder without an outreach file: building an empty table costs 0.4 ms
    ocodes = np.array([code for code, _ in orows], dtype=np.int32)
    outreach = pd.DataFrame(
        {
            "customer_id": pd.Categorical.from_codes(ocodes, dtype=id_dtype),
            "ts": _utc_ns(epoch_ns([o.ts for _, o in orows])),
            "channel": pd.Categorical([o.channel for _, o in orows], dtype=DTYPES["outreach_channel"]),
            "offer": pd.array([o.offer for _, o in orows], dtype="str"),
            "campaign_id": pd.array([o.campaign_id for _, o in orows], dtype="str"),
            "propensity": np.array(
                [np.nan if o.propensity is None else o.propensity for _, o in orows], dtype=np.float64
            ),
            "holdout": np.array([o.holdout for _, o in orows], dtype=bool),
        }
    )
    order = np.lexsort((outreach["ts"].to_numpy(dtype="int64"), ocodes))
    if np.array_equal(order, np.arange(len(order))):
        return outreach  # already in order: the reordered copy costs 0.3 ms
    return outreach.iloc[order].reset_index(drop=True)


def features_from_rows(rows: Sequence[FeatureRow], feature_names: Sequence[str]) -> pd.DataFrame:
    """A feature frame indexed by ``customer_id`` in the model's column order; names are checked."""
    known = set(feature_names)
    errors: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        unknown = sorted(set(row.features) - known)
        missing = [f for f in feature_names if f not in row.features]
        if unknown:
            errors.append(
                {
                    "loc": ["rows", i, "features"],
                    "type": "unknown_feature",
                    "msg": f"unknown feature(s): {', '.join(unknown[:10])}"
                    + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""),
                }
            )
        if missing:
            errors.append(
                {
                    "loc": ["rows", i, "features"],
                    "type": "missing_feature",
                    "msg": f"missing feature(s): {', '.join(missing[:10])}"
                    + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
                    + " (send null for a missing value)",
                }
            )
        if len(errors) >= 20:
            break
    if errors:
        raise RequestError("FeatureScoreRequest", errors)
    data = np.array(
        [[np.nan if (v := r.features[f]) is None else v for f in feature_names] for r in rows],
        dtype=np.float64,
    ).reshape(len(rows), len(feature_names))
    index = pd.Index([r.customer_id for r in rows], dtype="str", name="customer_id")
    return pd.DataFrame(data, index=index, columns=list(feature_names))

