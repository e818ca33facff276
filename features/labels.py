"""Churn labels beside the features: one (customer, cutoff, label) row per customer active at a cutoff.

Definitions (shared with the simulator's truth):

- **active touch**: an inbound touchpoint whose kind is neither passive (impressions, surveys sent,
  event invitations) nor an exit signal (cancel, unsubscribe); a ``purchase`` always counts, whatever
  its direction.
- **eligible (active) at cutoff c**: signed up before ``c`` (a missing signup date counts as signed
  up), at least one active touch in ``[c - inactivity_days, c)``, and no ``cancel`` after the last
  active touch before ``c`` (a customer who cancelled and came back is eligible again).
- **churn label** for an eligible customer: 1 if there is a ``cancel`` in ``[c, c + horizon_days)``
  or no *own* active touch in that window, else 0. Reactions to the company's outreach (``message_open``,
  ``message_click``, ``offer_redeemed``) keep a customer eligible but do not count as activity in the
  horizon: otherwise every opened message would "retain" its reader, the label would depend on how often
  the company happened to write, and it would differ from the simulator's truth (whose churn label counts
  only the customer's own active episodes; no outreach is sent after the evaluation cutoff).

Eligibility reads only events strictly before the cutoff and the label only events inside the
horizon window, so events after ``c + horizon_days`` never change a row.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

import numpy as np
import pandas as pd

from features.contract.cutoffs import utc_timestamp
from features.contract.schema import DAY_NS, EXIT_KINDS, PASSIVE_KINDS, Tables

# Reactions to outreach: activity for eligibility, not for the label (see the module docstring).
OUTREACH_REACTIONS: frozenset[str] = frozenset({"message_open", "message_click", "offer_redeemed"})



def _ns(s: pd.Series) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch (UTC), whatever the stored resolution."""
    return pd.DatetimeIndex(pd.to_datetime(s, utc=True)).as_unit("ns").asi8


