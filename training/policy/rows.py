"""The policy's training rows: one per logged decision, with its features, action, propensity and outcome.

For every logged campaign date ``s`` (the day of a campaign's first send) whose outcome window
``[s, s + horizon)`` ends by the evaluation cutoff: the features of each logged customer at cutoff ``s``
(:func:`features.builders.pipeline.build_features` semantics: only events before ``s``), the logged action (a
holdout row is ``no_contact``), its propensity, and the churn label within the horizon after ``s``
(:func:`features.labels.make_labels`, counting only the customer's own activity).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from features.contract.catalogue import NO_CONTACT, Catalogue, action_id
from features.contract.schema import EXIT_KINDS, KINDS, PASSIVE_KINDS, Tables
from features.labels import OUTREACH_REACTIONS, make_labels

# The outcome counts only the customer's own activity: a reaction to our outreach (an open, a click, a
# redemption) is not retention, or every opened message would "retain" its reader by construction.
ORGANIC_ACTIVITY: tuple[str, ...] = tuple(
    k for k in KINDS if k not in PASSIVE_KINDS and k not in EXIT_KINDS and k not in OUTREACH_REACTIONS
)


def report_progress(progress: Callable[[str], None] | None, msg: str) -> None:
    """Pass ``msg`` to the caller's progress callback, if any."""
    if progress is not None:
        progress(msg)


def logged_actions(outreach: pd.DataFrame, catalogue: Catalogue) -> np.ndarray:
    """The catalogue action id of every outreach row (holdout rows are ``no_contact``)."""
    hold = outreach["holdout"].fillna(False).to_numpy(bool) if "holdout" in outreach else np.zeros(len(outreach), bool)
    ids = np.array(
        [
            action_id(str(c), str(o)) if not h else NO_CONTACT
            for c, o, h in zip(outreach["channel"].astype(object), outreach["offer"], hold, strict=True)
        ],
        dtype=object,
    )
    known = set(catalogue.ids)
    bad = ~np.isin(ids, list(known))
    if bad.any():
        ex = pd.unique(ids[bad])[:5].tolist()
        raise ValueError(
            f"outreach: {int(bad.sum())} rows have a channel/offer not in the action catalogue "
            f"(e.g. {ex}); give a catalogue that lists them"
        )
    return ids


def logged_propensities(outreach: pd.DataFrame, actions: np.ndarray) -> np.ndarray:
    """The logged propensity of every outreach row; where missing, its campaign's empirical action frequency."""
    prop = outreach["propensity"].to_numpy(float) if "propensity" in outreach else np.full(len(outreach), np.nan)
    if np.isnan(prop).any():
        # Imported logs may lack propensities: use each campaign's empirical action frequencies.
        n = len(outreach)
        camp = outreach["campaign_id"].astype(str).to_numpy() if "campaign_id" in outreach else np.zeros(n)
        freq = pd.Series(1.0, index=range(n)).groupby([camp, actions]).transform("sum")
        size = pd.Series(1.0, index=range(n)).groupby(camp).transform("sum")
        prop = np.where(np.isnan(prop), (freq / size).to_numpy(), prop)
    return prop


def campaign_cutoffs(
    outreach: pd.DataFrame, *, horizon_days: int, until: pd.Timestamp, max_campaigns: int | None = None
) -> list[pd.Timestamp]:
    """Campaign decision dates (day of first send) whose outcome window ends by ``until``; latest last."""
    if "campaign_id" in outreach and outreach["campaign_id"].notna().all():
        starts = outreach.groupby(outreach["campaign_id"].astype(str))["ts"].min()
    else:
        starts = pd.Series(outreach["ts"].dt.floor("D").unique())
    days = sorted({ts.floor("D") for ts in starts})
    days = [d for d in days if d + pd.Timedelta(days=horizon_days) <= until]
    return days[-max_campaigns:] if max_campaigns else days


