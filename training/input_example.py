"""The input example registered with every model: synthetic, made from the data contract, never customer data.

MLflow stores the example beside the model (``input_example.json``, ``serving_input_example.json``) and derives
the model's signature from it, so whoever can read the registry can read the example. It is therefore built
from the contract's vocabularies and the attribute list of the fitted system (names and kinds only), for two
made-up customers whose ids, times and values come from no table: the first fills every optional touchpoint
column, the second leaves them (and its attributes) empty, as a customer with a short history would.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract.schema import CONSENT_COLUMNS, TOUCHPOINT_OPTIONAL, TOUCHPOINT_REQUIRED

EXAMPLE_IDS: tuple[str, ...] = ("example-customer-1", "example-customer-2")

# (days before the cutoff, channel, kind, direction, optional values) of the first example customer: one
# touch for each optional column, on the channels and kinds where the contract expects it.
_FULL_HISTORY: tuple[tuple[int, str, str, str, dict], ...] = (
    (60, "web", "visit", "inbound", {"duration_s": 240.0, "pages": 5.0, "device": "desktop", "referrer": "organic"}),
    (60, "web", "product_view", "inbound", {"product_id": "example-product"}),
    (59, "web", "purchase", "inbound", {"amount": 42.5, "discount": 0.0, "product_id": "example-product"}),
    (40, "email", "message_open", "inbound", {"campaign_id": "example-campaign"}),
    (38, "store", "offer_redeemed", "inbound", {"offer_id": "example-offer", "campaign_id": "example-campaign"}),
    (20, "call_center", "service_contact", "inbound", {"duration_s": 300.0, "topic": "help", "sentiment": 0.5}),
    (5, "app", "page_view", "inbound", {"pages": 2.0, "device": "mobile"}),
)
_SHORT_HISTORY: tuple[tuple[int, str, str, str], ...] = ((30, "web", "visit", "inbound"), (3, "email", "impression",
                                                                                           "outbound"))

# A value of each attribute kind that says nothing about anyone (the second customer's attributes are missing).
_ATTRIBUTE_VALUES: dict[str, object] = {"bool": True, "numeric": 1.0, "categorical": "example"}


def _touchpoints(cutoff: pd.Timestamp) -> pd.DataFrame:
    """The example customers' touchpoints: every contract column, times at 10:00 some days before the cutoff."""
    day = cutoff.tz_convert("UTC").tz_localize(None).normalize() + pd.Timedelta(hours=10)
    rows = [
        {"customer_id": EXAMPLE_IDS[0], "ts": day - pd.Timedelta(days=d), "channel": ch, "kind": kind,
         "direction": direction, **values}
        for d, ch, kind, direction, values in _FULL_HISTORY
    ]
    rows += [
        {"customer_id": EXAMPLE_IDS[1], "ts": day - pd.Timedelta(days=d), "channel": ch, "kind": kind,
         "direction": direction}
        for d, ch, kind, direction in _SHORT_HISTORY
    ]
    frame = pd.DataFrame(rows, columns=[*TOUCHPOINT_REQUIRED, *TOUCHPOINT_OPTIONAL])
    for col in frame.columns:
        if col != "ts" and not pd.api.types.is_float_dtype(frame[col]):
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame


def _customers(cutoff: pd.Timestamp, attribute_kinds: dict[str, str]) -> pd.DataFrame:
    """The example customers' ``customer.*`` columns: sign-up time, consents and the system's attributes."""
    signup = cutoff.tz_convert("UTC").tz_localize(None).normalize() - pd.Timedelta(days=400)
    cols: dict[str, list] = {
        "customer_id": list(EXAMPLE_IDS),
        "customer.signup_ts": [signup, signup + pd.Timedelta(days=200)],
        **{f"customer.{col}": [True, False] for col in CONSENT_COLUMNS.values()},
    }
    for name, kind in attribute_kinds.items():
        if kind == "datetime":  # a missing time would reach the serving example as the text "NaT"
            cols[f"customer.{name}"] = [signup, signup]
        elif kind == "numeric":
            cols[f"customer.{name}"] = [_ATTRIBUTE_VALUES[kind], np.nan]
        else:
            cols[f"customer.{name}"] = pd.Series([_ATTRIBUTE_VALUES.get(kind, "example"), None], dtype=object)
    return pd.DataFrame(cols)


def synthetic_input_example(cutoff, attribute_kinds: dict[str, str]) -> pd.DataFrame:
    """The pyfunc input (touchpoint rows with ``customer.*`` columns) for two made-up customers before ``cutoff``.

    ``attribute_kinds``: the customer attributes the system reads and their kinds
    (:meth:`features.system.DecisionSystem.attribute_kinds`); only their names and kinds are used.
    """
    cutoff = pd.Timestamp(cutoff)
    cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff
    return _touchpoints(cutoff).merge(_customers(cutoff, attribute_kinds), on="customer_id", how="left")
