"""The simulated world: determinism, contract, exact truth, and the structure later models must find."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features.contract.catalogue import NO_CONTACT, load_catalogue
from features.contract.schema import CHANNELS, KINDS, OUTREACH_CHANNELS, PASSIVE_KINDS, Tables
from features.sources.simulation.config import SimConfig
from features.sources.simulation.truth import piecewise_churn_time, piecewise_label_probability
from features.sources.simulation.world import simulate_world
from tests.features.sources.logged_effects import logged_effect

N = 2_000
DAYS = 365


def _simulate(n: int, seed: int) -> Tables:
    """A freshly simulated world (not the shared cached one), for the determinism tests."""
    return simulate_world(SimConfig(n_customers=n, days=DAYS, seed=seed), np.random.default_rng(seed))


@pytest.fixture(scope="module")
def world(make_world) -> Tables:
    return make_world(N, DAYS, seed=11)


@pytest.fixture(scope="module")
def alive(world: Tables) -> pd.DataFrame:
    return world.truth[world.truth["alive_at_cutoff"]].reset_index(drop=True)


def _cutoff(w: Tables) -> pd.Timestamp:
    return pd.Timestamp(w.meta["manifest"]["cutoff"])


def _labels_from_touchpoints(w: Tables) -> pd.Series:
    """The shared churn-label rule, implemented independently on the touchpoint log."""
    cut = _cutoff(w)
    end = cut + pd.Timedelta(days=w.meta["manifest"]["horizon_days"])
    tp = w.touchpoints
    win = tp[(tp["ts"] >= cut) & (tp["ts"] < end)]
    active = win[(win["direction"] == "inbound") & ~win["kind"].isin(sorted(PASSIVE_KINDS))]
    has_active = active.groupby("customer_id", observed=False).size() > 0
    cancelled = win[win["kind"] == "cancel"].groupby("customer_id", observed=False).size() > 0
    return (cancelled | ~has_active).astype(int).reindex(w.customers["customer_id"]).reset_index(drop=True)


# ------------------------------------------------------------------------------------------ determinism
def test_same_seed_same_frames_different_seed_different() -> None:
    a, b, c = _simulate(500, 3), _simulate(500, 3), _simulate(500, 4)
    for name in ("customers", "touchpoints", "outreach", "truth"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert a.meta == b.meta
    assert not a.touchpoints["ts"].equals(c.touchpoints["ts"].iloc[: len(a.touchpoints)])
    assert not a.truth["p_churn_no_contact"].equals(c.truth["p_churn_no_contact"])


def test_same_seed_same_bytes(tmp_path) -> None:
    io = pytest.importorskip("features.sources.io", reason="features.sources.io (write_tables) not written yet")
    paths = []
    for i, seed in enumerate((5, 5, 6)):
        out = tmp_path / f"w{i}"
        io.write_tables(_simulate(400, seed), out)
        paths.append(out)
    files = sorted(p.name for p in paths[0].iterdir())
    assert files == sorted(p.name for p in paths[1].iterdir())
    assert any(f.endswith(".parquet") for f in files)
    for f in files:
        assert (paths[0] / f).read_bytes() == (paths[1] / f).read_bytes(), f
    assert (paths[0] / "touchpoints.parquet").read_bytes() != (paths[2] / "touchpoints.parquet").read_bytes()


def test_rng_is_required_and_config_checked() -> None:
    with pytest.raises(TypeError, match="Generator"):
        simulate_world(SimConfig(n_customers=10), 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cancel_probability"):
        SimConfig(cancel_probability=1.5)
    with pytest.raises(ValueError, match="days"):
        SimConfig(days=10)


# ------------------------------------------------------------------------------------------- contract
def test_already_normalised_and_valid(world: Tables) -> None:
    validate = pytest.importorskip("features.contract.validate", reason="features.contract.validate not written yet")
    v, _report = validate.validate_tables(world, source="simulated")
    for name in ("customers", "touchpoints", "outreach"):
        pd.testing.assert_frame_equal(getattr(v, name), getattr(world, name), check_like=False)


def test_shape_of_the_log(world: Tables) -> None:
    tp, cust = world.touchpoints, world.customers
    assert list(tp["customer_id"].cat.categories) == list(cust["customer_id"])
    assert set(tp["kind"].unique()) == set(KINDS)  # every kind occurs
    assert set(tp["channel"].unique()) == set(CHANNELS)  # every channel occurs
    codes = tp["customer_id"].cat.codes.to_numpy()
    ts = tp["ts"].astype("int64").to_numpy()
    assert np.all((np.diff(codes) > 0) | ((np.diff(codes) == 0) & (np.diff(ts) >= 0)))
    assert str(tp["ts"].dt.tz) == "UTC"
    assert (tp.loc[tp["kind"] == "purchase", "amount"] > 0).all()
    assert tp.loc[tp["kind"] == "impression", "direction"].eq("outbound").all()
    m = world.meta["manifest"]
    assert m["cutoff"] == _cutoff(world).isoformat() and m["horizon_days"] == 90 and m["seed"] == 11
    assert m["counts"]["touchpoints"] == len(tp) and m["counts"]["customers"] == N
    assert not (tp["ts"] >= _cutoff(world) + pd.Timedelta(days=90)).any()


def test_outreach_log_is_a_randomised_policy_with_propensities(world: Tables) -> None:
    o, cust = world.outreach, world.customers.set_index("customer_id")
    assert o.groupby(["customer_id", "campaign_id"], observed=False).size().max() == 1
    hold = o[o["holdout"]]
    assert hold["channel"].isna().all() and hold["offer"].eq("none").all()
    assert set(np.round(hold["propensity"].unique(), 6)) <= {0.2, 0.4}
    sent = o[~o["holdout"]]
    assert sent["channel"].notna().all() and sent["propensity"].between(0, 1, inclusive="right").all()
    cat = load_catalogue()
    assert set(zip(sent["channel"].astype(str), sent["offer"], strict=True)) <= {
        (a.channel, a.offer) for a in cat.actions[1:]
    }
    assert 0.15 < o["holdout"].mean() < 0.45
    # outreach reactions never precede the contact and live only as touchpoints
    assert not world.touchpoints["kind"].isin(["outreach"]).any()
    # contacts are only ever on channels the customer consented to at the time; consent can only be
    # withdrawn (unsubscribe), so a channel consented at the cutoff was consented all along
    for c in OUTREACH_CHANNELS:
        ids = sent.loc[sent["channel"] == c, "customer_id"].astype(str)
        tp = world.touchpoints
        unsub = tp.loc[(tp["kind"] == "unsubscribe") & (tp["channel"] == c), "customer_id"].astype(str)
        ok = cust.loc[ids, f"consent_{c}"].to_numpy() | ids.isin(set(unsub)).to_numpy()
        assert ok.all(), c


# -------------------------------------------------------------------------------------------- truth
def test_truth_complete_and_consistent(world: Tables) -> None:
    tr, cat = world.truth, load_catalogue()
    assert len(tr) == N and tr["customer_id"].tolist() == world.customers["customer_id"].tolist()
    p_cols = [f"p_churn__{a}" for a in cat.ids]
    ev_cols = [f"ev__{a}" for a in cat.ids]
    need = ["p_churn_no_contact", "value", "best_action", "best_ev", "churned", *p_cols, *ev_cols]
    assert not tr[need].isna().any().any()
    for col in (
        "trait_engagement",
        "trait_trend",
        "trait_preferred_channel",
        "trait_price_sensitivity",
        "trait_value",
        "trait_intent_stage",
        "trait_promoter",
        "trait_segment",
        "alive_at_cutoff",
        *[f"trait_pref_{c}" for c in OUTREACH_CHANNELS],
    ):
        assert col in tr.columns
    p = tr[p_cols].to_numpy()
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(tr[f"p_churn__{NO_CONTACT}"], tr["p_churn_no_contact"])
    assert (tr[f"ev__{NO_CONTACT}"] == 0).all()
    for a in cat.actions[1:]:
        expect = tr["value"] * (tr["p_churn_no_contact"] - tr[f"p_churn__{a.id}"]) - a.cost
        np.testing.assert_allclose(tr[f"ev__{a.id}"], expect, rtol=1e-12, atol=1e-9)
    # best action is the best consented one
    cust = world.customers.set_index("customer_id").loc[tr["customer_id"]]
    for a in cat.actions[1:]:
        chosen = (tr["best_action"] == a.id).to_numpy()
        assert cust[f"consent_{a.channel}"].to_numpy()[chosen].all()
    assert (tr["best_ev"] >= 0).all()
    dead = ~tr["alive_at_cutoff"]
    assert (tr.loc[dead, "p_churn_no_contact"] == 1).all() and (
        tr.loc[dead, "best_action"] == NO_CONTACT
    ).all()


def test_closed_form_reduces_to_the_constant_hazard_formula() -> None:
    rng = np.random.default_rng(0)
    h, lam, H, c = rng.uniform(0, 0.02, 50), rng.uniform(0, 0.2, 50), 90.0, 0.6
    expect = (
        c * (1 - np.exp(-h * H))
        + (1 - c) * h / (h + lam) * (1 - np.exp(-(h + lam) * H))
        + np.exp(-(h + lam) * H)
    )
    got = piecewise_label_probability(np.zeros((50, 2)), rng.normal(0, 1, (50, 2)), h, lam, c, H)
    np.testing.assert_allclose(got, expect, rtol=1e-12)


def test_closed_form_matches_an_independent_monte_carlo() -> None:
    """Competing exponential clocks per constant-hazard segment (memoryless), sampled path by path."""
    rng = np.random.default_rng(1)
    m, H, c = 200_000, 90.0, 0.6
    ends, mult = np.array([[20.0, 60.0]]), np.array([[-1.0, 0.7]])
    h0, lam = np.array([0.01]), np.array([0.02])
    bounds = [0.0, 20.0, 60.0, 90.0]
    hz = [0.01 * np.exp(-1.0 + 0.7), 0.01 * np.exp(0.7), 0.01]
    t_churn = np.full(m, np.inf)
    t_touch = np.full(m, np.inf)
    for (a, b), hk in zip(itertools.pairwise(bounds), hz, strict=True):
        undecided = np.isinf(t_churn)
        tc = a + rng.exponential(1 / hk, m)
        t_churn = np.where(undecided & (tc < b), tc, t_churn)
    for a, b in itertools.pairwise(bounds):
        tt = a + rng.exponential(1 / lam[0], m)
        t_touch = np.where(np.isinf(t_touch) & (tt < b), tt, t_touch)
    cancel = rng.random(m) < c
    label = (np.isfinite(t_churn) & cancel) | (t_touch >= np.minimum(t_churn, H))
    p = piecewise_label_probability(ends, mult, h0, lam, c, H)[0]
    assert abs(label.mean() - p) < 4 * np.sqrt(p * (1 - p) / m)
    # the churn-time sampler used after the cutoff has the same law
    tc = piecewise_churn_time(
        np.repeat(ends, m, 0), np.repeat(mult, m, 0), np.repeat(h0, m), rng.exponential(1, m), H
    )
    assert abs(np.isfinite(tc).mean() - np.isfinite(t_churn).mean()) < 0.01


def test_realised_labels_follow_the_truth(world: Tables, make_world) -> None:
    """Label rule on post-cutoff touchpoints = truth.churned; its rate = the mean exact probability."""
    labels = _labels_from_touchpoints(world)
    tr = world.truth
    assert (labels.to_numpy() == tr["churned"].to_numpy()).all()
    rates, probs, var = [], [], []
    for seed in (21, 22):
        w = make_world(3_000, DAYS, seed=seed)
        a = w.truth["alive_at_cutoff"].to_numpy()
        lab = _labels_from_touchpoints(w).to_numpy()[a]
        p = w.truth["p_churn_no_contact"].to_numpy()[a]
        rates.append(lab.sum())
        probs.append(p.sum())
        var.append((p * (1 - p)).sum())
    z = (sum(rates) - sum(probs)) / np.sqrt(sum(var))
    assert abs(z) < 4, (sum(rates), sum(probs), z)


# ------------------------------------------------------------------- the structure models must find
def test_a_fading_engagement_churns_more(alive: pd.DataFrame) -> None:
    fading = alive["trait_trend"] == "fading"
    assert alive.loc[fading, "churned"].mean() > 1.5 * alive.loc[~fading, "churned"].mean()
    assert (
        alive.loc[fading, "p_churn_no_contact"].mean() > 1.5 * alive.loc[~fading, "p_churn_no_contact"].mean()
    )


def test_b_past_opens_predict_future_opens(world: Tables) -> None:
    o = world.outreach[~world.outreach["holdout"]].copy()
    opens = world.touchpoints[world.touchpoints["kind"] == "message_open"]
    key = opens["customer_id"].astype(str) + "|" + opens["campaign_id"].astype(str)
    o["opened"] = (o["customer_id"].astype(str) + "|" + o["campaign_id"].astype(str)).isin(set(key))
    mid = o["ts"].min() + (o["ts"].max() - o["ts"].min()) / 2
    past, future = o[o["ts"] < mid], o[o["ts"] >= mid]
    rate = past.groupby(["customer_id", "channel"], observed=True)["opened"].mean().rename("past_rate")
    f = future.join(rate, on=["customer_id", "channel"]).dropna(subset=["past_rate"])
    auc = roc_auc_score(f["opened"], f["past_rate"])
    assert auc > 0.7, auc


def test_c_best_action_differs_and_is_often_no_contact(alive: pd.DataFrame) -> None:
    share = alive["best_action"].value_counts(normalize=True)
    assert 0.3 < share[NO_CONTACT] < 0.97
    assert (share.index != NO_CONTACT).sum() >= 5
    assert alive.loc[alive["best_action"] != NO_CONTACT, "best_action"].str.split(":").str[0].nunique() >= 3
    # effects are heterogeneous in sign: sleeping dogs are harmed by contact, persuadables helped
    cat = load_catalogue()
    eff = pd.DataFrame(
        {a.id: alive["p_churn_no_contact"] - alive[f"p_churn__{a.id}"] for a in cat.actions[1:]}
    )
    by_seg = eff.mean(axis=1).groupby(alive["trait_segment"]).mean()
    assert by_seg["persuadable"] > 0 > by_seg["sleeping_dog"]


def test_d_top_risk_targeting_captures_clearly_less_uplift(world: Tables, alive: pd.DataFrame) -> None:
    cat = load_catalogue()
    k = int(0.1 * len(alive))
    oracle = alive.nlargest(k, "best_ev")["best_ev"].sum()
    top = alive.nlargest(k, "p_churn_no_contact")
    cons = world.customers.set_index("customer_id").loc[top["customer_id"]]
    cut = _cutoff(world)
    tp = world.touchpoints
    op = tp[(tp["kind"] == "message_open") & (tp["ts"] < cut)]
    n_open = op.groupby(["customer_id", "channel"], observed=False).size().unstack(fill_value=0)
    n_open = n_open.reindex(
        index=top["customer_id"], columns=["email", "sms", "push", "call_center"], fill_value=0
    )
    allowed = cons[[f"consent_{c}" for c in OUTREACH_CHANNELS]].to_numpy()
    score = np.where(allowed, n_open.to_numpy() + 1e-3, -1.0)
    chans = np.array(OUTREACH_CHANNELS)[score.argmax(axis=1)]
    reach = allowed.any(axis=1)
    baselines = {}
    for offer in cat.offers:
        ev = [
            top[f"ev__{c}:{offer}"].iloc[i] if r and f"ev__{c}:{offer}" in top else 0.0
            for i, (c, r) in enumerate(zip(chans, reach, strict=True))
        ]
        baselines[f"most_opened:{offer}"] = float(np.sum(ev))
    for a in cat.actions[1:]:
        baselines[a.id] = float(top[f"ev__{a.id}"].where(cons[f"consent_{a.channel}"].to_numpy(), 0.0).sum())
    best_baseline = max(baselines.values())
    assert oracle > 0
    assert best_baseline < 0.5 * oracle, (best_baseline, oracle)
    # lost causes crowd the top of risk, and nothing helps them
    assert (top["trait_segment"] == "lost_cause").mean() > 0.25
    assert (alive.loc[alive["trait_segment"] == "lost_cause", "best_action"] == NO_CONTACT).all()


def test_e_persuadables_are_a_fifth_with_effects_of_several_points(alive: pd.DataFrame) -> None:
    cat = load_catalogue()
    p = alive[[f"p_churn__{a.id}" for a in cat.actions[1:]]].to_numpy()
    gain = alive["p_churn_no_contact"].to_numpy()[:, None] - p
    pers = (alive["trait_segment"] == "persuadable").to_numpy()
    assert 0.12 < pers.mean() < 0.28
    assert 0.03 < gain[pers].max(axis=1).mean() < 0.15  # their best contact: several percentage points
    assert np.abs(gain[alive["trait_segment"].isin(["sure_thing", "lost_cause"]).to_numpy()]).mean() < 0.005


def test_f_log_shows_the_effects_the_truth_reports(make_world) -> None:
    """Effects estimated from the history (inverse propensity weighting, contact vs holdout per segment) agree
    with the truth's: no contact changes the effect of a later campaign's contact (e.g. through fatigue)."""
    from features.labels import make_labels

    w = make_world(6_000, DAYS, seed=5)
    out = w.outreach
    day = out["ts"].dt.floor("D")
    starts = sorted(day.unique())
    cut = _cutoff(w)
    cutoffs = [d for d in starts if d + pd.Timedelta(days=90) <= cut][-8:]
    kinds = [k for k in KINDS if k not in PASSIVE_KINDS and k not in ("cancel", "unsubscribe")]
    kinds = [k for k in kinds if k not in ("message_open", "message_click", "offer_redeemed")]
    lab = make_labels(w.without_truth(), cutoffs, activity_kinds=kinds)
    lab = lab.assign(customer_id=lab["customer_id"].astype(str), cutoff=pd.to_datetime(lab["cutoff"], utc=True))
    log = out.assign(cutoff=day, customer_id=out["customer_id"].astype(str))
    m = log.merge(lab, on=["customer_id", "cutoff"])
    seg = w.truth.set_index(w.truth["customer_id"].astype(str))["trait_segment"]
    m["segment"] = seg.reindex(m["customer_id"]).to_numpy()
    action = np.where(m["holdout"], NO_CONTACT, m["channel"].astype(str) + ":" + m["offer"].astype(str))
    cat = load_catalogue()
    alive_t = w.truth[w.truth["alive_at_cutoff"]]
    true_eff = alive_t[[f"p_churn__{a.id}" for a in cat.actions[1:]]].mean(axis=1) - alive_t["p_churn_no_contact"]
    true_by = true_eff.groupby(alive_t["trait_segment"]).mean()
    y, p = m["label"].to_numpy(float), m["propensity"].to_numpy(float)
    for s in ("persuadable", "sleeping_dog"):
        est, se = logged_effect(y, p, action, (m["segment"] == s).to_numpy(), cat.ids[1:])
        assert abs(est - true_by[s]) < 3 * se + 0.01, (s, est, true_by[s], se)
    assert true_by["persuadable"] < 0 < true_by["sleeping_dog"]


# ------------------------------------------------------------------------------ truth stays unread
class _Poison:
    """Any access to the truth table fails loudly."""

    def __getattr__(self, name):
        raise AssertionError(f"feature code read the truth table ({name})")

    def __getitem__(self, key):
        raise AssertionError(f"feature code read the truth table ([{key!r}])")

    def __len__(self):
        raise AssertionError("feature code read the truth table (len)")


def test_feature_code_never_reads_truth(world: Tables) -> None:
    """Features are identical without truth, with shuffled truth, and with a truth that fails on any access
    (through ``build_features`` and through the pipeline's own fit/transform, which does not strip it)."""
    pipeline = pytest.importorskip("features.builders.pipeline", reason="features.builders.pipeline not written yet")
    cut = _cutoff(world)
    base = pipeline.build_features(world.without_truth(), cut)
    rng = np.random.default_rng(0)
    shuffled = world.truth.apply(lambda s: s.sample(frac=1.0, random_state=rng.integers(1 << 31)).to_numpy())
    pd.testing.assert_frame_equal(base, pipeline.build_features(world.with_(truth=shuffled), cut))
    for truth in (shuffled, _Poison()):
        tables = world.with_(truth=truth)
        direct = pipeline.FeaturePipeline().fit(tables, cutoff=cut).transform(tables, cutoff=cut)
        pd.testing.assert_frame_equal(base, direct)
