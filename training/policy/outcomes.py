"""The outcome of every logged decision under the configured objective, and why a decision has none.

A decision made on campaign day ``s`` has the outcome window ``[s, s + horizon)``. For retention the outcome
is the churn label (:func:`features.labels.make_labels`, counting only the customer's own activity) and only
customers with their own activity in the ``labels.active_within_days`` before ``s`` get one. For the campaign objectives
(:mod:`features.decision.objective`) every logged customer gets one unless a lookback is set. A decision
without an outcome is dropped with a reason, so the report can count what was left out and why.

Everything works on integer customer codes (positions in ``customers``): the per-campaign cost is a few
``bincount`` calls, never a set operation over text ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract.schema import DAY_NS, EXIT_KINDS, KINDS, PASSIVE_KINDS, Tables
from features.decision.config import PolicyConfig
from features.decision.objective import CONVERSION_KINDS, SPEND_KINDS, VISIT_KINDS
from features.labels import OUTREACH_REACTIONS, activity_arrays, by_text, make_labels

# The outcome counts only the customer's own activity: a reaction to our outreach (an open, a click, a
# redemption) is not retention, or every opened message would "retain" its reader by construction.
ORGANIC_ACTIVITY: tuple[str, ...] = tuple(
    k for k in KINDS if k not in PASSIVE_KINDS and k not in EXIT_KINDS and k not in OUTREACH_REACTIONS
)
# Reasons a logged decision has no outcome (the keys of the report's ``dropped_decisions``).
SIGNED_UP_AFTER = "signed_up_after_campaign"
INACTIVE_BEFORE = "inactive_before_campaign"
CANCELLED_BEFORE = "cancelled_before_campaign"
WINDOW_INCOMPLETE = "outcome_window_incomplete"
NOT_IN_LATEST = "older_than_max_campaigns"


def organic_labels(tables: Tables, cutoffs, *, horizon_days: int, inactivity_days: int = 90) -> pd.DataFrame:
    """Churn labels at ``cutoffs`` counting only the customer's own activity (:data:`ORGANIC_ACTIVITY`)."""
    return make_labels(
        tables, cutoffs, horizon_days=horizon_days, inactivity_days=inactivity_days, activity_kinds=ORGANIC_ACTIVITY
    )


@dataclass(frozen=True)
class TouchArrays:
    """The touchpoint log as arrays over customer codes: what every campaign's outcome is computed from."""

    ids: pd.Index  # customer ids (text) in ``customers`` order: code i is ids[i]
    code: np.ndarray
    ts: np.ndarray  # int64 ns UTC
    kind: np.ndarray  # code into KINDS (-1: unknown)
    inbound: np.ndarray
    amount: np.ndarray
    own: np.ndarray  # the customer's own activity (ORGANIC_ACTIVITY): what the lookback looks for
    signup: np.ndarray  # int64 ns, or the minimum when unknown

    @classmethod
    def of(cls, tables: Tables) -> TouchArrays:
        ids, code, ts, _, _ = activity_arrays(tables)
        tp = tables.touchpoints
        amount = tp["amount"].to_numpy(dtype=float, na_value=np.nan) if "amount" in tp else np.full(len(tp), np.nan)
        signup = tables.customers.get("signup_ts")
        never = np.iinfo(np.int64).min
        if signup is None:
            signup_ns = np.full(len(ids), never, np.int64)
        else:
            s = pd.DatetimeIndex(pd.to_datetime(signup, utc=True)).as_unit("ns")
            signup_ns = np.where(s.isna(), never, s.asi8)
        kind = by_text(tp["kind"], lambda k: pd.Categorical(k, categories=list(KINDS)).codes).astype(np.int64)
        touch = cls(
            ids=ids,
            code=code,
            ts=ts,
            kind=kind,
            inbound=by_text(tp["direction"], lambda d: d == "inbound"),
            amount=np.nan_to_num(amount),
            own=np.zeros(len(kind), bool),
            signup=signup_ns,
        )
        touch.own[:] = touch.of_kinds(ORGANIC_ACTIVITY)
        return touch

    def of_kinds(self, kinds) -> np.ndarray:
        """Touchpoints of any of ``kinds`` (an integer lookup: no text comparison per row)."""
        lut = np.append(np.isin(np.array(KINDS), np.array(list(kinds))), False)  # slot -1: unknown kinds
        return lut[self.kind]

    def window(self, start: pd.Timestamp, days: float) -> np.ndarray:
        """Touchpoints in ``[start, start + days)``."""
        return (self.ts >= start.value) & (self.ts < start.value + int(days * DAY_NS))

    def any_of(self, mask: np.ndarray) -> np.ndarray:
        """Per customer: whether any touchpoint of ``mask`` is theirs."""
        return np.bincount(self.code[mask], minlength=len(self.ids)) > 0

    def total(self, mask: np.ndarray) -> np.ndarray:
        """Per customer: the sum of the amounts of the touchpoints of ``mask``."""
        return np.bincount(self.code[mask], weights=self.amount[mask], minlength=len(self.ids))


