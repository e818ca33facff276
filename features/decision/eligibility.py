"""Which actions each customer may get: consent, frequency caps and contact fatigue.

Consent is per channel (a channel without consent is never used). Caps and fatigue count the contacts in
a window before the cutoff, per channel and in total, plus the days since the last contact. Both come
from the tables (customers, outreach log) or, when scoring from features alone, from the features
``chan_{c}_consent``, ``chan_{c}_contacts_30d``, ``contacts_30d`` and ``chan_{c}_days_since_contact``.
The ``*_arrays`` functions are the same rules on plain arrays, so that scoring a few customers pays for
no pandas objects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract.catalogue import Catalogue
from features.contract.schema import CONSENT_COLUMNS, OUTREACH_CHANNELS
from features.decision.config import CapConfig


def contact_history(outreach: pd.DataFrame | None, customer_ids, cutoff, window_days: int) -> pd.DataFrame:
    """Contacts per outreach channel and in total in ``[cutoff - window, cutoff)``, and days since the last.

    Holdout rows are not contacts. Returns one row per customer id (index), columns ``contacts_{channel}``,
    ``contacts_total``, ``days_since_contact`` (inf when never contacted).
    """
    ids = pd.Index(pd.Series(customer_ids, dtype=str), name="customer_id")
    out = pd.DataFrame(0, index=ids, columns=[f"contacts_{c}" for c in OUTREACH_CHANNELS] + ["contacts_total"])
    out["days_since_contact"] = np.inf
    if outreach is None or len(outreach) == 0:
        return out
    cutoff = pd.Timestamp(cutoff)
    o = outreach[outreach["ts"] < cutoff]
    if "holdout" in o.columns:
        o = o[~o["holdout"].fillna(False).astype(bool)]
    cid = o["customer_id"].astype(str)
    last = o.groupby(cid.to_numpy())["ts"].max()
    days = (cutoff - last).dt.total_seconds() / 86400.0
    out["days_since_contact"] = days.reindex(ids).fillna(np.inf).to_numpy()
    recent = o["ts"] >= cutoff - pd.Timedelta(days=window_days)
    r = o[recent]
    counts = pd.crosstab(r["customer_id"].astype(str).to_numpy(), r["channel"].astype(str).to_numpy())
    for c in OUTREACH_CHANNELS:
        if c in counts.columns:
            out[f"contacts_{c}"] = counts[c].reindex(ids).fillna(0).astype(int).to_numpy()
    out["contacts_total"] = out[[f"contacts_{c}" for c in OUTREACH_CHANNELS]].sum(axis=1)
    return out


def eligibility(
    customers: pd.DataFrame, history: pd.DataFrame | None, catalogue: Catalogue, caps: CapConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which actions each customer may get: consent, frequency caps, fatigue.

    Returns ``(eligible, consented, capped)``: ``eligible`` is bool ``(n, K)`` over ``catalogue.actions``
    (no contact always eligible); ``consented[i]`` is True if customer i consented to any catalogue channel;
    ``capped[i]`` True if caps/fatigue block every consented channel.
    """
    consent = consent_arrays(customers, catalogue)
    hist = None
    if history is not None:
        hist = history_arrays(history, pd.Index(customers["customer_id"].astype(str)), catalogue, caps)
    return eligibility_arrays(consent, hist, catalogue, caps, len(customers))


def consent_arrays(customers: pd.DataFrame, catalogue: Catalogue) -> dict[str, np.ndarray]:
    """Per catalogue channel, the customers' consent as a bool array (missing = no consent)."""
    missing = [CONSENT_COLUMNS[c] for c in catalogue.channels if CONSENT_COLUMNS[c] not in customers.columns]
    if missing:
        raise ValueError(f"customers: missing consent column(s) {missing} ({len(customers)} rows)")
    return {c: _bool_column(customers[CONSENT_COLUMNS[c]]) for c in catalogue.channels}


def history_arrays(
    history: pd.DataFrame, ids: pd.Index, catalogue: Catalogue, caps: CapConfig
) -> dict[str, np.ndarray]:
    """The contact-history columns the caps read, aligned to ``ids`` (missing counts 0, never contacted)."""
    # Aligned already in the common case (history built from the same customers): no reindex.
    h = history if history.index.equals(ids) and history.index.is_unique else history.reindex(ids)
    out = {"contacts_total": filled(h["contacts_total"], 0)}
    if caps.min_days_between_contacts is not None:
        out["days_since_contact"] = filled(h["days_since_contact"], np.inf)
    for c in catalogue.channels:
        if caps.per_channel.get(c) is not None:
            out[f"contacts_{c}"] = filled(h[f"contacts_{c}"], 0)
    return out


