"""Starbucks offer policy: outcome windows, leak-free covariates, policy recovery and the report.

The unit tests run on a small synthetic Starbucks-shaped log made here (three offers, three weekly waves, an
offer effect that depends on income); one test marked ``shared`` runs the whole evaluation on the real data
and skips when ``../shared/datasets`` is absent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract.schema import Tables
from features.contract.validate import validate_tables
from features.decision.ope import dr_pseudo_outcomes
from tests.paths import SHARED, needs_shared
from training.starbucks.covariates import pre_receipt_covariates
from training.starbucks.evaluate import evaluate_starbucks, learning_table
from training.starbucks.outcome_model import cross_fit_q
from training.starbucks.outcomes import window_outcomes
from training.starbucks.policies import PolicyTree, ShrunkGainPolicy, quantile_edges
from training.starbucks.rows import offer_catalogue, receipt_rows
from training.starbucks.selection import person_folds, select_policy

BASE = pd.Timestamp("2018-08-01T00:00:00Z")
WAVES_H = (0, 168, 336)
# name: (type, reward, min spend, validity days, channels)
OFFERS = {
    "bogo_5_5_7d": ("bogo", 5.0, 5.0, 7.0, "web,email,mobile"),
    "discount_2_10_10d": ("discount", 2.0, 10.0, 10.0, "web,email,mobile,social"),
    "informational_0_0_3d": ("informational", 0.0, 0.0, 3.0, "email,mobile,social"),
}
RICH = 70_000.0  # income above which the bogo works, below which the discount works


def _h(hours) -> pd.DatetimeIndex:
    return BASE + pd.to_timedelta(np.asarray(hours, dtype=float), unit="h")


def _tables(customers: pd.DataFrame, touch: list[dict], outreach: list[dict]) -> Tables:
    tp = pd.DataFrame(touch, columns=["customer_id", "ts", "channel", "kind", "direction", "amount", "discount",
                                      "offer_id", "campaign_id"])
    out = pd.DataFrame(outreach)
    for col, idx in (("offer_type", 0), ("reward", 1), ("difficulty", 2), ("duration_days", 3), ("channels", 4)):
        out[col] = [OFFERS[o][idx] for o in out["offer"]]
    tables, _ = validate_tables(Tables(customers=customers, touchpoints=tp, outreach=out), source="synthetic")
    return tables


def _customers(ids, income, rng: np.random.Generator) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame({
        "customer_id": ids,
        "signup_ts": BASE - pd.to_timedelta(rng.integers(30, 1500, n), unit="D"),
        "consent_email": True, "consent_sms": False, "consent_push": True, "consent_call": False,
        "gender": rng.choice(["F", "M", "O"], n),
        "age": rng.integers(20, 80, n).astype(float),
        "income": np.asarray(income, dtype=float),
    })


def _receipt(cid: str, hour: float, offer: str, p: float = 1 / 3) -> dict:
    return {"customer_id": cid, "ts": _h([hour])[0], "channel": "email", "offer": offer,
            "campaign_id": f"wave_{int(hour)}h", "propensity": p, "holdout": False}


def _buy(cid: str, hour: float, amount: float, discount: float = 0.0) -> dict:
    return {"customer_id": cid, "ts": _h([hour])[0], "channel": "store", "kind": "purchase", "direction": "inbound",
            "amount": amount, "discount": discount}


def _react(cid: str, hour: float, kind: str, offer: str, wave_h: int) -> dict:
    return {"customer_id": cid, "ts": _h([hour])[0], "channel": "email", "kind": kind, "direction": "inbound",
            "discount": OFFERS[offer][1] if kind == "offer_redeemed" else np.nan, "offer_id": offer,
            "campaign_id": f"wave_{wave_h}h"}


def synthetic_log(n_persons: int, rng: np.random.Generator, effect: float = 1.0) -> Tables:
    """A randomised offer log: uniform offers per wave; the bogo adds ``effect`` purchases/day for the rich,
    the discount for the others; ~10 per purchase; completions pay rewards, views follow receipts."""
    ids = [f"p{i:05d}" for i in range(n_persons)]
    income = rng.uniform(30_000, 110_000, n_persons)
    offers = list(OFFERS)
    touch, outreach = [], []
    for i, cid in enumerate(ids):
        rich = income[i] >= RICH
        for w, h0 in enumerate(WAVES_H):
            offer = offers[rng.integers(0, 3)]
            outreach.append(_receipt(cid, h0, offer))
            h1 = WAVES_H[w + 1] if w + 1 < len(WAVES_H) else h0 + 168
            lift = effect if (offer == "bogo_5_5_7d") == rich and offer != "informational_0_0_3d" else 0.0
            rate = 0.4 + lift  # purchases per day in the window
            times = np.sort(rng.uniform(h0, h1, rng.poisson(rate * (h1 - h0) / 24)))
            amounts = np.round(rng.uniform(4, 16, len(times)), 2)
            if rng.random() < 0.8:
                touch.append(_react(cid, h0 + 2, "message_open", offer, h0))
            _, reward, need, days, _ = OFFERS[offer]
            cum, done = 0.0, False
            for t, a in zip(times, amounts, strict=True):
                cum += a
                paid = reward if (reward > 0 and not done and cum >= need and t < h0 + 24 * days) else 0.0
                touch.append(_buy(cid, t, a, paid))
                if paid:
                    touch.append(_react(cid, t, "offer_redeemed", offer, h0))
                    done = True
    return _tables(_customers(ids, income, rng), touch, outreach)


@pytest.fixture(scope="module")
def synthetic() -> Tables:
    return synthetic_log(1500, np.random.default_rng(3))


# ------------------------------------------------------------------------------ outcome window


def _two_wave_person() -> Tables:
    rng = np.random.default_rng(0)
    touch = [
        _buy("a", 100, 50.0),  # in the first window (to the next wave at 168)
        _buy("a", 168, 8.0),  # at the receipt: in the first window
        _react("a", 170, "message_open", "bogo_5_5_7d", 168),
        _buy("a", 200, 12.0, 5.0),
        _react("a", 200, "offer_redeemed", "bogo_5_5_7d", 168),
        _buy("a", 300, 250.0),  # capped at 100
        _react("a", 320, "offer_redeemed", "discount_2_10_10d", 0),  # an older receipt's reward: not this offer's
        _buy("a", 336, 20.0),  # the next wave's window
        _buy("a", 400, 1.0),
    ]
    outreach = [_receipt("a", 0, "discount_2_10_10d"), _receipt("a", 168, "bogo_5_5_7d"),
                _receipt("a", 336, "informational_0_0_3d")]
    return _tables(_customers(["a"], [50_000.0], rng), touch, outreach)


def test_outcome_uses_only_the_window_after_receipt_and_subtracts_rewards_paid() -> None:
    t = _two_wave_person()
    rows = receipt_rows(t)
    assert rows["offer"].tolist() == ["discount_2_10_10d", "bogo_5_5_7d", "informational_0_0_3d"]
    Y = window_outcomes(rows, t, amount_cap=100.0)
    # First receipt at hour 0: the window runs to the next wave (168 h), and the hour-100 purchase is in it.
    assert Y["hours"].tolist() == [168.0, 168.0, 64.0]  # the last wave ends at the log's last event (hour 400)
    assert Y["spend"].tolist() == [50.0, 8.0 + 12.0 + 100.0, 20.0 + 1.0]
    # Only this receipt's completion counts; the discount's reward (paid at 320, outside its window) does not.
    assert Y["reward_paid"].tolist() == [0.0, 5.0, 0.0]
    assert Y["completed"].tolist() == [False, True, False] and Y["viewed"].tolist() == [False, True, False]
    assert Y["capped"].tolist() == [0, 1, 0]
    assert np.allclose(Y["net_per_day"], [50.0 / 7, (120.0 - 5.0) / 7, 21.0 / (64 / 24)])
    raw = window_outcomes(rows, t, amount_cap=None, margin=0.5)
    assert raw["spend"].iloc[1] == 270.0 and np.isclose(raw["net_per_day"].iloc[1], (0.5 * 270.0 - 5.0) / 7)
    # A fixed window: 72 h after each receipt; the one that runs past the log's end is censored.
    fixed = window_outcomes(rows, t, window_hours=72)
    assert fixed["spend"].tolist() == [0.0, 8.0 + 12.0, 20.0 + 1.0]
    assert fixed["censored"].tolist() == [False, False, True]


def test_covariates_use_only_events_strictly_before_the_receipt(synthetic: Tables) -> None:
    rows = receipt_rows(synthetic)
    cat = offer_catalogue(synthetic.outreach)
    X = pre_receipt_covariates(rows, synthetic, cat)
    assert (X.loc[rows["wave"] == 0, ["prior_spend", "prior_tx", "received", "viewed", "completed"]] == 0).all().all()
    assert X.loc[rows["wave"] == 0, "prior_spend_per_day"].isna().all()  # nothing is known at the first wave
    # Events at or after every receipt (purchases, views, completions, at the last receipt's exact time and later)
    # change no row's covariates.
    last = max(WAVES_H)
    ids = synthetic.customers["customer_id"].astype(str).tolist()
    extra = [_buy(c, last + k * 7.0, 999.0) for c in ids[:200] for k in range(3)]
    extra += [_react(c, last, "message_open", "bogo_5_5_7d", last) for c in ids[:200]]
    extra += [_react(c, last + 5, "offer_redeemed", "bogo_5_5_7d", last) for c in ids[:200]]
    tp = pd.concat([synthetic.touchpoints.astype({"customer_id": str}), pd.DataFrame(extra)], ignore_index=True)
    later, _ = validate_tables(synthetic.with_(touchpoints=tp), source="synthetic+future")
    X2 = pre_receipt_covariates(receipt_rows(later), later, cat)
    pd.testing.assert_frame_equal(X, X2)
    # The check can fail: the same purchase at a first-wave receipt's time reaches the second wave's covariates only.
    one = ids[0]
    tp1 = pd.concat([synthetic.touchpoints.astype({"customer_id": str}), pd.DataFrame([_buy(one, 0, 999.0)])],
                    ignore_index=True)
    moved, _ = validate_tables(synthetic.with_(touchpoints=tp1), source="synthetic+1")
    X3 = pre_receipt_covariates(receipt_rows(moved), moved, cat)
    changed = (X3 != X) & ~(X3.isna() & X.isna())
    who = rows.loc[changed.any(axis=1), ["customer_id", "wave"]]
    assert set(who["customer_id"]) == {one} and 0 not in set(who["wave"])


# ------------------------------------------------------------------------------ policy


def test_learned_policy_recovers_the_better_offer_per_income_group(synthetic: Tables) -> None:
    rng = np.random.default_rng(5)
    rows, X, Y, cat = learning_table(synthetic)
    a, p, r = rows["action"].to_numpy(), rows["propensity"].to_numpy(), Y["net_per_day"].to_numpy()
    persons = rows["customer_id"].to_numpy()
    folds = person_folds(persons, 3, rng)
    q = cross_fit_q(X, a, r, folds, cat, seed=1)
    G = dr_pseudo_outcomes(a, p, r, q)
    candidates = {"tree": lambda: PolicyTree(depth=1, min_leaf_share=0.1),
                  "ridge": lambda: ShrunkGainPolicy(ridge=0.01, threshold=0.5)}
    chosen, table = select_policy(X, G, folds, persons, candidates={"best_single_offer": _single, **candidates})
    assert chosen in candidates, table
    policy = candidates[chosen]().fit(X, G)
    choice = np.asarray(cat.index)[policy.predict(X)]
    rich = X["income"].to_numpy() >= RICH
    assert (choice[rich] == "bogo_5_5_7d").mean() > 0.9
    assert (choice[~rich] == "discount_2_10_10d").mean() > 0.9
    tree = PolicyTree(depth=1, min_leaf_share=0.1).fit(X, G)
    assert tree.root_["column"] == "income" and abs(tree.root_["below"] - RICH) < 12_000


def _brute_force_tree_value(X: pd.DataFrame, G: np.ndarray, n_bins: int, min_leaf_share: float) -> float:
    """The best summed pseudo-outcome of any depth-2 tree over the same thresholds, by enumeration."""
    V = X.to_numpy(float)
    min_leaf = int(np.ceil(min_leaf_share * len(G)))
    conds = [(j, e) for j in range(V.shape[1]) for e in quantile_edges(V[:, j], n_bins)]

    def leaf(m):
        return G[m].sum(0).max() if m.sum() >= min_leaf else -np.inf

    def side(m):
        return max([leaf(m)] + [leaf(m & ~(V[:, k] >= e)) + leaf(m & (V[:, k] >= e)) for k, e in conds])

    return max([G.sum(0).max()] + [side(~(V[:, j] >= e)) + side(V[:, j] >= e) for j, e in conds])


def test_policy_tree_is_the_best_tree_over_its_thresholds() -> None:
    for seed in range(4):
        rng = np.random.default_rng(seed)
        n = 300
        X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 5, n).astype(float),
                          "c": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n))})
        G = rng.normal(size=(n, 3)) + np.column_stack([X["a"] > 0, (X["b"] > 2) & (X["a"] < 0), np.zeros(n)])
        tree = PolicyTree(depth=2, min_leaf_share=0.1, n_bins=4).fit(X, G)
        value = G[np.arange(n), tree.predict(X)].sum()
        assert np.isclose(value, _brute_force_tree_value(X, G, 4, 0.1)), (seed, tree.root_)
        assert len(tree.rules(["x", "y", "z"])) in (1, 2, 3, 4)


def _single():
    from training.starbucks.policies import BestSingleOffer

    return BestSingleOffer()


def test_no_signal_keeps_the_best_single_offer() -> None:
    """Without any effect the guard keeps everyone on one offer (cross-validation finds nothing clearly better)."""
    t = synthetic_log(600, np.random.default_rng(11), effect=0.0)
    rng = np.random.default_rng(2)
    rows, X, Y, cat = learning_table(t)
    a, p, r = rows["action"].to_numpy(), rows["propensity"].to_numpy(), Y["net_per_day"].to_numpy()
    persons = rows["customer_id"].to_numpy()
    folds = person_folds(persons, 3, rng)
    G = dr_pseudo_outcomes(a, p, r, cross_fit_q(X, a, r, folds, cat, seed=0))
    chosen, _ = select_policy(X, G, folds, persons, z=1.0)
    assert chosen == "best_single_offer"


def test_report_has_the_keys_and_beats_random_on_the_synthetic_log(synthetic: Tables) -> None:
    rep = evaluate_starbucks(synthetic, rng=np.random.default_rng(0), n_folds=3, n_boot=100,
                             candidates={"best_single_offer": _single,
                                         "tree": lambda: PolicyTree(depth=1, min_leaf_share=0.1)})
    for key in ("n_rows", "n_persons", "train", "heldout", "outcome", "identification", "method",
                "model_selection", "policy", "offer_mix", "channel_mix", "values", "best_single_offer",
                "differences", "beats_random", "matches_best_single", "not_worse_than_best_single",
                "matches_best_single_rule",
                "sensitivity_uncapped", "best_personalised_candidate", "seconds"):
        assert key in rep, key
    assert rep["n_rows"] == 1500 * len(WAVES_H) and rep["n_persons"] == 1500
    assert rep["train"]["persons"] + rep["heldout"]["persons"] == 1500
    for name in ("learned", "random", "plain_lightgbm_argmax", *(f"single:{o}" for o in OFFERS)):
        assert set(rep["values"][name]) == {"ips", "snips", "dr"}
    assert rep["outcome"]["censored_windows_dropped"] == 0
    assert set(rep["differences"]) >= {"learned_minus_random", "learned_minus_best_single"}
    assert rep["policy"]["name"] == "tree" and rep["beats_random"] and rep["matches_best_single"]
    assert rep["differences"]["learned_minus_best_single"]["low"] > 0  # half the persons are better off elsewhere
    assert np.isclose(sum(rep["offer_mix"].values()), 1.0) and rep["channel_mix"]["email"] == 1.0
    again = evaluate_starbucks(synthetic, rng=np.random.default_rng(0), n_folds=3, n_boot=100,
                               candidates={"best_single_offer": _single,
                                           "tree": lambda: PolicyTree(depth=1, min_leaf_share=0.1)})
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in rep.items() if k != "seconds"}


# ------------------------------------------------------------------------------ real data (shared)


@needs_shared
@pytest.mark.slow
def test_real_starbucks_policy_beats_random() -> None:
    rep = evaluate_starbucks(SHARED / "starbucks", rng=np.random.default_rng(0), n_boot=200)
    assert rep["n_rows"] == 76_277 and rep["n_persons"] == 16_994
    assert rep["outcome"]["censored_windows_dropped"] == 0
    assert rep["outcome"]["validity_windows_past_log_end"] == 10_236  # the 13 % a validity window would lose
    assert len(rep["values"]) == 3 + 10
    assert rep["best_single_offer"] == "discount_2_10_10d"
    # Measured (seeds 0, 1, 2): learned - random +1.30, +1.28, +1.32 per day, 95 % intervals from 1.12 up.
    assert rep["beats_random"]
    assert rep["differences"]["learned_minus_random"]["low"] > 0.5
    # The learned policy stays on the best single offer for all but a few rows (measured: 1.3 %, 0 %, 0.2 %), so
    # it is within a hair of it (+0.004, 0, -0.0003 per day): which side of zero is not robust, hence no
    # assertion on matches_best_single.
    assert rep["policy"]["deviation_share"] < 0.05
    assert abs(rep["differences"]["learned_minus_best_single"]["value"]) < 0.05
    # The plain argmax of the outcome model does not clearly beat the best single offer (-0.065, +0.011, +0.012).
    assert rep["differences"]["plain_lightgbm_argmax_minus_best_single"]["low"] < 0
