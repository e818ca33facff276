"""Engine output → the service's response: per-customer result dicts and the flat table batch writes.

:func:`columns_to_results` turns :meth:`~serving.engine.ScoringEngine.score_columns` into ``CustomerScore``
dicts (ladders as names, runner-up actions and churn reasons normalised to response form);
:func:`columns_to_table` builds the flat file table with the same values column by column, and
:func:`results_to_frame` flattens response dicts into that table. Pure code: no BentoML, no files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

import numpy as np
import pandas as pd

from features.contract.schema import SOCIAL_LADDER, STORE_LADDER

LADDER_NAMES: dict[str, tuple[str, ...]] = {
    "store_ladder": STORE_LADDER,
    "social_ladder": SOCIAL_LADDER,
}
LIST_COLUMNS: tuple[str, ...] = ("churn_reasons", "alternatives", "defense_reasons")
MAX_ALTERNATIVES = 3


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else f


def _int(value: Any) -> int | None:
    f = _num(value)
    return None if f is None else int(f)


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


def _value(value: Any) -> bool | float | str | None:
    """A reason's customer value in response form: true/false, a finite number, text, or None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return bool(value)
    return _num(value)


def _reason(r: Mapping[str, Any]) -> dict[str, Any]:
    """A churn reason code in response form (``value`` and ``attribute`` are None for older models' reasons)."""
    return {
        "feature": str(r.get("feature")),
        "label": str(r.get("label", r.get("feature"))),
        "contribution": _num(r.get("contribution")) or 0.0,
        "value": _value(r.get("value")),
        "attribute": _str(r.get("attribute")),
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
        "customer_value": _num(row.get("customer_value")),
        "value_decile": _int(row.get("value_decile")),
        "persona": _str(row.get("persona")),
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
    src = _EngineColumns(cols, n)
    column, numbers, flags = src.column, src.numbers, src.flags
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
        "customer_value": numbers("customer_value"),
        "value_decile": [_int(v) for v in column("value_decile")],
        "persona": _strs(column("persona")),
        "defense_target": flags("defense_target"),
        "no_contact_reason": _strs(column("no_contact_reason")),
        "model_version": [str(v) for v in column("model_version")],
        **_nba_table(src),
        "churn_reasons": [_reasons_json(v) for v in column("churn_reasons")],
        "alternatives": [_alternatives_json(v) for v in column("alternatives")],
        "defense_reasons": [
            json.dumps([str(r) for r in seq]) if (seq := _seq(v)) else "[]" for v in column("defense_reasons")
        ],
        "cutoff": [cutoff] * n,
    }
    return pd.DataFrame(table)


@dataclass(frozen=True)
class _EngineColumns:
    """Engine output columns read as lists of ``n`` plain Python values (an absent column reads as missing)."""

    cols: Mapping[str, Any]
    n: int

    def column(self, name: str) -> list:
        return _as_list(self.cols[name], self.n) if name in self.cols else [None] * self.n

    def numbers(self, name: str) -> list:
        values = self.cols.get(name)
        if isinstance(values, np.ndarray) and values.dtype.kind == "f":
            return [v if math.isfinite(v) else None for v in values.tolist()]
        return [_num(v) for v in self.column(name)]

    def flags(self, name: str) -> list:
        values = self.cols.get(name)
        if isinstance(values, np.ndarray) and values.dtype == bool:
            return values.tolist()
        return [bool(x or False) for x in self.numbers(name)]


def _nba_table(src: _EngineColumns) -> dict[str, list]:
    """The flat table's ``nba_*`` columns: the next best action's parts, all missing where there is none."""
    nba: list[tuple] = []
    for a, c, o in zip(src.column("nba_action"), src.column("nba_channel"), src.column("nba_offer"), strict=True):
        if type(a) is str and (c is None or type(c) is str) and (o is None or type(o) is str) and (c or ":" not in a):
            nba.append((a, c, o))  # what _action_parts returns for plain text, without the call
        elif _str(a) is None and _str(c) is None:
            nba.append((None, None, None))
        else:
            nba.append(_action_parts(_str(a), c, o))
    nba_ev = src.numbers("nba_expected_incremental_value")
    nba_p = src.numbers("nba_propensity")
    has_nba = [part[0] is not None for part in nba]
    return {
        "nba_action": [part[0] for part in nba],
        "nba_channel": [part[1] if ok else None for part, ok in zip(nba, has_nba, strict=True)],
        "nba_offer": [part[2] if ok else None for part, ok in zip(nba, has_nba, strict=True)],
        "nba_expected_incremental_value": [v if ok else None for v, ok in zip(nba_ev, has_nba, strict=True)],
        "nba_propensity": [v if ok else None for v, ok in zip(nba_p, has_nba, strict=True)],
    }

def _strs(values: list) -> list:
    """``[_str(v) for v in values]``, with strings and None passed through without a call."""
    return [v if v is None or type(v) is str else _str(v) for v in values]


def _reasons_json(value: Any) -> str:
    """A row's churn reason codes as ``results_to_frame`` writes them."""
    seq = _seq(value)
    if not seq:
        return "[]"
    if all(_plain_reason(r) for r in seq):
        # json.dumps's exact text of the normalised reasons, without building them and a new encoder per row
        # (a third of the flat table's time when every customer has reasons)
        return "[" + ", ".join(
            f'{{"feature": {_quote(r["feature"])}, "label": {_quote(r["label"])}, '
            f'"contribution": {float.__repr__(r["contribution"])}, "value": {_value_json(r.get("value"))}, '
            f'"attribute": {"null" if (a := r.get("attribute")) is None else _quote(a)}}}'
            for r in seq
        ) + "]"
    return json.dumps([_reason(r) for r in seq])


def _plain_reason(r: Any) -> bool:
    """A reason that :func:`_reason` would leave as it is: text names, a finite non-zero contribution (zero
    and missing ones become 0.0), a value that is missing, text, a flag or a finite float, a text attribute."""
    if type(r) is not dict or type(r.get("feature")) is not str or type(r.get("label")) is not str:
        return False
    c = r.get("contribution")
    if type(c) is not float or not math.isfinite(c) or c == 0.0:
        return False
    v = r.get("value")
    if not (v is None or type(v) in (str, bool) or (type(v) is float and math.isfinite(v))):
        return False
    a = r.get("attribute")
    return a is None or type(a) is str


def _value_json(v: str | bool | float | None) -> str:
    """A plain reason value as json.dumps writes it."""
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    return _quote(v) if type(v) is str else float.__repr__(v)


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
