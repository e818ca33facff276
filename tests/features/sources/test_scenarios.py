"""Simulator scenarios: each named world is what it says, and its truth stays exact."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pandas as pd
import pytest

from features.contract.catalogue import NO_CONTACT, load_catalogue
from features.contract.schema import Tables
from features.sources.simulation.config import SCENARIO_FIELDS, SimConfig
from features.sources.simulation.outcomes import Pieces, Shopper, window_outcomes
from features.sources.simulation.response import use_coupons
from features.sources.simulation.scenarios import SCENARIOS, scenario_config
from features.sources.simulation.state import Episodes, WorldState
from features.sources.simulation.traits import draw_traits
from features.sources.simulation.truth import piecewise_churn_time
from features.sources.simulation.world import simulate_world
from tests.features.sources.logged_effects import logged_effect

CAT = load_catalogue()


@functools.cache
def _world(name: str, n: int, seed: int) -> Tables:
    return simulate_world(scenario_config(name, n_customers=n, seed=seed), np.random.default_rng(seed))


def _cutoff(w: Tables) -> pd.Timestamp:
    return pd.Timestamp(w.meta["manifest"]["cutoff"])


def _window(w: Tables, days: int) -> pd.DataFrame:
    cut = _cutoff(w)
    tp = w.touchpoints
    return tp[(tp["ts"] >= cut) & (tp["ts"] < cut + pd.Timedelta(days=days))]


def _z(realised: np.ndarray, expected: np.ndarray) -> float:
    """How many standard errors the realised mean is from the expected one (independent customers)."""
    return float((realised.mean() - expected.mean()) / ((realised - expected).std() / np.sqrt(len(realised))))


# ------------------------------------------------------------------------------------ the named configs
def test_the_retention_scenario_is_the_default_world_and_its_manifest_is_unchanged() -> None:
    cfg = scenario_config("retention", n_customers=300, days=200, seed=0)
    assert cfg == SimConfig(n_customers=300, days=200, seed=0)
    params = cfg.manifest_params()
    assert not set(params) & set(SCENARIO_FIELDS)
    low = scenario_config("low_consent", n_customers=300).manifest_params()
    assert low["scenario"] == "low_consent" and low["secondary_consent_scale"] == 0.1


def test_every_scenario_builds_and_bad_names_are_clear_errors() -> None:
    assert list(SCENARIOS) == [
        "retention", "visit_campaign", "spend_offers", "low_consent", "sleeping_dogs", "short_history",
    ]
    for name, sc in SCENARIOS.items():
        assert scenario_config(name).scenario == name and sc.objective in ("retention", "visit", "spend")
    with pytest.raises(ValueError, match="unknown; known scenarios: retention, visit_campaign"):
        scenario_config("telco")
    with pytest.raises(ValueError, match=r"unknown parameter.*'customers'"):
        scenario_config("low_consent", customers=10)
    with pytest.raises(ValueError, match="response_days"):
        scenario_config("spend_offers", response_days=20)  # would outlive the campaign gap


# ------------------------------------------------------------------------------ randomised visit campaign
def test_visit_campaign_is_randomised_and_tracks_no_opens_or_clicks() -> None:
    w = _world("visit_campaign", 3000, 1)
    kinds = set(w.touchpoints["kind"].astype(str))
    assert "message_open" not in kinds and "message_click" not in kinds
    assert "offer_redeemed" in kinds  # redemptions are purchases: still recorded
    out = w.outreach
    np.testing.assert_allclose(out.loc[out["holdout"], "propensity"], 1 / 3)
    # channels uniform over the consented ones, offers uniform within the channel
    cons = w.customers.set_index("customer_id")[[f"consent_{c}" for c in ("email", "sms", "push", "call")]]
    assert out.loc[~out["holdout"], "propensity"].max() <= 2 / 3 / 3 + 1e-12
    assert len(cons) == 3000
    cols = {f"{k}__{a}" for k in ("p_visit", "p_buy", "spend") for a in CAT.ids}
    assert cols <= set(w.truth.columns)


def test_visit_truth_matches_the_realised_window_after_the_cutoff() -> None:
    """With no outreach after the cutoff, the realised 14-day visit, purchase and spend means are those the
    truth reports for no contact."""
    for seed in (2, 3):
        w = _world("visit_campaign", 6000, seed)
        tr = w.truth.set_index(w.truth["customer_id"].astype(str))
        win = _window(w, 14)
        cid = win["customer_id"].astype(str)
        visited = tr.index.isin(cid[win["kind"] == "visit"].unique()).astype(float)
        buys = win[win["kind"] == "purchase"]
        bought = tr.index.isin(buys["customer_id"].astype(str).unique()).astype(float)
        spend = buys.groupby(buys["customer_id"].astype(str))["amount"].sum().reindex(tr.index).fillna(0.0)
        for realised, column in ((visited, "p_visit"), (bought, "p_buy"), (spend.to_numpy(), "spend")):
            z = _z(realised, tr[f"{column}__{NO_CONTACT}"].to_numpy())
            assert abs(z) < 4, (seed, column, z)


def test_visit_campaign_log_shows_the_visit_effects_the_truth_reports() -> None:
    """Inverse-propensity estimates of each segment's 14-day visit effect in the logged campaigns agree with
    the truth's (among customers who consent to the channel), persuadables up, sleeping dogs down."""
    w = _world("visit_campaign", 6000, 5)
    out, cut = w.outreach, _cutoff(w)
    day = out["ts"].dt.floor("D")
    tp = w.touchpoints
    visits = tp.loc[tp["kind"] == "visit", ["customer_id", "ts"]]
    parts = []
    for s in sorted(day.unique()):
        if s + pd.Timedelta(days=14) > cut:
            continue
        o = out[day == s]
        seen = visits.loc[(visits["ts"] >= s) & (visits["ts"] < s + pd.Timedelta(days=14)), "customer_id"]
        action = np.where(o["holdout"], NO_CONTACT, o["channel"].astype(str) + ":" + o["offer"].astype(str))
        parts.append(pd.DataFrame({"cid": o["customer_id"].astype(str).to_numpy(), "action": action,
                                   "y": o["customer_id"].isin(set(seen)).to_numpy(float),
                                   "p": o["propensity"].to_numpy()}))
    log = pd.concat(parts, ignore_index=True)
    truth = w.truth.set_index(w.truth["customer_id"].astype(str))
    log["segment"] = truth["trait_segment"].reindex(log["cid"]).to_numpy()
    alive = truth[truth["alive_at_cutoff"]]
    consent = w.customers.set_index(w.customers["customer_id"].astype(str)).reindex(alive.index)
    y, p, a = log["y"].to_numpy(), log["p"].to_numpy(), log["action"].to_numpy()
    for segment in ("persuadable", "sleeping_dog"):
        est, se = logged_effect(y, p, a, (log["segment"] == segment).to_numpy(), CAT.ids[1:])
        in_seg = (alive["trait_segment"] == segment).to_numpy()
        true = np.mean([
            (alive[f"p_visit__{x.id}"] - alive[f"p_visit__{NO_CONTACT}"])[in_seg & consent[f"consent_{x.channel}"]
                                                                           .to_numpy(bool)].mean()
            for x in CAT.actions[1:]
        ])
        assert abs(est - true) < 3 * se + 0.01, (segment, est, true, se)
        assert np.sign(est) == np.sign(true) == (1 if segment == "persuadable" else -1)