def activity_arrays(tables: Tables) -> tuple[pd.Index, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Customer ids, and per touchpoint: customer code, ts (ns), active-touch flag, cancel flag."""
    ids = pd.Index(tables.customers["customer_id"].astype(str))
    tp = tables.touchpoints
    missing = [c for c in ("customer_id", "ts", "kind", "direction") if c not in tp.columns]
    if missing:
        raise ValueError(f"touchpoints: columns {missing} missing (needed for churn labels)")
    codes = by_text(tp["customer_id"], ids.get_indexer)
    if (codes < 0).any():
        raise ValueError(
            f"touchpoints.customer_id: {int((codes < 0).sum())} rows name customers missing from the "
            "customers table"
        )
    not_active_kinds = np.array(sorted(PASSIVE_KINDS | EXIT_KINDS))
    # one pass over the kinds (a text copy of every row when the column is not categorical): three flags each
    flags = by_text(
        tp["kind"], lambda k: np.column_stack([np.isin(k, not_active_kinds), k == "purchase", k == "cancel"])
    )
    passive, purchase, cancel = flags[:, 0], flags[:, 1], flags[:, 2]
    inbound = by_text(tp["direction"], lambda d: d == "inbound")
    active = (inbound & ~passive) | purchase
    return ids, codes.astype(np.int64), _ns(tp["ts"]), active, cancel


def by_text(col: pd.Series, f: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``f`` of the column's values as text (``col.astype(str)``), per row. For a categorical column ``f`` sees
    each category once and the rows take their category's result: the same values without a text copy of
    every row (22 M strings at 100,000 customers, gigabytes, for the policy trainer's labels)."""
    if not isinstance(col.dtype, pd.CategoricalDtype):
        return f(col.astype(str).to_numpy())
    # a missing value's text last: code -1 picks it
    texts = pd.Series(pd.Categorical([*col.cat.categories, None], categories=col.cat.categories)).astype(str)
    return np.asarray(f(texts.to_numpy()))[col.cat.codes.to_numpy()]


def make_labels(
    tables: Tables,
    cutoffs: Iterable,
    *,
    horizon_days: int = 90,
    inactivity_days: int = 90,
    observed_until=None,
    activity_kinds: Collection[str] | None = None,
    outcome_excludes: Collection[str] = OUTREACH_REACTIONS,
) -> pd.DataFrame:
    """Churn labels for every customer active at each cutoff (see the module docstring).

    Returns columns ``customer_id`` (str), ``cutoff`` (UTC timestamp), ``label`` (int8, 1 = churn),
    ordered by cutoff then customer order. ``observed_until`` (optional): the end of the observed log;
    a cutoff whose horizon ends after it raises, because its labels would be censored.
    ``activity_kinds`` (optional): only touchpoints of these kinds count as activity, whatever their
    direction (e.g. ``("purchase",)`` for transaction-only data: churn = no purchase in the horizon).
    ``outcome_excludes``: activity kinds that count for eligibility but not in the horizon (default:
    reactions to outreach; pass ``()`` to count them).
    """
    if horizon_days <= 0 or inactivity_days <= 0:
        raise ValueError(f"horizon_days ({horizon_days}) and inactivity_days ({inactivity_days}) must be > 0")
    cut_list = [utc_timestamp(c) for c in cutoffs]
    if not cut_list:
        raise ValueError("make_labels: no cutoffs given")
    if observed_until is not None:
        end = utc_timestamp(observed_until)
        late = [c for c in cut_list if c + pd.Timedelta(days=horizon_days) > end]
        if late:
            raise ValueError(
                f"cutoffs {[str(c.date()) for c in late]}: horizon of {horizon_days} days ends after the "
                f"observed log ({end}); their labels would be censored"
            )
    ids, codes, ts, active, cancel = activity_arrays(tables)
    if activity_kinds is not None:
        active = by_text(tables.touchpoints["kind"], lambda k: np.isin(k, list(activity_kinds)))
    n = len(ids)
    signup = tables.customers["signup_ts"] if "signup_ts" in tables.customers.columns else None
    signup_ns = _ns(signup) if signup is not None else np.full(n, np.iinfo(np.int64).min)
    signup_known = ~pd.isna(signup).to_numpy() if signup is not None else np.zeros(n, bool)

    a_codes, a_ts = codes[active], ts[active]
    own = ~by_text(tables.touchpoints["kind"], lambda k: np.isin(k, list(outcome_excludes)))[active]
    c_codes, c_ts = codes[cancel], ts[cancel]
    never = np.iinfo(np.int64).min
    frames = []
    for c in cut_list:
        c_ns = c.value
        h_ns = c_ns + horizon_days * DAY_NS
        before = a_ts < c_ns
        last_active = np.full(n, never, np.int64)
        np.maximum.at(last_active, a_codes[before], a_ts[before])
        c_before = c_ts < c_ns
        last_cancel = np.full(n, never, np.int64)
        np.maximum.at(last_cancel, c_codes[c_before], c_ts[c_before])
        signed_up = ~signup_known | (signup_ns < c_ns)
        eligible = signed_up & (last_active >= c_ns - inactivity_days * DAY_NS) & (last_cancel < last_active)
        win = (a_ts >= c_ns) & (a_ts < h_ns) & own
        future_active = np.bincount(a_codes[win], minlength=n) > 0
        cwin = (c_ts >= c_ns) & (c_ts < h_ns)
        future_cancel = np.bincount(c_codes[cwin], minlength=n) > 0
        label = (future_cancel | ~future_active)[eligible].astype(np.int8)
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": ids[eligible].astype(str),
                    "cutoff": pd.Series([c] * int(eligible.sum()), dtype="datetime64[ns, UTC]"),
                    "label": label,
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out["customer_id"] = out["customer_id"].astype(str)
    return out


def monthly_cutoffs(first, last) -> list[pd.Timestamp]:
    """Month starts from ``first`` to ``last`` inclusive (UTC), the usual training-set grid."""
    start, end = utc_timestamp(first), utc_timestamp(last)
    return (
        [
            utc_timestamp(t)
            for t in pd.date_range(start.tz_localize(None).normalize(), end.tz_localize(None), freq="MS")
        ]
        if start <= end
        else []
    )
