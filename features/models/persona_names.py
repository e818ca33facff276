"""What personas are clustered on, and how each gets a readable name and profile from what sets it apart.

The features come from the engagement, intent, ladder, loyalty/value and channel families; each has a
phrase for a persona well above the population and, where it reads naturally, one for well below. A
persona's profile is its five features furthest from the population (in population standard deviations);
its name joins the phrases of the first few of them, e.g. "high intent · mobile-first · price-sensitive".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# feature -> (phrase when the persona is above the population, phrase when below or None)
PHRASES: dict[str, tuple[str, str | None]] = {
    # engagement
    "engagement_index": ("highly engaged", "disengaged"),
    "active_days_90d": ("frequent visitor", "rare visitor"),
    "breadth_channels_90d": ("omnichannel", "single-channel"),
    "days_since_last_active": ("lapsing", "recently active"),
    "engagement_trend": ("rising engagement", "fading engagement"),
    # intent
    "buy_intent_score": ("high intent", "low intent"),
    "product_views_30d": ("heavy browser", None),
    "cart_adds_without_purchase": ("cart abandoner", None),
    "intent_know_share_30d": ("researcher", None),
    "searches_30d": ("searcher", None),
    # ladders
    "store_ladder": ("buyer stage", "window shopper"),
    "social_ladder": ("social promoter", "socially silent"),
    "in_market_stage": ("in market", None),
    # loyalty and value
    "frequency": ("frequent buyer", "rare buyer"),
    "recency_days": ("lapsed buyer", "recent buyer"),
    "monetary": ("big spender", "small spender"),
    "aov": ("big baskets", "small baskets"),
    "loyal": ("loyalist", None),
    "tenure_days": ("long-standing", "newcomer"),
    "price_sensitivity": ("price-sensitive", "full-price"),
    "discount_share": ("deal hunter", None),
    "return_rate": ("frequent returner", None),
    "service_contacts_90d": ("service-heavy", None),
    "complaints_90d": ("complaining", None),
    "sentiment_mean": ("positive voice", "negative voice"),
    # channels
    "device_mobile_share": ("mobile-first", None),
    "device_desktop_share": ("desktop-first", None),
    "device_in_person_share": ("store-first", None),
    "chan_email_open_rate": ("email reader", "ignores email"),
    "chan_push_open_rate": ("push-responsive", None),
    "chan_sms_open_rate": ("SMS-responsive", None),
    "chan_call_open_rate": ("takes calls", None),
    "referrer_social_share": ("social-referred", None),
    "referrer_ad_share": ("ad-driven", None),
}
PERSONA_FEATURES: tuple[str, ...] = tuple(PHRASES)
# Features that mean what their phrase says only above a level somewhere in the data: channel breadth
# never above 1 (a log with one channel, e.g. web purchases) says "active lately", not "omnichannel".
NEEDS_MAX_ABOVE: dict[str, float] = {"breadth_channels_90d": 1.0}
PROFILE_SIZE = 5
NAME_PARTS = 3
MIN_Z = 0.3  # a feature names a persona only when its mean is this many population SDs away


def profiles(raw: pd.DataFrame, labels: np.ndarray, k: int) -> tuple[np.ndarray, list[list[dict]]]:
    """Per cluster 0..k-1: its mean feature vector (raw units) and its profile, the :data:`PROFILE_SIZE`
    features furthest from the population mean in population standard deviations."""
    mean, std = raw.mean().to_numpy(), raw.std(ddof=0).to_numpy()
    std = np.where(std > 0, std, 1.0)
    means = np.vstack([raw[labels == c].mean().to_numpy() if (labels == c).any() else mean for c in range(k)])
    out = []
    for c in range(k):
        z = (means[c] - mean) / std
        top = np.argsort(-np.abs(z), kind="stable")[:PROFILE_SIZE]
        out.append([{"feature": str(raw.columns[j]), "persona_mean": float(means[c, j]),
                     "population_mean": float(mean[j]), "z": float(z[j])} for j in top])
    return means, out


def phrase(feature: str, z: float) -> str | None:
    """The phrase of a feature at standardised difference ``z`` (None when it says nothing that way)."""
    if abs(z) < MIN_Z or feature not in PHRASES:
        return None
    high, low = PHRASES[feature]
    return high if z > 0 else low


def ranked_phrases(raw: pd.DataFrame, mean_row: np.ndarray) -> list[str]:
    """Every phrase that applies to a cluster with mean ``mean_row``, most distinguishing first."""
    mean, std = raw.mean().to_numpy(), raw.std(ddof=0).to_numpy()
    z = (mean_row - mean) / np.where(std > 0, std, 1.0)
    words = []
    for j in np.argsort(-np.abs(z), kind="stable"):
        p = phrase(str(raw.columns[j]), float(z[j]))
        if p is not None and p not in words:
            words.append(p)
    return words


def generated_names(raw: pd.DataFrame, means: np.ndarray, taken: set[str] | None = None) -> list[str]:
    """A distinct name per cluster: its first :data:`NAME_PARTS` phrases, more when two would be equal,
    a number as the last resort; ``taken`` names (kept from an earlier fit) are avoided."""
    taken = set(taken or ())
    names = []
    for row in means:
        words = ranked_phrases(raw, row) or ["average customers"]
        n = min(NAME_PARTS, len(words))
        name = " · ".join(words[:n])
        while name in taken and n < len(words):
            n += 1
            name = " · ".join(words[:n])
        base, i = name, 2
        while name in taken:
            name, i = f"{base} ({i})", i + 1
        taken.add(name)
        names.append(name)
    return names