# ------------------------------------------------------------------------------------ spend with real costs
def test_spend_offers_charge_the_discount_on_real_purchases() -> None:
    """A discount lifts the spend of price-sensitive customers; the others would buy anyway and pay less."""
    w = _world("spend_offers", 3000, 1)
    alive = w.truth[w.truth["alive_at_cutoff"]]

    def effect(action: str) -> pd.Series:
        return alive[f"spend__{action}"] - alive[f"spend__{NO_CONTACT}"]

    insensitive = alive["trait_price_sensitivity"] < 0.3
    discount, value_contact = effect("email:discount_20"), effect("email:none")
    assert discount[insensitive].mean() < 0 < value_contact[insensitive].mean()
    assert discount[~insensitive].mean() > value_contact[~insensitive].mean() > 0


def test_a_coupon_discounts_only_the_first_purchase_before_it_expires() -> None:
    cfg = SimConfig(n_customers=3, days=60)
    state = WorldState.initial(cfg, draw_traits(cfg, np.random.default_rng(0)), np.random.default_rng(0))
    state.coupon[:] = [0.2, 0.2, 0.2]
    state.coupon_until[:] = [10, 10, 5]  # customer 2's coupon has expired on day 7
    ep = Episodes(
        cust=np.array([0, 0, 1, 2]), sec=np.array([500, 100, 50, 10]), etype=np.zeros(4, int),
        stage=np.zeros(4, int), troubled=np.zeros(4, bool), bought=np.array([True, True, False, True]),
        discount=np.array([0.0, 0.3, np.nan, 0.0]), pre=np.ones(4, bool),
    )
    use_coupons(7, ep, state)
    np.testing.assert_array_equal(ep.discount, [0.0, 0.3, np.nan, 0.0])  # the earlier purchase kept its 0.3
    assert list(state.coupon_until) == [-1, 10, 5]  # spent by 0; 1 bought nothing; 2's had expired


