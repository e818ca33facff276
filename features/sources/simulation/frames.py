"""The simulated world's output tables: codes turned into the data contract's columns and vocabularies.

Built once, at the end, through Arrow and categorical codes so that a world of millions of touches is
written out as fast as it was simulated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from features.contract.catalogue import Catalogue
from features.contract.schema import CHANNELS, DEVICES, DIRECTIONS, KINDS, OUTREACH_CHANNELS, REFERRERS
from features.sources.simulation.at_cutoff import CutoffTruth
from features.sources.simulation.codes import N_PRODUCTS, TOPICS
from features.sources.simulation.rows import TouchRows
from features.sources.simulation.state import OutreachBlock, WorldState
from features.sources.simulation.traits import Traits
from features.sources.simulation.truth import SEGMENTS, STAGES, TRENDS

_REGIONS = np.array(["north", "south", "east", "west"], dtype=object)


def _str_col(codes: np.ndarray, vocab: list[str]) -> pd.Series:
    """A pandas ``str`` column (NaN where code < 0), built through Arrow for speed."""
    codes = np.asarray(codes)
    arr = pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int32), mask=codes < 0),
        pa.array(list(vocab), type=pa.large_string()),
    ).cast(pa.large_string())
    return pd.Series(pd.array(arr, dtype=pd.StringDtype("pyarrow", na_value=np.nan)))


def _utc(start_ns: int, sec: np.ndarray) -> pd.Series:
    """UTC timestamps from seconds after the start (integer arithmetic: no float rounding)."""
    ns = np.int64(start_ns) + np.asarray(sec, np.int64) * np.int64(1_000_000_000)
    return pd.Series(ns.view("datetime64[ns]")).dt.tz_localize("UTC")


def _cat(codes: np.ndarray, vocab) -> pd.Categorical:
    return pd.Categorical.from_codes(
        np.asarray(codes, np.int64),
        categories=vocab if isinstance(vocab, pd.Index) else pd.Index(list(vocab), dtype="str"),
    )


def customer_ids(n: int, start: int = 0) -> pd.Index:
    """``C000001``, ``C000002``... for customer rows 0, 1... (``n`` ids from row ``start``)."""
    return pd.Index([f"C{i + 1:06d}" for i in range(start, start + n)], dtype="str", name="customer_id")


def customers_frame(
    ids: pd.Index, start_ns: int, t: Traits, consent: np.ndarray, loyalty_member: np.ndarray
) -> pd.DataFrame:
    """The customers table: signup, consent at the cutoff, region and loyalty membership."""
    return pd.DataFrame(
        {
            "customer_id": pd.Series(ids, dtype="str"),
            "signup_ts": _utc(start_ns, t.signup_sec),
            **{f"consent_{c}": consent[:, i] for i, c in enumerate(OUTREACH_CHANNELS)},
            "region": pd.Series(_REGIONS[t.region], dtype="str"),
            "loyalty_member": loyalty_member,
        }
    )


def touch_frame(
    tp: TouchRows, ids: pd.Index, start_ns: int, offers: list[str], campaigns: list[str]
) -> pd.DataFrame:
    """The touchpoints table from the assembled rows (every column filled)."""
    products = [f"P{i + 1:04d}" for i in range(N_PRODUCTS)]
    return pd.DataFrame(
        {
            "customer_id": _cat(tp.cust, ids),
            "ts": _utc(start_ns, tp.sec),
            "channel": _cat(tp.chan, CHANNELS),
            "kind": _cat(tp.kind, KINDS),
            "direction": _cat(tp.dir, DIRECTIONS),
            "referrer": _cat(tp.referrer, REFERRERS),
            "duration_s": tp.duration_s,
            "pages": tp.pages,
            "amount": tp.amount,
            "discount": tp.discount,
            "sentiment": tp.sentiment,
            "topic": _str_col(tp.topic, list(TOPICS)),
            "device": _str_col(tp.device, list(DEVICES)),
            "offer_id": _str_col(tp.offer, offers),
            "campaign_id": _str_col(tp.campaign, campaigns),
            "product_id": _str_col(tp.product, products),
        }
    )


def outreach_frame(
    blocks: list[OutreachBlock], ids: pd.Index, start_ns: int, offers: list[str], campaigns: list[str]
) -> pd.DataFrame:
    """The outreach table: every logged decision, contacts and holdouts, sorted by customer and time."""
    o = OutreachBlock.concat(blocks)
    order = np.lexsort((o.sec, o.cust))
    offer = o.offer[order]
    offer_codes = np.where(offer < 0, len(offers), offer)
    return pd.DataFrame(
        {
            "customer_id": _cat(o.cust[order], ids),
            "ts": _utc(start_ns, o.sec[order].astype(np.int64)),
            "channel": _cat(o.chan[order], OUTREACH_CHANNELS),
            "offer": _str_col(offer_codes, [*offers, "none"]),
            "campaign_id": _str_col(o.campaign[order], campaigns),
            "propensity": o.prop[order].astype(np.float64),
            "holdout": o.holdout[order].astype(bool),
        }
    )


def truth_frame(
    ids: pd.Index,
    t: Traits,
    state: WorldState,
    frozen: CutoffTruth,
    label: np.ndarray,
    end_sec: np.int64,
    cat: Catalogue,
) -> pd.DataFrame:
    """The truth table: traits, state at the cutoff, exact probabilities and values, realised labels."""
    pref, alive = t.pref, frozen.alive
    cols: dict[str, object] = {
        "customer_id": pd.Series(ids, dtype="str"),
        "trait_engagement": np.exp(t.loglam0),
        "trait_trend": _str_col(t.trend, list(TRENDS)),
        **{f"trait_pref_{c}": pref[:, i] for i, c in enumerate(OUTREACH_CHANNELS)},
        "trait_preferred_channel": _str_col(np.argmax(pref, axis=1), list(OUTREACH_CHANNELS)),
        "trait_price_sensitivity": t.price_sens,
        "trait_value": t.aov * t.buy_freq,
        "trait_aov": t.aov,
        "trait_loyalty": t.loyalty,
        "trait_intent_stage": _str_col(state.stage, list(STAGES)),
        "trait_promoter": t.promoter,
        "trait_segment": _str_col(t.segment, list(SEGMENTS)),
        "trait_troubled": state.troubled.astype(bool),
        "alive_at_cutoff": alive,
        "hazard_no_contact": np.where(alive, frozen.h0, np.nan),
        "active_rate": np.where(alive, frozen.lam, 0.0),
        "contacts_30d": frozen.n_recent,
        "p_churn_no_contact": frozen.p_no,
        "value": frozen.value,
    }
    for j, a in enumerate(cat.actions):
        cols[f"p_churn__{a.id}"] = frozen.p_all[:, j]
    for j, a in enumerate(cat.actions):
        cols[f"ev__{a.id}"] = frozen.ev[:, j]
    for name, values in (frozen.outcomes or {}).items():
        for j, a in enumerate(cat.actions):
            cols[f"{name}__{a.id}"] = values[:, j]
    cols["best_action"] = pd.Series(frozen.best, dtype="str")
    cols["best_ev"] = frozen.best_ev
    cols["churned"] = label.astype(np.int64)
    cols["churn_event"] = (state.churn_sec < end_sec).astype(np.int64)
    return pd.DataFrame(cols)
