"""When a value model is fitted and judged: the horizon, the evaluation, validation and training cutoffs.

Everything is temporal and point in time. A model judged at cutoff ``c`` on the spend realised in
``[c, c + H)`` is fitted on training cutoffs whose own spend windows end by ``c``; its blend weight is
chosen one horizon earlier (validation cutoff ``c - H``) by models fitted on windows ending by then. The
horizon is the one asked for, or 365 days when the data are long enough for that and 90 days otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract.schema import Tables

DEFAULT_HORIZONS: tuple[int, ...] = (365, 90)


@dataclass(frozen=True)
class FitPlan:
    """The cutoffs of one fit: ``training`` (spend windows end by ``at``) and ``at`` (BG/NBD calibration end)."""

    at: pd.Timestamp
    training: list[pd.Timestamp]


@dataclass(frozen=True)
class ValueSchedule:
    """A horizon and the fits it needs: ``validation`` chooses the blend, ``final`` is judged at ``final.at``."""

    horizon_days: int
    validation: FitPlan
    final: FitPlan
    data_start: pd.Timestamp
    data_end: pd.Timestamp

    def as_dict(self) -> dict:
        return {
            "horizon_days": self.horizon_days,
            "data": [str(self.data_start.date()), str(self.data_end.date())],
            "validation_cutoff": str(self.validation.at.date()),
            "validation_training_cutoffs": [str(c.date()) for c in self.validation.training],
            "evaluation_cutoff": str(self.final.at.date()),
            "training_cutoffs": [str(c.date()) for c in self.final.training],
        }


def data_span(tables: Tables) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First day with a touchpoint and the day after the last one (UTC midnights)."""
    ts = tables.touchpoints["ts"]
    if not len(ts):
        raise ValueError("touchpoints: the log is empty, so there is no history to value customers on")
    return ts.min().floor("D"), ts.max().floor("D") + pd.Timedelta(days=1)


def training_cutoffs(
    last: pd.Timestamp, start: pd.Timestamp, *, step_days: int = 30, max_cutoffs: int = 6, min_history_days: int = 90
) -> list[pd.Timestamp]:
    """Up to ``max_cutoffs`` cutoffs ``last, last - step, ...`` with at least ``min_history_days`` of data
    before each; earliest first."""
    out = []
    for k in range(max_cutoffs):
        c = last - pd.Timedelta(days=k * step_days)
        if c < start + pd.Timedelta(days=min_history_days):
            break
        out.append(c)
    return out[::-1]


def fit_plan(at: pd.Timestamp, horizon_days: int, start: pd.Timestamp, **options) -> FitPlan:
    """The training cutoffs of a fit at ``at``: spend windows of ``horizon_days`` ending by ``at``."""
    return FitPlan(at, training_cutoffs(at - pd.Timedelta(days=horizon_days), start, **options))


def value_schedule(
    tables: Tables,
    *,
    horizon_days: int | None = None,
    evaluate_at: pd.Timestamp | None = None,
    step_days: int = 30,
    max_cutoffs: int = 6,
    min_history_days: int = 90,
) -> ValueSchedule:
    """The schedule for ``tables``: judged one horizon before the data end, or fitted for decisions at
    ``evaluate_at`` (then nothing after it is needed).

    ``horizon_days`` None tries 365 then 90 days; a given horizon the data cannot hold is an error.
    """
    start, end = data_span(tables)
    options = {"step_days": step_days, "max_cutoffs": max_cutoffs, "min_history_days": min_history_days}
    for h in (horizon_days,) if horizon_days is not None else DEFAULT_HORIZONS:
        at = evaluate_at if evaluate_at is not None else end - pd.Timedelta(days=h)
        if evaluate_at is None and at + pd.Timedelta(days=h) > end:
            continue  # judged on realised spend: the horizon after the evaluation cutoff must be in the data
        validation = fit_plan(at - pd.Timedelta(days=h), h, start, **options)
        if validation.training:
            return ValueSchedule(h, validation, fit_plan(at, h, start, **options), start, end)
    span = (end - start).days
    raise ValueError(
        f"touchpoints span {span} days ({start.date()}..{end.date()}): too short for a temporal value model with "
        f"horizon {horizon_days or 'of 365 or 90'} days (needs {min_history_days} days of history, then three "
        "horizons: training, validation and evaluation windows)"
    )


def existing_customers(tables: Tables, cutoff: pd.Timestamp) -> pd.Index:
    """Customers with a touchpoint before ``cutoff`` (the others are not customers yet at that cutoff)."""
    tp = tables.touchpoints
    ids = pd.unique(tp.loc[(tp["ts"] < cutoff).to_numpy(), "customer_id"].astype(str))
    known = tables.customers["customer_id"].astype(str)
    return pd.Index(known[known.isin(ids)].to_numpy(), name="customer_id")


def realised_spend(tables: Tables, cutoff: pd.Timestamp, horizon_days: int, ids: pd.Index) -> np.ndarray:
    """Purchase amounts in ``[cutoff, cutoff + horizon)`` per customer of ``ids`` (0 without purchases)."""
    tp = tables.touchpoints
    end = cutoff + pd.Timedelta(days=horizon_days)
    m = ((tp["kind"] == "purchase") & (tp["ts"] >= cutoff) & (tp["ts"] < end)).to_numpy()
    amount = tp["amount"].to_numpy(dtype=float, na_value=np.nan)[m] if "amount" in tp else np.zeros(int(m.sum()))
    s = pd.Series(np.nan_to_num(amount)).groupby(tp["customer_id"][m].astype(str).to_numpy()).sum()
    return np.maximum(s.reindex(ids).fillna(0.0).to_numpy(dtype=float), 0.0)
