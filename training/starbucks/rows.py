"""The Starbucks log as learning rows: the offer catalogue, one row per offer receipt, and the events around it.

A row is an offer receipt (person, time, wave, campaign, offer, logging propensity). Covariates
(:mod:`training.starbucks.covariates`) and outcomes (:mod:`training.starbucks.outcomes`) are both read off
the same pairs of a receipt and an event of its person (:func:`receipt_event_pairs`), before and after
the receipt respectively.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract.schema import Tables

HOUR = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)
OFFER_TYPES: tuple[str, ...] = ("bogo", "discount", "informational")
CHANNEL_SET: tuple[str, ...] = ("web", "email", "mobile", "social")


def offer_catalogue(outreach: pd.DataFrame) -> pd.DataFrame:
    """The portfolio offers (sorted by name) with type, reward, min spend, validity days and channel flags."""
    sent = outreach[~holdout_mask(outreach)]
    cols = ["offer_type", "reward", "difficulty", "duration_days", "channels"]
    missing = [c for c in ["offer", *cols] if c not in sent.columns]
    if missing:
        raise ValueError(f"outreach: missing column(s) {missing} ({len(sent)} offer rows); the Starbucks "
                         "evaluation reads tables from features.sources.importers.starbucks.import_starbucks")
    cat = sent.groupby("offer", sort=True)[cols].first()
    for ch in CHANNEL_SET:
        cat[f"via_{ch}"] = [float(ch in str(s).split(",")) for s in cat["channels"]]
    return cat


def holdout_mask(outreach: pd.DataFrame) -> np.ndarray:
    """Which outreach rows are holdout rows (no offer sent); none when the column is absent."""
    if "holdout" not in outreach:
        return np.zeros(len(outreach), bool)
    return outreach["holdout"].fillna(False).to_numpy(bool)


def receipt_rows(tables: Tables) -> pd.DataFrame:
    """One row per offer receipt: person, receipt time, wave, campaign, offer, action index, propensity.

    Holdout rows (``import_starbucks(..., holdout=True)``) are dropped and the offer propensities turned
    back into the probability of the offer given a receipt (``p / (1 - p_holdout)``): only offers are
    compared here.
    """
    out = tables.outreach
    if out is None or len(out) == 0:
        raise ValueError("outreach: the table is missing or empty; the Starbucks evaluation needs offer receipts")
    hold = holdout_mask(out)
    sent = out[~hold]
    prop = sent["propensity"].to_numpy(float)
    if hold.any():
        prop = prop / (1.0 - float(np.nanmedian(out.loc[hold, "propensity"].to_numpy(float))))
    bad = ~np.isfinite(prop) | (prop <= 0) | (prop > 1)
    if bad.any():
        raise ValueError(f"outreach: {int(bad.sum())} of {len(prop)} offer rows without a propensity in (0, 1]")
    cat = offer_catalogue(out)
    ts = pd.to_datetime(sent["ts"], utc=True)
    waves = np.sort(ts.unique())
    rows = pd.DataFrame({
        "customer_id": sent["customer_id"].astype(str).to_numpy(),
        "ts": ts.to_numpy(),
        "wave": np.searchsorted(waves, ts.to_numpy()),
        "campaign_id": sent["campaign_id"].astype(str).to_numpy(),
        "offer": sent["offer"].astype(str).to_numpy(),
        "action": cat.index.get_indexer(sent["offer"].astype(str)),
        "propensity": prop,
    })
    rows["ts"] = pd.to_datetime(rows["ts"], utc=True)
    return rows.sort_values(["customer_id", "ts", "offer"], kind="stable").reset_index(drop=True)


def person_events(tables: Tables) -> pd.DataFrame:
    """Transactions, views and completions keyed by person (``kind``, ``ts``, amount, reward, offer, campaign)."""
    tp = tables.touchpoints
    ev = tp.loc[tp["kind"].isin(["purchase", "message_open", "offer_redeemed"]).to_numpy()]

    def col(name: str, kind) -> np.ndarray:
        if name not in ev:
            return np.full(len(ev), np.nan if kind is float else None, dtype=kind)
        return ev[name].to_numpy(float) if kind is float else ev[name].astype(object).to_numpy()

    return pd.DataFrame({
        "customer_id": ev["customer_id"].astype(str).to_numpy(),
        "ts": pd.to_datetime(ev["ts"], utc=True).to_numpy(),
        "kind": ev["kind"].astype(str).to_numpy(),
        "amount": col("amount", float),
        "discount": col("discount", float),
        "offer_id": col("offer_id", object),
        "campaign_id": col("campaign_id", object),
    })


def receipt_event_pairs(rows: pd.DataFrame, ev: pd.DataFrame) -> pd.DataFrame:
    """Every (receipt row, event of the same person) pair with the event's hours after the receipt."""
    left = pd.DataFrame({"row": np.arange(len(rows)), "customer_id": rows["customer_id"].to_numpy(),
                         "r_ts": pd.to_datetime(rows["ts"], utc=True).to_numpy()})
    m = left.merge(ev, on="customer_id", how="inner")
    m["dt_h"] = (m["ts"] - m["r_ts"]) / HOUR
    return m


def per_row(values: pd.Series | None, rows: np.ndarray, n: int, how: str = "sum") -> np.ndarray:
    """Aggregate ``values`` (or counts, when ``None``) by receipt row into a length-``n`` array (0 when none)."""
    if values is None:
        return np.bincount(rows, minlength=n).astype(float)
    if how == "sum":
        return np.bincount(rows, weights=np.nan_to_num(values.to_numpy(float)), minlength=n)
    out = np.full(n, np.nan)
    s = pd.Series(values.to_numpy(float)).groupby(rows).max()
    out[s.index.to_numpy()] = s.to_numpy()
    return out


def log_span(tables: Tables) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last moment the log covers (touchpoints and outreach together)."""
    ts = [tables.outreach["ts"]] + ([tables.touchpoints["ts"]] if len(tables.touchpoints) else [])
    return min(t.min() for t in ts), max(t.max() for t in ts)