@dataclass(frozen=True)
class CampaignOutcomes:
    """Per customer code at one campaign day: the outcome (NaN = none), the reason there is none, and the
    purchase amount per day in the window (what the value model learns)."""

    outcome: np.ndarray
    reason: np.ndarray  # object: None where there is an outcome
    spend_per_day: np.ndarray


def campaign_outcome(
    touch: TouchArrays, kinds: tuple[str, ...], start: pd.Timestamp, config: PolicyConfig
) -> np.ndarray:
    """Per customer: the campaign objective's outcome in the window after ``start``."""
    win = touch.window(start, config.horizon_days) & touch.of_kinds(kinds)
    if config.objective in ("spend", "margin"):
        return touch.total(win)
    if config.objective == "visit":
        win &= touch.inbound | touch.of_kinds(("purchase",))
    return touch.any_of(win).astype(float)


def _lookback_reasons(touch: TouchArrays, start: pd.Timestamp, config: PolicyConfig) -> np.ndarray:
    """Per customer, why the label rules leave them out at ``start`` (None: they get an outcome)."""
    n = len(touch.ids)
    reason = np.full(n, None, dtype=object)
    lookback = config.labels.active_within_days
    if lookback is not None:
        recent = touch.own & touch.window(start - pd.Timedelta(days=lookback), lookback)
        reason[~touch.any_of(recent)] = INACTIVE_BEFORE
    if config.labels.signed_up_before_campaign:
        reason[touch.signup >= start.value] = SIGNED_UP_AFTER
    return reason


def retention_labels(tables: Tables, cutoffs: list[pd.Timestamp], config: PolicyConfig) -> pd.DataFrame:
    """The churn labels of every campaign day at once (one pass over the log per cutoff inside)."""
    lookback = config.labels.active_within_days or 365_000  # None: any own activity ever
    return organic_labels(tables, cutoffs, horizon_days=config.horizon_days, inactivity_days=lookback)


def outcomes_at(
    touch: TouchArrays, start: pd.Timestamp, config: PolicyConfig, labels: pd.DataFrame | None = None
) -> CampaignOutcomes:
    """Every customer's outcome (or the reason for none) for a decision on campaign day ``start``; retention
    reads its churn labels from ``labels`` (:func:`retention_labels`)."""
    horizon = config.horizon_days
    purchases = touch.window(start, horizon) & touch.of_kinds(("purchase",))
    spend_per_day = touch.total(purchases) / horizon
    reason = _lookback_reasons(touch, start, config)
    objective = config.objective
    if objective == "retention":
        if labels is None:
            raise ValueError("outcomes_at: the retention objective needs its churn labels")
        labels = labels[labels["cutoff"] == start]
        outcome = np.full(len(touch.ids), np.nan)
        pos = touch.ids.get_indexer(labels["customer_id"].astype(str))
        outcome[pos[pos >= 0]] = labels["label"].to_numpy(dtype=float)[pos >= 0]
        # Without a label and not left out by lookback: signed up after it, or cancelled before it (labels.py).
        unlabelled = np.isnan(outcome) & pd.isna(reason)
        reason[unlabelled] = np.where(touch.signup[unlabelled] >= start.value, SIGNED_UP_AFTER, CANCELLED_BEFORE)
        outcome[~pd.isna(reason)] = np.nan
        return CampaignOutcomes(outcome, reason, spend_per_day)
    kinds = {"visit": VISIT_KINDS, "conversion": CONVERSION_KINDS}.get(objective, SPEND_KINDS)
    outcome = campaign_outcome(touch, kinds, start, config)
    outcome = np.where(pd.isna(reason), outcome, np.nan)
    return CampaignOutcomes(outcome, reason, spend_per_day)
