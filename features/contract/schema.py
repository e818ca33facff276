"""The touchpoint data contract: vocabularies, table columns and the in-memory ``Tables`` bundle.

Three tables describe a customer base (``customers``, ``touchpoints``, ``outreach``); a data folder may
also hold ``labels`` (given churn labels) and ``truth`` (simulator ground truth). Validation and
normalisation live in :mod:`features.contract.validate`; this module declares the contract and holds the
``Tables`` bundle with its one operation on validated data, restricting it to some customers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from features.contract.errors import MAX_EXAMPLES

CHANNELS: tuple[str, ...] = (
    "web", "app", "store", "call_center", "chat", "email", "sms", "push", "social", "event", "survey", "other",
)
KINDS: tuple[str, ...] = (
    "visit", "page_view", "search", "filter", "product_view", "add_to_cart", "purchase", "return",
    "service_contact", "complaint", "survey_sent", "survey_response", "event_invite", "event_attendance",
    "social_like", "social_comment", "social_share", "review", "message_open", "message_click",
    "offer_redeemed", "impression", "unsubscribe", "cancel",
)
DIRECTIONS: tuple[str, ...] = ("inbound", "outbound")
REFERRERS: tuple[str, ...] = ("ad", "organic", "direct", "social", "email")
SERVICE_TOPICS: tuple[str, ...] = ("advice", "value_add", "help", "fault", "dissatisfaction")
CONTENT_TOPICS: tuple[str, ...] = ("how_to", "product_info", "store_locator", "price")
DEVICES: tuple[str, ...] = ("desktop", "mobile", "tablet", "phone", "in_person", "other")
# Touchpoint columns that are categories over one of the vocabularies above.
TOUCH_CATEGORIES: dict[str, tuple[str, ...]] = {
    "channel": CHANNELS, "kind": KINDS, "direction": DIRECTIONS, "referrer": REFERRERS,
}

# Outbound (company-initiated) channels that proactive outreach may use; each has a consent column.
OUTREACH_CHANNELS: tuple[str, ...] = ("email", "sms", "push", "call")
CONSENT_COLUMNS: dict[str, str] = {c: f"consent_{c}" for c in OUTREACH_CHANNELS}
# Where the customer's reaction to an outreach channel shows up in the touchpoint log.
OUTREACH_TO_TOUCH_CHANNEL: dict[str, str] = {"email": "email", "sms": "sms", "push": "push", "call": "call_center"}

# Kinds that are never customer activity even when inbound; impressions carry no signal.
PASSIVE_KINDS: frozenset[str] = frozenset({"impression", "survey_sent", "event_invite"})
# Kinds that end a relationship: they are signals, not engagement.
EXIT_KINDS: frozenset[str] = frozenset({"unsubscribe", "cancel"})

TABLES: tuple[str, ...] = ("customers", "touchpoints", "outreach", "labels", "truth")
REQUIRED_TABLES: tuple[str, ...] = ("customers", "touchpoints")

CUSTOMER_COLUMNS: tuple[str, ...] = (
    "customer_id", "signup_ts", "consent_email", "consent_sms", "consent_push", "consent_call",
)
TOUCHPOINT_REQUIRED: tuple[str, ...] = ("customer_id", "ts", "channel", "kind", "direction")
TOUCHPOINT_OPTIONAL: tuple[str, ...] = (
    "duration_s", "pages", "amount", "discount", "sentiment", "topic", "device", "referrer", "offer_id",
    "campaign_id", "product_id",
)
OUTREACH_REQUIRED: tuple[str, ...] = ("customer_id", "ts", "channel", "offer")
OUTREACH_OPTIONAL: tuple[str, ...] = ("campaign_id", "propensity", "holdout")
LABEL_COLUMNS: tuple[str, ...] = ("customer_id", "label")

# Timestamps are UTC nanoseconds everywhere; a day in those units.
UTC_NS = pd.DatetimeTZDtype("ns", "UTC")
DAY_NS: int = 86_400 * 1_000_000_000

# Output vocabularies of the ladder features (ordered from first contact to the top rung).
STORE_LADDER: tuple[str, ...] = ("visitor", "interested", "almost_buyer", "buyer")
SOCIAL_LADDER: tuple[str, ...] = ("visitor", "engaged", "committed", "promoter")
IN_MARKET: tuple[str, ...] = ("none", "interested", "deliberating", "evaluating")


@dataclass(frozen=True)
class Tables:
    """A validated customer base: the three contract tables plus optional labels and truth.

    After :func:`features.contract.validate.validate_tables`, ``touchpoints.customer_id`` and
    ``outreach.customer_id`` are categoricals whose categories are ``customers.customer_id`` in order,
    ``channel``/``kind``/``direction`` are categoricals over the fixed vocabularies above, and every
    timestamp is timezone-aware UTC. ``truth`` is never read by feature code.
    """

    customers: pd.DataFrame
    touchpoints: pd.DataFrame
    outreach: pd.DataFrame | None = None
    labels: pd.DataFrame | None = None
    truth: pd.DataFrame | None = None
    meta: dict = field(default_factory=dict)

    def with_(self, **changes) -> Tables:
        """Return a copy with some tables replaced (the frames themselves are shared, not copied)."""
        return replace(self, **changes)

    def without_truth(self) -> Tables:
        """The same data with the ground truth removed: what feature and model code may see."""
        return replace(self, truth=None)

    def subset(self, customer_ids) -> Tables:
        """The tables restricted to some customers (categories of id columns follow the new customer list)."""
        return subset_tables(self, customer_ids)

    @property
    def n_customers(self) -> int:
        return len(self.customers)


def subset_tables(tables: Tables, customer_ids) -> Tables:
    """The tables restricted to some customers, in the customers table's order.

    Id columns stay categoricals whose categories are the remaining customers; unknown ids are an error.
    """
    cus = tables.customers
    all_ids = pd.Index(cus["customer_id"].astype("str"))
    wanted = pd.Index(pd.Series(list(customer_ids) if not isinstance(customer_ids, pd.Series | pd.Index)
                                else customer_ids).astype("str")).unique()
    unknown = wanted.difference(all_ids)
    if len(unknown):
        raise KeyError(f"subset: {len(unknown):,} customer ids are not in the tables "
                       f"(e.g. {', '.join(map(repr, unknown[:MAX_EXAMPLES]))})")
    keep = all_ids.isin(wanted)
    new_cus = cus[keep].reset_index(drop=True)
    new_ids = pd.Index(new_cus["customer_id"].astype("str"))
    remap = np.full(len(all_ids) + 1, -1, dtype=np.int64)
    remap[:-1][keep] = np.arange(int(keep.sum()))

    def restrict(df: pd.DataFrame | None) -> pd.DataFrame | None:
        if df is None:
            return None
        col = df["customer_id"]
        if isinstance(col.dtype, pd.CategoricalDtype) and col.cat.categories.equals(all_ids):
            codes = remap[col.cat.codes.to_numpy()]  # code -1 maps to remap[-1] == -1
            rows = codes >= 0
            out = df[rows].reset_index(drop=True)
            out["customer_id"] = pd.Categorical.from_codes(codes[rows].astype(np.int32), categories=new_ids)
            return out
        rows = col.astype("str").isin(new_ids).to_numpy()
        return df[rows].reset_index(drop=True)

    meta = {k: v for k, v in tables.meta.items() if k != "validation"}
    meta["subset_of"] = len(all_ids)
    return Tables(customers=new_cus, touchpoints=restrict(tables.touchpoints),
                  outreach=restrict(tables.outreach), labels=restrict(tables.labels),
                  truth=restrict(tables.truth), meta=meta)
