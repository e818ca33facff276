"""The decision rule: consent, caps, limits held exactly, reasons, optimality against greedy and MILP."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from features.contract.catalogue import load_catalogue
from features.contract.schema import OUTREACH_CHANNELS
from features.decision.assignment import assign, greedy_assign, limit_matrix, limit_violations
from features.decision.config import LimitConfig, PolicyConfig, load_policy_config, policy_config_from_dict
from features.decision.eligibility import contact_history
from features.decision.rule import (
    BUDGET,
    CAP_REACHED,
    NEGATIVE_UPLIFT,
    NO_CONSENT,
    NO_CONTACT_REASONS,
    decide,
    expected_incremental_value,
    total_value,
)

CAT = load_catalogue()
K = len(CAT.actions)


def world(n: int, seed: int) -> tuple[np.ndarray, pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p0 = rng.uniform(0.05, 0.6, n)
    value = rng.lognormal(4.0, 0.6, n)
    effect = rng.normal(0.01, 0.06, (n, K))
    p = np.clip(p0[:, None] - effect, 0, 1)
    ev = expected_incremental_value(p0, p, value, CAT)
    customers = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            **{f"consent_{c}": rng.random(n) < 0.6 for c in OUTREACH_CHANNELS},
        }
    )
    return ev, customers, p0, value


def outreach_log(customers: pd.DataFrame, cutoff: pd.Timestamp, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    m = 3 * len(customers)
    return pd.DataFrame(
        {
            "customer_id": rng.choice(customers["customer_id"], m),
            "ts": cutoff - pd.to_timedelta(rng.uniform(0.5, 60, m), unit="D"),
            "channel": rng.choice(list(OUTREACH_CHANNELS), m),
            "offer": "none",
            "holdout": rng.random(m) < 0.1,
        }
    )


def test_default_config_loads_and_rejects_unknown_keys() -> None:
    cfg = load_policy_config()
    assert cfg.caps.per_channel["call"] == 1
    with pytest.raises(ValueError, match="unknown key"):
        policy_config_from_dict({"limits": {"budgett": 3}})
    with pytest.raises(ValueError, match="unknown channel"):
        policy_config_from_dict({"caps": {"per_channel": {"fax": 1}}})


def test_consent_caps_and_limits_hold_exactly_and_every_uncontacted_has_a_reason() -> None:
    ev, customers, p0, value = world(3000, 1)
    cutoff = pd.Timestamp("2025-06-01", tz="UTC")
    log = outreach_log(customers, cutoff, 2)
    cfg = load_policy_config().with_limits(
        budget=800.0, max_contacts=900, per_channel={"call": 40, "sms": 150}, per_offer={"discount_20": 60}
    )
    hist = contact_history(log, customers["customer_id"], cutoff, cfg.caps.window_days)
    out = decide(ev, customers, CAT, cfg, history=hist, churn_probability=p0, value=value)
    assert len(out) == len(customers)
    choice = np.array([CAT.ids.index(a) for a in out["nba_action"]])
    contacted = choice != 0
    # consent never violated
    for c in OUTREACH_CHANNELS:
        on_c = (out["nba_channel"] == c).to_numpy()
        assert not (on_c & ~customers[f"consent_{c}"].to_numpy()).any()
    # caps and fatigue
    h = hist.reindex(customers["customer_id"])
    for c in OUTREACH_CHANNELS:
        on_c = (out["nba_channel"] == c).to_numpy()
        assert (h[f"contacts_{c}"].to_numpy()[on_c] + 1 <= cfg.caps.per_channel[c]).all()
    assert (h["contacts_total"].to_numpy()[contacted] + 1 <= cfg.caps.total).all()
    assert (h["days_since_contact"].to_numpy()[contacted] >= cfg.caps.min_days_between_contacts).all()
    # global limits exactly
    A, b, names = limit_matrix(CAT, cfg.limits)
    assert limit_violations(choice, A, b, names) == {}
    used = A @ np.bincount(choice, minlength=K)
    assert used[names.index("budget")] <= 800.0 + 1e-9
    assert used[names.index("budget")] > 780.0  # the budget binds and is nearly spent
    # reasons
    assert out.loc[~contacted, "no_contact_reason"].isin(NO_CONTACT_REASONS).all()
    assert out.loc[contacted, "no_contact_reason"].isna().all()
    reasons = set(out.loc[~contacted, "no_contact_reason"])
    assert {NO_CONSENT, CAP_REACHED, BUDGET, NEGATIVE_UPLIFT} <= reasons
    no_consent = ~customers[[f"consent_{c}" for c in OUTREACH_CHANNELS]].any(axis=1).to_numpy()
    assert (out["no_contact_reason"].to_numpy()[no_consent] == NO_CONSENT).all()
    # contacts carry positive value and runner-ups are sorted, distinct from the choice
    assert (out.loc[contacted, "nba_expected_incremental_value"] > 0).all()
    for action, alts in zip(out["nba_action"], out["alternatives"], strict=True):
        vals = [a["expected_incremental_value"] for a in alts]
        assert vals == sorted(vals, reverse=True)
        assert action not in [a["action"] for a in alts]
    # defense targets: valuable, at risk, persuadable, each with three reasons
    t = out["defense_target"].to_numpy()
    assert t.any()
    assert (p0[t] >= cfg.defense.min_churn_probability).all()
    assert all(len(r) == 3 for r in out.loc[t, "defense_reasons"])


def test_assignment_beats_greedy_when_budget_binds_and_matches_milp() -> None:
    ev, _customers, _, _ = world(300, 3)
    eligible = np.ones_like(ev, dtype=bool)
    A, b, _ = limit_matrix(CAT, LimitConfig(budget=100.0, per_channel={"call": 5}))
    ours = assign(ev, eligible, A, b)
    greedy = greedy_assign(ev, eligible, A, b)
    assert (A[:, ours].sum(axis=1) <= b + 1e-9).all()
    assert total_value(ev, ours) > 1.3 * total_value(ev, greedy)
    # exact integer optimum of the same problem
    n = len(ev)
    ii, aa = np.nonzero(ev[:, 1:] > 0)
    aa = aa + 1
    rows = np.zeros((n + len(b), len(ii)))
    rows[ii, np.arange(len(ii))] = 1.0
    rows[n:, :] = A[:, aa]
    res = optimize.milp(
        -ev[ii, aa],
        integrality=np.ones(len(ii)),
        bounds=optimize.Bounds(0, 1),
        constraints=optimize.LinearConstraint(rows, -np.inf, np.concatenate([np.ones(n), b])),
    )
    assert total_value(ev, ours) >= -res.fun - 1e-6 - 0.01 * abs(res.fun)


def test_unconstrained_is_each_customers_best_eligible_action() -> None:
    ev, customers, _, _ = world(500, 4)
    out = decide(ev, customers, CAT, PolicyConfig())
    elig = np.column_stack(
        [np.ones(len(ev), bool)] + [customers[f"consent_{a.channel}"].to_numpy() for a in CAT.actions[1:]]
    )
    best = np.where(elig, ev, -np.inf).max(axis=1)
    assert np.allclose(out["nba_expected_incremental_value"].to_numpy(), np.maximum(best, 0.0))


def test_epsilon_exploration_returns_propensities_and_keeps_limits() -> None:
    ev, customers, _, _ = world(2000, 5)
    cfg = PolicyConfig(epsilon=0.2).with_limits(max_contacts=300)
    out1 = decide(ev, customers, CAT, cfg, rng=np.random.default_rng(7))
    out2 = decide(ev, customers, CAT, cfg, rng=np.random.default_rng(7))
    pd.testing.assert_frame_equal(out1, out2)
    assert ((out1["nba_propensity"] > 0) & (out1["nba_propensity"] <= 1)).all()
    reachable = customers[[f"consent_{c}" for c in OUTREACH_CHANNELS]].any(axis=1).to_numpy()
    assert (out1["nba_propensity"].to_numpy()[reachable] < 1).all()  # all could have been explored
    assert (out1["nba_propensity"].to_numpy()[~reachable] == 1).all()
    assert (out1["nba_action"] != "no_contact").sum() <= 300
    assert (out1["decision_reason"] == "exploration").sum() > 50
    with pytest.raises(ValueError, match="Generator"):
        decide(ev, customers, CAT, cfg)


def test_inactive_customers_are_not_contacted_and_say_why() -> None:
    ev, customers, _, _ = world(400, 6)
    active = np.arange(400) % 2 == 0
    out = decide(ev, customers, CAT, PolicyConfig(), active=active)
    assert (out["nba_action"].to_numpy()[~active] == "no_contact").all()
    assert (
        out["no_contact_reason"].to_numpy()[~active & customers.filter(like="consent_").any(axis=1)] == "inactive"
    ).all()
    assert (out["nba_action"].to_numpy()[active] != "no_contact").any()


def test_defense_targets_are_customers_the_policy_would_contact() -> None:
    """A target's persuadable action clears the policy's own contact threshold; only a round limit leaves one
    uncontacted."""
    ev, customers, p0, value = world(3000, 9)
    cfg = PolicyConfig(min_incremental_value=15.0).with_limits(max_contacts=200)
    out = decide(ev, customers, CAT, cfg, churn_probability=p0, value=value)
    t = out["defense_target"].to_numpy()
    assert t.any()
    runner_up = [max((a["expected_incremental_value"] for a in alts), default=0.0) for alts in out["alternatives"]]
    best = np.maximum(np.array(runner_up), out["nba_expected_incremental_value"].to_numpy())
    assert (best[t] > 15.0).all()
    missed = t & (out["nba_action"].to_numpy() == "no_contact")
    assert (out["no_contact_reason"].to_numpy()[missed] == BUDGET).all()