def eligibility_arrays(
    consent: dict[str, np.ndarray],
    hist: dict[str, np.ndarray] | None,
    catalogue: Catalogue,
    caps: CapConfig,
    n: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`eligibility` on arrays: ``consent`` per channel, ``hist`` from :func:`history_arrays`."""
    channels = list(catalogue.channels)
    open_ = {c: np.ones(n, dtype=bool) for c in channels}
    if hist is not None:
        total = hist["contacts_total"]
        rested = None
        if caps.min_days_between_contacts is not None:
            days = hist["days_since_contact"]
            # never contacted (missing) counts as rested, as an infinite gap
            rested = np.where(np.isnan(days), np.inf, days) >= caps.min_days_between_contacts
        for c in channels:
            cap = caps.per_channel.get(c)
            if cap is not None:
                open_[c] &= hist[f"contacts_{c}"] + 1 <= cap
            if caps.total is not None:
                open_[c] &= total + 1 <= caps.total
            if rested is not None:
                open_[c] &= rested
    eligible = np.zeros((n, len(catalogue.actions)), dtype=bool)
    for k, a in enumerate(catalogue.actions):
        eligible[:, k] = True if a.channel is None else consent[a.channel] & open_[a.channel]
    consented = np.zeros(n, dtype=bool)
    reachable = np.zeros(n, dtype=bool)
    for c in channels:
        consented |= consent[c]
        reachable |= consent[c] & open_[c]
    return eligible, consented, consented & ~reachable


def _bool_column(values: pd.Series) -> np.ndarray:
    """``values.fillna(False).astype(bool)`` as an array; a plain bool column is used as it is."""
    if values.dtype == bool:
        return values.to_numpy()
    return values.fillna(False).astype(bool).to_numpy()


def filled(values: pd.Series, fill: float) -> np.ndarray:
    """``values.fillna(fill).to_numpy()``; a plain float column without the pandas round trip."""
    arr = values.to_numpy()
    if arr.dtype.kind == "f":
        return np.where(np.isnan(arr), fill, arr)
    return values.fillna(fill).to_numpy()


def consent_from_features(F: pd.DataFrame) -> pd.DataFrame:
    """A customers frame (``customer_id`` + consent columns) from the features ``chan_{c}_consent``."""
    data: dict = {"customer_id": F.index.astype(str)}
    for c, col in CONSENT_COLUMNS.items():
        data[col] = _consent_feature(F, c)
    return pd.DataFrame(data)


def _consent_feature(F: pd.DataFrame, channel: str) -> np.ndarray:
    name = f"chan_{channel}_consent"
    if name not in F.columns:
        raise ValueError(f"features: missing column {name} ({len(F)} rows); consent is required")
    return filled(F[name], 0) > 0


def consent_arrays_from_features(F: pd.DataFrame, catalogue: Catalogue) -> dict[str, np.ndarray]:
    """:func:`consent_from_features` as arrays per catalogue channel."""
    return {c: _consent_feature(F, c) for c in catalogue.channels}


def history_from_features(F: pd.DataFrame) -> pd.DataFrame | None:
    """Contact history for caps from the features (30-day counts); ``None`` when the columns are absent."""
    data = history_arrays_from_features(F)
    return None if data is None else pd.DataFrame(data, index=pd.Index(F.index.astype(str), name="customer_id"))


def history_arrays_from_features(F: pd.DataFrame) -> dict[str, np.ndarray] | None:
    """:func:`history_from_features` as arrays (the frame's columns)."""
    need = [f"chan_{c}_contacts_30d" for c in OUTREACH_CHANNELS] + ["contacts_30d"]
    if any(c not in F.columns for c in need):
        return None
    data = {f"contacts_{c}": filled(F[f"chan_{c}_contacts_30d"], 0) for c in OUTREACH_CHANNELS}
    data["contacts_total"] = filled(F["contacts_30d"], 0)
    since = [f"chan_{c}_days_since_contact" for c in OUTREACH_CHANNELS if f"chan_{c}_days_since_contact" in F]
    # fmin skips missing values as DataFrame.min(axis=1) does (all missing -> NaN), without a frame.
    data["days_since_contact"] = (
        np.fmin.reduce(np.column_stack([F[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in since]), axis=1)
        if since
        else np.full(len(F), np.inf)
    )
    return data
