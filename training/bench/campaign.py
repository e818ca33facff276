"""A randomised e-mail campaign in the data contract's form, the shape of a real campaign export.

Two e-mail offers and a control arm are assigned with probability 1/3 each on one campaign day; visits,
purchases and spend follow over the next two weeks; there is no open tracking. Each customer has a year of
purchase and visit history and a few attributes, and the offers work differently by attribute (the "mens"
offer mostly for customers who bought menswear, the "womens" offer for womenswear), so a learned policy has
something to find. Used by ``engage bench policy --training-rows`` and by the tests of the policy layer on
campaign data; the outcome probabilities per arm are returned beside the tables (``truth``) for checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract.schema import Tables
from features.contract.validate import validate_tables

CAMPAIGN_DAY = pd.Timestamp("2024-03-04", tz="UTC")
ARMS: tuple[str, ...] = ("no_contact", "email:mens", "email:womens")


@dataclass(frozen=True)
class Campaign:
    """The contract tables of the campaign and each customer's true visit probability per arm (ARMS order)."""

    tables: Tables
    visit_probability: np.ndarray


def _customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    mens = rng.random(n) < 0.55
    womens = ~mens | (rng.random(n) < 0.3)
    return pd.DataFrame(
        {
            "customer_id": [f"H{i:06d}" for i in range(n)],
            "signup_ts": CAMPAIGN_DAY - pd.to_timedelta(rng.integers(30, 900, n), unit="D"),
            "consent_email": True,
            "consent_sms": False,
            "consent_push": False,
            "consent_call": False,
            "mens": mens,
            "womens": womens,
            "zip_area": rng.choice(["Urban", "Suburban", "Rural"], n, p=[0.4, 0.45, 0.15]),
            "newbie": rng.random(n) < 0.5,
        }
    )


def _visit_probability(customers: pd.DataFrame, recency_days: np.ndarray) -> np.ndarray:
    """``(n, 3)`` visit probability in the two weeks after the campaign, per arm (ARMS order)."""
    base = 0.07 + 0.08 * np.exp(-recency_days / 120.0)
    mens = customers["mens"].to_numpy()
    womens = customers["womens"].to_numpy()
    lift_mens = np.where(mens, 0.11, 0.01)
    lift_womens = np.where(womens & ~mens, 0.09, np.where(womens, 0.04, -0.01))
    return np.clip(np.column_stack([base, base + lift_mens, base + lift_womens]), 0.0, 1.0)


def _history(customers: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """A year of visits and purchases before the campaign, and each customer's days since the last one."""
    n = len(customers)
    per = rng.integers(1, 6, n)
    cust = np.repeat(np.arange(n), per)
    days_before = rng.exponential(90.0, len(cust)).clip(0.5, 365.0)
    recency = np.full(n, 365.0)
    np.minimum.at(recency, cust, days_before)
    ts = CAMPAIGN_DAY - pd.to_timedelta(days_before, unit="D")
    buy = rng.random(len(cust)) < 0.6
    frame = _touch_frame(customers, cust, ts, buy, rng)
    return frame, recency


def _touch_frame(customers: pd.DataFrame, cust: np.ndarray, ts, buy: np.ndarray, rng) -> pd.DataFrame:
    """Web visits, and a purchase beside each visit that bought (amounts log-normal around 100)."""
    ids = customers["customer_id"].to_numpy()
    visits = pd.DataFrame({"customer_id": ids[cust], "ts": ts, "kind": "visit", "amount": np.nan})
    amounts = np.round(rng.lognormal(4.4, 0.6, int(buy.sum())), 2)
    buys = pd.DataFrame(
        {"customer_id": ids[cust[buy]], "ts": ts[buy] + pd.Timedelta(minutes=5), "kind": "purchase", "amount": amounts}
    )
    out = pd.concat([visits, buys], ignore_index=True)
    out = out.assign(channel="web", direction="inbound")
    return out[["customer_id", "ts", "channel", "kind", "direction", "amount"]]


def randomised_campaign(n: int, rng: np.random.Generator) -> Campaign:
    """A validated randomised e-mail campaign of ``n`` customers (one logged decision each)."""
    # A child stream: a training run seeded like the caller's generator must not redraw the same uniforms
    # (a held-out split drawn from them would pick customers by their attributes).
    rng = rng.spawn(1)[0]
    customers = _customers(n, rng)
    history, recency = _history(customers, rng)
    arm = rng.integers(0, 3, n)
    p = _visit_probability(customers, recency)
    visited = rng.random(n) < p[np.arange(n), arm]
    bought = visited & (rng.random(n) < 0.12)
    when = CAMPAIGN_DAY + pd.to_timedelta(rng.uniform(0.5, 13.5, n), unit="D")
    v = np.flatnonzero(visited)
    after = _touch_frame(customers, v, when[v], bought[v], rng)
    offer = np.array(["", "mens", "womens"], dtype=object)[arm]
    outreach = pd.DataFrame(
        {
            "customer_id": customers["customer_id"],
            "ts": CAMPAIGN_DAY + pd.Timedelta(hours=9),
            "channel": "email",
            "offer": np.where(arm == 0, None, offer),
            "campaign_id": "spring_email",
            "propensity": 1.0 / 3.0,
            "holdout": arm == 0,
        }
    )
    touchpoints = pd.concat([history, after], ignore_index=True).sort_values("ts", kind="stable")
    tables, _ = validate_tables(
        Tables(customers=customers, touchpoints=touchpoints.reset_index(drop=True), outreach=outreach),
        source="randomised campaign",
    )
    return Campaign(tables=tables, visit_probability=p)