def test_window_outcomes_match_a_path_by_path_monte_carlo() -> None:
    """Visits as a piecewise Poisson process cut by a piecewise churn hazard, purchases thinned from visits,
    a coupon used by the first purchase before it expires: the closed forms against sampled paths (expected
list prices in place of the log-normal draws, which only scale spend)."""
    rng = np.random.default_rng(4)
    m, W, R = 200_000, 30.0, 14.0
    ends, h_mult, v_mult = np.array([[20.0, 14.0]]), np.array([[-1.0, 0.0]]), np.array([[0.0, 0.9]])
    h0, v0 = np.array([0.02]), np.array([0.08])
    shopper = Shopper(buy_prob=np.array([0.3]), order_value=np.array([50.0]), coupon_rate=np.array([0.05]))
    closed = window_outcomes(
        Pieces.build(ends, h_mult, v_mult, h0, v0, W), shopper, np.array([0.2]),
        Pieces.build(ends, h_mult, v_mult, h0, v0, R),
    )
    churn = piecewise_churn_time(np.repeat(ends, m, 0), np.repeat(h_mult, m, 0), np.repeat(h0, m),
                                 rng.exponential(1.0, m), W)
    bounds, rates = [0.0, 14.0, 20.0, W], [0.08 * np.exp(0.9), 0.08, 0.08]
    visit_times = []
    for (a, b), r in zip(itertools.pairwise(bounds), rates, strict=True):
        k = rng.poisson(r * (b - a), m)
        visit_times.append((np.repeat(np.arange(m), k), a + rng.random(k.sum()) * (b - a)))
    path = np.concatenate([v[0] for v in visit_times])
    when = np.concatenate([v[1] for v in visit_times])
    keep = when < churn[path]
    path, when = path[keep], when[keep]
    buys = rng.random(len(path)) < 0.3
    bp, bt = path[buys], when[buys]
    usual = np.where(rng.random(len(bp)) < 0.05, 0.1, 0.0)
    order = np.lexsort((bt, bp))
    first = np.r_[True, bp[order][1:] != bp[order][:-1]]
    disc = usual.copy()
    use = order[first & (bt[order] < R)]
    disc[use] = np.maximum(disc[use], 0.2)
    n_visit = np.bincount(path, minlength=m)
    spend = np.bincount(bp, 50.0 * (1 - disc), minlength=m)
    for sampled, exact in (
        (n_visit > 0, closed.p_visit), (np.bincount(bp, minlength=m) > 0, closed.p_buy), (spend, closed.spend),
    ):
        sampled = sampled.astype(float)
        assert abs(sampled.mean() - exact[0]) < 4 * sampled.std() / np.sqrt(m) + 1e-9, (sampled.mean(), exact)


# ------------------------------------------------------------------------ consent, sleeping dogs, history
def test_low_consent_leaves_most_customers_one_channel() -> None:
    low, default = _world("low_consent", 3000, 1), _world("retention", 3000, 1)
    cols = [f"consent_{c}" for c in ("email", "sms", "push", "call")]

    def single_share(w: Tables) -> float:
        k = w.customers[cols].sum(axis=1)
        return float((k == 1).sum() / (k > 0).sum())

    assert single_share(low) > 0.8 > 0.5 > single_share(default)
    assert (low.customers[cols].sum(axis=1) > 0).mean() > 0.6  # still most customers are reachable


def test_sleeping_dogs_scenario_hurts_thirty_percent() -> None:
    def hurt_share(w: Tables) -> float:
        alive = w.truth[w.truth["alive_at_cutoff"]]
        p = alive[[f"p_churn__{a}" for a in CAT.ids[1:]]].to_numpy()
        return float((p > alive[["p_churn_no_contact"]].to_numpy()).all(axis=1).mean())

    dogs = _world("sleeping_dogs", 4000, 1)
    assert 0.26 < hurt_share(dogs) < 0.34
    assert hurt_share(_world("retention", 4000, 1)) < 0.21


def test_short_history_has_ninety_days_and_exact_labels() -> None:
    w = _world("short_history", 4000, 1)
    m = w.meta["manifest"]
    start, cut = pd.Timestamp(m["start"]), _cutoff(w)
    assert cut - start == pd.Timedelta(days=90) and m["horizon_days"] == 30
    tp = w.touchpoints
    active = tp[(tp["direction"] == "inbound") & (tp["ts"] < cut)]
    assert active["ts"].min() >= start
    assert w.outreach["ts"].between(start, cut).all()
    alive = w.truth["alive_at_cutoff"].to_numpy()
    z = _z(w.truth["churned"].to_numpy(float)[alive], w.truth["p_churn_no_contact"].to_numpy()[alive])
    assert abs(z) < 4


def test_a_scenario_world_is_deterministic() -> None:
    def simulate() -> Tables:
        return simulate_world(scenario_config("spend_offers", n_customers=300, days=120, seed=4),
                              np.random.default_rng(4))

    a, b = simulate(), simulate()
    for name in ("customers", "touchpoints", "outreach", "truth"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert a.meta == b.meta and a.meta["manifest"]["params"]["real_discounts"] is True
