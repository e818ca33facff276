"""The scoring code path shared by the HTTP service and batch scoring.

``ScoringEngine`` wraps a loaded ``DecisionSystem`` (``score(tables, cutoff)``,
``score_features(F)``) and turns its output frame into the service's response rows. The service
builds contract tables from a request (:func:`tables_from_request`); batch scoring reads them from a
data folder; both then call :meth:`ScoringEngine.score_tables`, so a customer gets the same answer
either way. Pure code: no BentoML, no MLflow, no files.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features.contract.cutoffs import utc_timestamp
from features.contract.schema import (
    CHANNELS,
    DIRECTIONS,
    KINDS,
    OUTREACH_CHANNELS,
    REFERRERS,
    SOCIAL_LADDER,
    STORE_LADDER,
    TOUCHPOINT_OPTIONAL,
    Tables,
)
from serving.schemas import (
    NUMERIC_FIELDS,
    STRING_FIELDS,
    CustomerIn,
    FeatureRow,
    TouchpointColumns,
    epoch_ns,
)

TOUCH_OPTIONAL: tuple[str, ...] = TOUCHPOINT_OPTIONAL
CONSENTS: tuple[str, ...] = tuple(f"consent_{c}" for c in OUTREACH_CHANNELS)
CATEGORIES: dict[str, tuple[str, ...]] = {
    "channel": CHANNELS,
    "kind": KINDS,
    "direction": DIRECTIONS,
    "referrer": REFERRERS,
}
# Built once: validating categories on every request costs more than the rest of the conversion.
DTYPES: dict[str, pd.CategoricalDtype] = {
    name: pd.CategoricalDtype(pd.Index(values, dtype="str"))
    for name, values in {**CATEGORIES, "outreach_channel": OUTREACH_CHANNELS}.items()
}
LADDER_NAMES: dict[str, tuple[str, ...]] = {
    "store_ladder": STORE_LADDER,
    "social_ladder": SOCIAL_LADDER,
}
LIST_COLUMNS: tuple[str, ...] = ("churn_reasons", "alternatives", "defense_reasons")
logger = logging.getLogger("engage.serving")
MAX_ALTERNATIVES = 3
REASON_MODES: tuple[str, ...] = ("all", "at-risk", "none")


class DecisionSystemLike(Protocol):
    """What the engine needs from a decision system (features.system.DecisionSystem)."""

    def score(self, tables: Tables, cutoff: pd.Timestamp) -> pd.DataFrame: ...

    def score_features(self, F: pd.DataFrame) -> pd.DataFrame: ...


class RequestError(ValueError):
    """A request that is well-formed JSON but cannot be scored; ``errors`` are pydantic-style dicts."""

    def __init__(self, title: str, errors: list[dict[str, Any]]):
        self.title = title
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))


@dataclass(frozen=True)
class ModelInfo:
    """Where the served model came from: ``version`` is what every response carries."""

    version: str
    versions: dict[str, str] = field(default_factory=dict)
    source: str = ""


def as_cutoff(value: Any | None) -> pd.Timestamp:
    """A UTC timestamp cutoff; ``None`` means now."""
    return pd.Timestamp.now(tz="UTC") if value is None else utc_timestamp(value)


# ----------------------------------------------------------------------------- request → tables


def _utc_ns(ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(ns.astype("datetime64[ns]")).tz_localize("UTC")


def _touch_columns(tp: list | TouchpointColumns) -> dict[str, list]:
    """A customer's touchpoints as columns, whichever shape the request used."""
    if isinstance(tp, TouchpointColumns):
        return {"ts": tp.ts_ns, **{name: getattr(tp, name) for name in type(tp).model_fields if name != "ts"}}
    fields = ("channel", "kind", "direction", *NUMERIC_FIELDS, *STRING_FIELDS, "referrer")
    return {"ts": epoch_ns([t.ts for t in tp]), **{name: [getattr(t, name) for t in tp] for name in fields}}


