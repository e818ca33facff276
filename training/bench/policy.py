"""Benchmark: decide the next best action for N customers with binding budget and channel limits; and build
the policy's training rows of a randomised campaign.

``engage bench policy --customers 100000 [--report FILE]`` prints seconds and the limits' use.
The expected values are synthetic (heterogeneous, partly negative); the work timed is the decision rule
itself: eligibility, the constrained assignment across all customers, reasons, runner-ups, defense flags.
``--training-rows N`` also times :func:`training.policy.rows.training_rows` on a randomised e-mail campaign
of N logged decisions (:mod:`training.bench.campaign`), features included.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from features.contract.catalogue import load_catalogue
from features.contract.schema import OUTREACH_CHANNELS
from features.decision.assignment import greedy_assign, limit_matrix
from features.decision.config import load_policy_config
from features.decision.eligibility import contact_history, eligibility
from features.decision.rule import decide, expected_incremental_value, total_value


def bench_policy(n: int, seed: int = 0) -> dict:
    """Time one decision round for ``n`` synthetic customers; returns the figures."""
    rng = np.random.default_rng(seed)
    cat = load_catalogue()
    K = len(cat.actions)
    p0 = rng.uniform(0.02, 0.6, n)
    value = rng.lognormal(4.0, 0.8, n)
    effect = rng.normal(0.0, 0.05, (n, K)) + rng.normal(0.0, 0.03, (n, 1))
    ev = expected_incremental_value(p0, np.clip(p0[:, None] - effect, 0, 1), value, cat)
    customers = pd.DataFrame(
        {
            "customer_id": [f"C{i:07d}" for i in range(n)],
            **{f"consent_{c}": rng.random(n) < 0.7 for c in OUTREACH_CHANNELS},
        }
    )
    cutoff = pd.Timestamp("2025-06-01", tz="UTC")
    m = 2 * n
    log = pd.DataFrame(
        {
            "customer_id": customers["customer_id"].to_numpy()[rng.integers(0, n, m)],
            "ts": cutoff - pd.to_timedelta(rng.uniform(0.5, 60, m), unit="D"),
            "channel": rng.choice(list(OUTREACH_CHANNELS), m),
            "offer": "none",
            "holdout": rng.random(m) < 0.2,
        }
    )
    cfg = load_policy_config().with_limits(
        budget=0.15 * n,
        max_contacts=n // 5,
        per_channel={"call": n // 200, "sms": n // 20},
        per_offer={"discount_20": n // 100},
    )
    t0 = time.time()
    hist = contact_history(log, customers["customer_id"], cutoff, cfg.caps.window_days)
    out = decide(ev, customers, cat, cfg, history=hist, churn_probability=p0, value=value)
    seconds = time.time() - t0
    choice = out["nba_action"].map({a: k for k, a in enumerate(cat.ids)}).to_numpy()
    A, b, names = limit_matrix(cat, cfg.limits)
    used = A @ np.bincount(choice, minlength=K)
    elig, _, _ = eligibility(customers, hist, cat, cfg.caps)
    greedy = greedy_assign(ev, elig, A, b)
    return {
        "customers": n,
        "seconds": round(seconds, 2),
        "contacts": int((choice != 0).sum()),
        "value": total_value(ev, choice),
        "greedy_value": total_value(ev, greedy),
        "limits": {nm: {"used": float(u), "cap": float(c)} for nm, u, c in zip(names, used, b, strict=True)},
    }


def bench_training_rows(n: int, seed: int = 0) -> dict:
    """Time the training rows of a randomised campaign of ``n`` decisions (visit objective, 14 days)."""
    from features.contract.catalogue import catalogue_from_log
    from features.decision.config import policy_config_from_dict
    from training.bench.campaign import CAMPAIGN_DAY, randomised_campaign
    from training.policy.rows import training_rows

    tables = randomised_campaign(n, np.random.default_rng(seed)).tables
    config = policy_config_from_dict({"objective": "visit", "horizon_days": 14})
    catalogue = catalogue_from_log(tables.outreach)
    t0 = time.time()
    rows = training_rows(tables, [CAMPAIGN_DAY], catalogue, config=config, until=CAMPAIGN_DAY + pd.Timedelta(days=14))
    return {
        "decisions": n,
        "touchpoints": len(tables.touchpoints),
        "rows": len(rows.rows),
        "features": rows.X.shape[1],
        "seconds": round(time.time() - t0, 2),
    }