def spend_per_day(tables: Tables, cutoff: pd.Timestamp, horizon_days: int) -> pd.Series:
    """Purchase amount per day in ``[cutoff, cutoff + horizon)`` per customer (0 without purchases)."""
    tp = tables.touchpoints
    end = cutoff + pd.Timedelta(days=horizon_days)
    m = (tp["kind"] == "purchase") & (tp["ts"] >= cutoff) & (tp["ts"] < end)
    amount = tp.loc[m, "amount"].fillna(0.0) if "amount" in tp else pd.Series(0.0, index=tp.index[m])
    s = amount.groupby(tp.loc[m, "customer_id"].astype(str).to_numpy()).sum()
    return (s / horizon_days).reindex(tables.customers["customer_id"].astype(str)).fillna(0.0)


def features_at(tables: Tables, cutoff: pd.Timestamp, pipeline) -> pd.DataFrame:
    """Every customer's features at ``cutoff``, indexed by customer id as text."""
    from features.builders.pipeline import build_features

    F = build_features(tables, cutoff, pipeline)
    F.index = F.index.astype(str)
    return F


def organic_labels(tables: Tables, cutoffs, *, horizon_days: int) -> pd.DataFrame:
    """Churn labels at ``cutoffs`` counting only the customer's own activity (:data:`ORGANIC_ACTIVITY`)."""
    return make_labels(tables, cutoffs, horizon_days=horizon_days, activity_kinds=ORGANIC_ACTIVITY)


def training_rows(
    tables: Tables,
    cutoffs: list[pd.Timestamp],
    catalogue: Catalogue,
    *,
    horizon_days: int,
    pipeline=None,
    labels_fn: Callable | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feature rows and outcomes of every logged decision at the given campaign cutoffs.

    Returns ``(X, rows)``: ``X`` the features (one row per logged decision), ``rows`` with ``customer_id,
    cutoff, action, propensity, label, spend_per_day``. Decisions of customers not active before the
    cutoff (no label) are dropped.
    """
    labels_fn = labels_fn or organic_labels
    if tables.outreach is None or len(tables.outreach) == 0:
        raise ValueError("outreach: the table is missing or empty; the policy learns from logged outreach")
    data = tables.without_truth()
    out = data.outreach
    actions = logged_actions(out, catalogue)
    prop = logged_propensities(out, actions)
    labels = labels_fn(data, cutoffs, horizon_days=horizon_days)
    labels = labels.assign(
        customer_id=labels["customer_id"].astype(str), cutoff=pd.to_datetime(labels["cutoff"], utc=True)
    )
    day = out["ts"].dt.floor("D")
    Xs, metas = [], []
    for s in cutoffs:
        t0 = time.time()
        sel = ((day >= s) & (day < s + pd.Timedelta(days=1))).to_numpy()
        if not sel.any():
            continue
        F = features_at(data, s, pipeline)
        lab = labels[labels["cutoff"] == s].set_index("customer_id")["label"]
        cid = out.loc[sel, "customer_id"].astype(str).to_numpy()
        keep = np.isin(cid, lab.index.to_numpy())
        cid = cid[keep]
        spend = spend_per_day(data, s, horizon_days)
        meta = pd.DataFrame(
            {
                "customer_id": cid,
                "cutoff": s,
                "action": actions[sel][keep],
                "propensity": prop[sel][keep],
                "label": lab.reindex(cid).to_numpy().astype(int),
                "spend_per_day": spend.reindex(cid).to_numpy(),
            }
        )
        Xs.append(F.loc[cid].reset_index(drop=True))
        metas.append(meta)
        report_progress(progress, f"  campaign {s.date()}: {len(meta):,} logged decisions ({time.time() - t0:.1f}s)")
    if not Xs:
        raise ValueError(f"outreach: no logged decisions at the campaign cutoffs {[str(c.date()) for c in cutoffs]}")
    return pd.concat(Xs, ignore_index=True), pd.concat(metas, ignore_index=True)


def split_customers(customer_ids: pd.Series, share: float, rng: np.random.Generator) -> np.ndarray:
    """Held-out customer ids (a random ``share`` of all customers)."""
    ids = np.asarray(pd.unique(customer_ids.astype(str)))
    return ids[rng.random(len(ids)) < share]