def _categorical(
    values: list | None, dtype: pd.CategoricalDtype, n: int, order: np.ndarray
) -> pd.Categorical:
    """Codes through a lookup table: the values were checked against the vocabulary already."""
    if values is None:
        return pd.Categorical.from_codes(np.full(n, -1, dtype=np.int8), dtype=dtype)
    lut = {c: i for i, c in enumerate(dtype.categories)}
    codes = np.fromiter(map(lut.get, values, repeat(-1)), dtype=np.int8, count=len(values))
    return pd.Categorical.from_codes(codes[order], dtype=dtype)


def tables_from_request(customers: Sequence[CustomerIn], attributes: Sequence[str] = ()) -> Tables:
    """Contract tables, normalised as ``features.contract.validate.validate_tables`` leaves them.

    ``attributes``: customer attribute columns to have even when no customer sends them (missing values),
    e.g. the ones the model reads, so that scoring need not add them to a copy of the table.
    """
    ids = [c.customer_id for c in customers]
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
    # One constructor call: adding columns one by one costs ~50 µs each.
    cust = pd.DataFrame(data_c, index=pd.RangeIndex(len(customers)))

    cols: dict[str, list] = {}
    codes: list[np.ndarray] = []
    stamps: list[np.ndarray] = []
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
        done = sum(len(x) for x in codes)
        for values in cols.values():
            if len(values) < done:
                values[:0] = [None] * (done - len(values))
    code_arr = np.concatenate(codes) if codes else np.zeros(0, dtype=np.int32)
    n_total = len(code_arr)
    ts_ns = np.concatenate(stamps) if stamps else np.zeros(0, dtype=np.int64)
    order = np.lexsort((ts_ns, code_arr))
    code_arr = code_arr[order]
    id_dtype = pd.CategoricalDtype(pd.Index(ids, dtype="str", name="customer_id"))
    data: dict[str, Any] = {
        "customer_id": pd.Categorical.from_codes(code_arr, dtype=id_dtype),
        "ts": _utc_ns(ts_ns[order]),
    }
    for name in ("channel", "kind", "direction"):
        data[name] = _categorical(cols.get(name), DTYPES[name], n_total, order)
    # Optional columns exist only when the request carries them, as in a data folder's file.
    for name in TOUCH_OPTIONAL:
        values = cols.get(name)
        if values is None or all(v is None for v in values):
            continue
        if name in NUMERIC_FIELDS:
            data[name] = np.array(values, dtype=np.float64)[order]
        elif name == "referrer":
            data[name] = _categorical(values, DTYPES[name], n_total, order)
        else:
            data[name] = pd.array(np.array(values, dtype=object)[order], dtype="str")
    touch = pd.DataFrame(data)

    orows = [(code, o) for code, c in enumerate(customers) for o in c.outreach]
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
    outreach = outreach.iloc[np.lexsort((outreach["ts"].to_numpy(dtype="int64"), ocodes))].reset_index(
        drop=True
    )
    return Tables(customers=cust, touchpoints=touch, outreach=outreach)


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


# --------------------------------------------------------------------------------------- scoring


def _feature_names(system: Any) -> list[str]:
    """The feature columns the system's model expects (best effort across attribute names)."""
    for attr in ("feature_names_", "feature_names", "features_", "feature_columns_"):
        names = getattr(system, attr, None)
        if names is not None and not callable(names):
            return [str(n) for n in names]
    for attr in ("pipeline_", "pipeline"):
        pipe = getattr(system, attr, None)
        if pipe is not None and hasattr(pipe, "get_feature_names_out"):
            try:
                return [str(n) for n in pipe.get_feature_names_out()]
            except (ValueError, AttributeError):  # not fitted / no names: report none
                pass
    return []


