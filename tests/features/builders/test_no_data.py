"""Customers without input data get exact values, not rounding noise that trees split on and reason codes show."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.builders.loglinear import loglinear_rate
from features.builders.pipeline import FeaturePipeline
from features.contract.schema import Tables
from features.contract.validate import validate_tables

CUTOFF = pd.Timestamp("2024-01-01", tz="UTC")
# features that legitimately differ between customers with no touchpoints: how long they have been customers
TENURE = {"tenure_days"}


def test_a_flat_trend_is_exactly_flat():
    beta = loglinear_rate(np.array([0.0, 0.0, 4.0, 4.0]), np.array([0.5, 0.3, 0.5, 0.8]))
    assert beta[0] == 0.0 and beta[2] == 0.0  # no events (only the prior at the middle), or events centred
    assert beta[3] > 0  # a rising rate is still fitted


def test_customers_without_touchpoints_differ_only_by_tenure():
    rng = np.random.default_rng(0)
    n = 300
    ids = [f"c{i}" for i in range(n)]
    customers = pd.DataFrame({
        "customer_id": ids, "signup_ts": CUTOFF - pd.to_timedelta(rng.integers(1, 3000, n), unit="D"),
        "consent_email": False, "consent_sms": False, "consent_push": False, "consent_call": False,
    })
    # the first half only ever received impressions (no own activity); the second half has no touchpoint at all
    impressed = rng.integers(0, n // 2, 400)
    touchpoints = pd.DataFrame({
        "customer_id": [ids[i] for i in impressed], "channel": "email", "kind": "impression", "direction": "outbound",
        "ts": CUTOFF - pd.to_timedelta(rng.integers(1, 800, len(impressed)), unit="D"),
    })
    tables = validate_tables(Tables(customers=customers, touchpoints=touchpoints))[0]
    F = FeaturePipeline(n_jobs=1).fit_transform(tables, cutoff=CUTOFF)
    for group in (F.iloc[: n // 2], F.iloc[n // 2 :]):
        varying = {c for c in F.columns if group[c].nunique(dropna=False) > 1}
        assert varying <= TENURE, sorted(varying - TENURE)
    assert (F["dyn_trend_slope"] == 0.0).all() and (F["tenure_days"].nunique() > 100)