class ScoringEngine:
    """A loaded decision system plus its version: scores tables or feature rows into response rows."""

    def __init__(self, system: DecisionSystemLike, info: ModelInfo):
        self.system = system
        self.info = info
        self.feature_names: list[str] = _feature_names(system)
        reader = getattr(system, "static_attributes", None)
        self.attributes: list[str] = [str(a) for a in reader()] if callable(reader) else []

    def warm_up(self) -> None:
        """Let the system build what it caches lazily (``DecisionSystem.warm_up``); never fails loading."""
        warm = getattr(self.system, "warm_up", None)
        if not callable(warm):
            return
        try:
            warm()
        except Exception as exc:  # a system that cannot score an all-missing row still serves real ones
            logger.warning("warm-up skipped: %s: %s", type(exc).__name__, exc)

    def score_tables(self, tables: Tables, cutoff: pd.Timestamp) -> pd.DataFrame:
        """Score every customer of ``tables`` at ``cutoff``; one row per customer, in customer order."""
        cols = self.score_columns(tables, cutoff)
        return pd.DataFrame(cols, index=pd.RangeIndex(len(tables.customers)))

    def score_columns(self, tables: Tables, cutoff: pd.Timestamp) -> dict[str, Any]:
        """:meth:`score_tables` as a dict of columns (arrays; scalars for constant columns).

        The service's path: a request of a few customers pays for no output frame. A system with
        ``score_columns`` (``DecisionSystem``) fills it directly, any other through its ``score`` frame.
        """
        # A static attribute the CRM does not send is unknown for that customer, not an error.
        missing = [a for a in self.attributes if a not in tables.customers.columns]
        if missing:
            n = len(tables.customers)
            unknown = {a: pd.Series([None] * n, dtype=object, index=tables.customers.index) for a in missing}
            tables = tables.with_(customers=tables.customers.assign(**unknown))
        ids = tables.customers["customer_id"]
        want = ids.astype(str).to_numpy()
        fast = getattr(self.system, "score_columns", None)
        if callable(fast):
            cols = fast(tables, cutoff)
            got = cols.get("customer_id")
            if got is None:
                raise ValueError(f"{type(self.system).__name__}.score_columns returned no customer_id column")
            if len(got) != len(want) or not _same_ids(np.asarray(got, dtype=object), want):
                # not one row per customer in customer order: align through a frame
                cols = _aligned_columns(pd.DataFrame(cols, index=pd.RangeIndex(len(got))), want)
        else:
            cols = _aligned_columns(self.system.score(tables, cutoff), want)
        cols["cutoff"] = cutoff
        cols["cold_start"] = _cold_start(tables.touchpoints, ids, cutoff)
        cols["model_version"] = self.info.version
        return cols

    def score_features(self, F: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
        """Score precomputed feature rows (index = customer_id)."""
        return pd.DataFrame(self.score_feature_columns(F, cutoff), index=pd.RangeIndex(len(F)))

    def score_feature_columns(self, F: pd.DataFrame, cutoff: pd.Timestamp, reasons: str = "all") -> dict[str, Any]:
        """:meth:`score_features` as a dict of columns. ``reasons``: churn reason codes for ``all``
        customers, only those ``at-risk`` (churn probability at or above the system's at-risk level) or
        ``none`` (SHAP values are most of a large batch's time)."""
        if reasons not in REASON_MODES:
            raise ValueError(f"reasons: {reasons!r} is not one of {', '.join(REASON_MODES)}")
        fast = getattr(self.system, "score_feature_columns", None)
        want = F.index.astype(str).to_numpy()
        if callable(fast):
            options: dict[str, Any] = {}
            if reasons == "none":
                options["reasons"] = 0
            elif reasons == "at-risk":
                options["reasons_min_probability"] = float(getattr(self.system, "at_risk_probability", 0.5))
            cols = fast(F, **options)
            if not _same_ids(np.asarray(cols["customer_id"], dtype=object), want):
                cols = _aligned_columns(pd.DataFrame(cols, index=pd.RangeIndex(len(F))), want)
        else:
            cols = _aligned_columns(self.system.score_features(F), want)
        cols["cutoff"] = cutoff
        cols["cold_start"] = np.zeros(len(F), dtype=bool)
        cols["model_version"] = self.info.version
        return cols


def _same_ids(got: np.ndarray, want: np.ndarray) -> bool:
    return bool(np.array_equal(got, want.astype(object))) and pd.Index(want).is_unique


def _aligned_columns(frame: pd.DataFrame, want: np.ndarray) -> dict[str, Any]:
    """``frame``'s columns in the order of customer ids ``want`` (one row each; unknown ids get missing)."""
    if not _aligned(frame, want):
        if "customer_id" in frame.columns:
            frame = frame.set_index("customer_id", drop=True)
        frame = frame.reindex(pd.Index(want, name="customer_id")).reset_index()
    # Column arrays without the index (which need not be a range): the caller's frame is left as it was.
    return {str(name): values.array for name, values in frame.items()}


def _aligned(frame: pd.DataFrame, ids: np.ndarray) -> bool:
    """Whether ``frame`` already has ``customer_id`` first, equal to ``ids`` row by row, each id once."""
    if len(frame.columns) == 0 or frame.columns[0] != "customer_id" or len(frame) != len(ids):
        return False
    got = frame["customer_id"]
    if got.dtype.kind not in "OT" and not pd.api.types.is_string_dtype(got.dtype):
        return False
    return bool(np.array_equal(got.to_numpy(dtype=object), ids.astype(object))) and pd.Index(ids).is_unique


def _cold_start(touchpoints: pd.DataFrame, ids: pd.Series, cutoff: pd.Timestamp) -> np.ndarray:
    """Per customer id: no touchpoint before ``cutoff``."""
    before = (touchpoints["ts"] < cutoff).to_numpy()
    cid = touchpoints["customer_id"]
    if isinstance(cid.dtype, pd.CategoricalDtype):
        # Request tables: codes into the categories, no per-row string work.
        seen = np.zeros(len(cid.cat.categories) + 1, dtype=bool)
        seen[cid.cat.codes.to_numpy()[before]] = True  # code -1 (missing) lands in the spare last slot
        seen[-1] = False
        return ~seen[cid.cat.categories.get_indexer(ids)]
    active = cid[before]
    n_events = active.value_counts(sort=False).reindex(ids, fill_value=0)
    return n_events.to_numpy() == 0


# ------------------------------------------------------------------------------ frame → response


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else f


def _str(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return str(value)


def _ladder(name: str, value: Any) -> str | None:
    if isinstance(value, str):
        return value
    f = _num(value)
    names = LADDER_NAMES.get(name)
    if f is None:
        return None
    return names[int(f)] if names and 0 <= int(f) < len(names) else str(int(f))


def _seq(value: Any) -> list:
    if type(value) is list:
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        value = json.loads(value) if value.startswith("[") else [value]
    return list(value)


def _action_parts(action: str | None, channel: Any, offer: Any) -> tuple[str, str | None, str | None]:
    channel, offer = _str(channel), _str(offer)
    if action is None:
        action = "no_contact" if channel is None else f"{channel}:{offer}"
    if channel is None and ":" in action:
        channel, offer = action.split(":", 1)
    return action, channel, offer


def _alternative(alt: Mapping[str, Any]) -> dict[str, Any]:
    """A runner-up action in response form."""
    action, channel, offer = _action_parts(_str(alt.get("action")), alt.get("channel"), alt.get("offer"))
    return {
        "action": action,
        "channel": channel,
        "offer": offer,
        "expected_incremental_value": _num(alt.get("expected_incremental_value")),
    }


def _reason(r: Mapping[str, Any]) -> dict[str, Any]:
    """A churn reason code in response form."""
    return {
        "feature": str(r.get("feature")),
        "label": str(r.get("label", r.get("feature"))),
        "contribution": _num(r.get("contribution")) or 0.0,
    }


def row_to_result(row: Mapping[str, Any]) -> dict[str, Any]:
    """One scored row (engine output) as a ``CustomerScore`` dict."""
    nba = None
    if _str(row.get("nba_action")) is not None or _str(row.get("nba_channel")) is not None:
        action, channel, offer = _action_parts(
            _str(row.get("nba_action")), row.get("nba_channel"), row.get("nba_offer")
        )
        nba = {
            "action": action,
            "channel": channel,
            "offer": offer,
            "expected_incremental_value": _num(row.get("nba_expected_incremental_value")),
            "propensity": _num(row.get("nba_propensity")),
        }
    alternatives = [_alternative(alt) for alt in _seq(row.get("alternatives"))[:MAX_ALTERNATIVES]]
    reasons = [_reason(r) for r in _seq(row.get("churn_reasons"))]
    return {
        "customer_id": str(row["customer_id"]),
        "cold_start": bool(row.get("cold_start", False)),
        "churn_probability": _num(row.get("churn_probability")),
        "churn_reasons": reasons,
        "engagement_index": _num(row.get("engagement_index")),
        "store_ladder": _ladder("store_ladder", row.get("store_ladder")),
        "social_ladder": _ladder("social_ladder", row.get("social_ladder")),
        "in_market_stage": _str(row.get("in_market_stage")),
        "buy_intent_score": _num(row.get("buy_intent_score")),
        "high_engagement_potential": bool(_num(row.get("high_engagement_potential")) or False),
        "next_best_action": nba,
        "alternatives": alternatives,
        "defense_target": bool(_num(row.get("defense_target")) or False),
        "defense_reasons": [str(r) for r in _seq(row.get("defense_reasons"))],
        "no_contact_reason": _str(row.get("no_contact_reason")),
        "model_version": str(row["model_version"]),
    }


def frame_to_results(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Every row of an engine frame as response dicts."""
    return columns_to_results({str(c): values for c, values in frame.items()}, len(frame))


def columns_to_results(cols: Mapping[str, Any], n: int) -> list[dict[str, Any]]:
    """Every row of engine columns (:meth:`ScoringEngine.score_columns`) as response dicts."""
    # Column lists (plain Python values, as to_dict gives) zipped into rows: several times faster than
    # to_dict(orient="records"), which boxes every cell separately.
    names = list(cols)
    columns = [_as_list(cols[name], n) for name in names]
    return [row_to_result(dict(zip(names, row, strict=True))) for row in zip(*columns, strict=True)]


def _as_list(values: Any, n: int) -> list:
    """A column as a list of plain Python values; a scalar (a constant column) repeated ``n`` times."""
    if isinstance(values, list):
        return values
    if isinstance(values, (np.ndarray, pd.Series, pd.Index, pd.api.extensions.ExtensionArray)):
        return values.tolist()
    return [values] * n


def results_to_frame(results: Iterable[Mapping[str, Any]], cutoff: pd.Timestamp) -> pd.DataFrame:
    """Flat table of response rows for files: nested fields as JSON text, cutoff on every row."""
    rows = []
    for r in results:
        nba = r["next_best_action"] or {}
        flat = {k: v for k, v in r.items() if k not in ("next_best_action", *LIST_COLUMNS, "alternatives")}
        flat.update(
            {
                "nba_action": nba.get("action"),
                "nba_channel": nba.get("channel"),
                "nba_offer": nba.get("offer"),
                "nba_expected_incremental_value": nba.get("expected_incremental_value"),
                "nba_propensity": nba.get("propensity"),
                "churn_reasons": json.dumps(r["churn_reasons"]),
                "alternatives": json.dumps(r["alternatives"]),
                "defense_reasons": json.dumps(r["defense_reasons"]),
                "cutoff": cutoff,
            }
        )
        rows.append(flat)
    return pd.DataFrame(rows)


def columns_to_table(cols: Mapping[str, Any], n: int, cutoff: pd.Timestamp) -> pd.DataFrame:
    """``results_to_frame(columns_to_results(cols, n), cutoff)``, built column by column.

    The same values and types (the same conversions run per column instead of per row, and pandas infers
    the types from the same Python values), without a response dict per customer: batch scoring of large
    tables spends most of its conversion time building those.
    """

    def column(name: str) -> list:
        return _as_list(cols[name], n) if name in cols else [None] * n

    def numbers(name: str) -> list:
        values = cols.get(name)
        if isinstance(values, np.ndarray) and values.dtype.kind == "f":
            return [v if math.isfinite(v) else None for v in values.tolist()]
        return [_num(v) for v in column(name)]

    def flags(name: str) -> list:
        values = cols.get(name)
        if isinstance(values, np.ndarray) and values.dtype == bool:
            return values.tolist()
        return [bool(x or False) for x in numbers(name)]

    actions = column("nba_action")
    channels = column("nba_channel")
    offers = column("nba_offer")
    nba: list[tuple] = []
    for a, c, o in zip(actions, channels, offers, strict=True):
        if type(a) is str and (c is None or type(c) is str) and (o is None or type(o) is str) and (c or ":" not in a):
            nba.append((a, c, o))  # what _action_parts returns for plain text, without the call
        elif _str(a) is None and _str(c) is None:
            nba.append((None, None, None))
        else:
            nba.append(_action_parts(_str(a), c, o))
    nba_ev = numbers("nba_expected_incremental_value")
    nba_p = numbers("nba_propensity")
    has_nba = [part[0] is not None for part in nba]
    table = {
        "customer_id": [str(v) for v in column("customer_id")],
        "cold_start": [bool(v) for v in (column("cold_start") if "cold_start" in cols else [False] * n)],
        "churn_probability": numbers("churn_probability"),
        "engagement_index": numbers("engagement_index"),
        "store_ladder": [v if type(v) is str else _ladder("store_ladder", v) for v in column("store_ladder")],
        "social_ladder": [v if type(v) is str else _ladder("social_ladder", v) for v in column("social_ladder")],
        "in_market_stage": _strs(column("in_market_stage")),
        "buy_intent_score": numbers("buy_intent_score"),
        "high_engagement_potential": flags("high_engagement_potential"),
        "defense_target": flags("defense_target"),
        "no_contact_reason": _strs(column("no_contact_reason")),
        "model_version": [str(v) for v in column("model_version")],
        "nba_action": [part[0] for part in nba],
        "nba_channel": [part[1] if ok else None for part, ok in zip(nba, has_nba, strict=True)],
        "nba_offer": [part[2] if ok else None for part, ok in zip(nba, has_nba, strict=True)],
        "nba_expected_incremental_value": [v if ok else None for v, ok in zip(nba_ev, has_nba, strict=True)],
        "nba_propensity": [v if ok else None for v, ok in zip(nba_p, has_nba, strict=True)],
        "churn_reasons": [_reasons_json(v) for v in column("churn_reasons")],
        "alternatives": [_alternatives_json(v) for v in column("alternatives")],
        "defense_reasons": [
            json.dumps([str(r) for r in seq]) if (seq := _seq(v)) else "[]" for v in column("defense_reasons")
        ],
        "cutoff": [cutoff] * n,
    }
    return pd.DataFrame(table)


def _strs(values: list) -> list:
    """``[_str(v) for v in values]``, with strings and None passed through without a call."""
    return [v if v is None or type(v) is str else _str(v) for v in values]


def _reasons_json(value: Any) -> str:
    """A row's churn reason codes as ``results_to_frame`` writes them."""
    seq = _seq(value)
    if not seq:
        return "[]"
    return json.dumps([_reason(r) for r in seq])


_ALT_ORDER = ("action", "channel", "offer", "expected_incremental_value")


def _plain_alternative(alt: Any) -> bool:
    """Already in response form (as the policy writes them): normalising would change nothing."""
    return (
        type(alt) is dict
        and tuple(alt) == _ALT_ORDER  # the response's key order, so the text is the same
        and type(alt["action"]) is str
        and type(alt["channel"]) is str
        and type(alt["offer"]) is str
        and type(alt["expected_incremental_value"]) is float
        and math.isfinite(alt["expected_incremental_value"])
    )


def _alternatives_json(value: Any) -> str:
    """A row's runner-up actions as ``results_to_frame`` writes them."""
    seq = _seq(value)
    if not seq:
        return "[]"
    seq = seq[:MAX_ALTERNATIVES]
    if all(_plain_alternative(alt) for alt in seq):
        # json.dumps's exact text (its separators, quoting and float repr), without a new encoder per row
        return "[" + ", ".join(
            f'{{"action": {_quote(a["action"])}, "channel": {_quote(a["channel"])}, "offer": {_quote(a["offer"])}, '
            f'"expected_incremental_value": {float.__repr__(a["expected_incremental_value"])}}}'
            for a in seq
        ) + "]"
    return json.dumps([_alternative(alt) for alt in seq])
