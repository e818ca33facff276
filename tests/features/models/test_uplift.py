"""The DR-learner recovers the sign of known heterogeneous effects, negative ones included."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from features.models.uplift import UpliftModel

ACTIONS = ["no_contact", "email:none", "email:discount_10", "push:content"]
OFFERS = ("none", "discount_10", "content")


def synthetic(n: int, rng: np.random.Generator):
    X = pd.DataFrame(rng.normal(size=(n, 5)), columns=[f"x{i}" for i in range(5)])
    X["history"] = np.where(rng.random(n) < 0.3, np.nan, rng.poisson(3, n))  # some have no outreach history
    base = 1 / (1 + np.exp(-(-0.8 + 0.8 * X["x0"])))
    # Persuadables (x1 > 0) respond to the discount; sleeping dogs (x1 < -0.5) are pushed away by any contact;
    # push content helps customers with x2 > 0.
    tau = np.zeros((n, 4))
    x1, x2 = X["x1"].to_numpy(), X["x2"].to_numpy()
    tau[:, 1] = np.where(x1 < -0.5, 0.15, -0.05)
    tau[:, 2] = np.where(x1 > 0, -0.25, np.where(x1 < -0.5, 0.2, 0.0))
    tau[:, 3] = np.where(x2 > 0, -0.2, 0.1)
    logging = np.array([0.25, 0.25, 0.25, 0.25])
    a = rng.choice(4, size=n, p=logging)
    p_true = np.clip(base.to_numpy()[:, None] + tau, 0.01, 0.99)
    y = (rng.random(n) < p_true[np.arange(n), a]).astype(int)
    return X, np.asarray(ACTIONS, dtype=object)[a], logging[a], y, p_true - p_true[:, [0]]


def with_open_rates(
    n: int, n_features: int, email: tuple[float, float], push: tuple[float, float], rng: np.random.Generator
) -> pd.DataFrame:
    """Standard normal features x0, x1, ... and e-mail and push open rates drawn from the given Beta laws."""
    X = pd.DataFrame(rng.normal(size=(n, n_features)), columns=[f"x{i}" for i in range(n_features)])
    X["chan_email_open_rate"] = rng.beta(*email, n)
    X["chan_push_open_rate"] = rng.beta(*push, n)
    return X


def through_opens(X: pd.DataFrame, effect_if_opened: dict[str, np.ndarray]) -> np.ndarray:
    """Per-action effects that act through opens: the open rate on the action's channel times its offer's
    effect of an opened contact (no effect for no contact)."""
    tau = np.zeros((len(X), len(ACTIONS)))
    for k, act in enumerate(ACTIONS[1:], start=1):
        ch, off = act.split(":")
        tau[:, k] = X[f"chan_{ch}_open_rate"].to_numpy() * effect_if_opened[off]
    return tau


def uniformly_logged(base: np.ndarray, tau: np.ndarray, rng: np.random.Generator):
    """Actions logged uniformly at random and churn outcomes: (actions, propensities, outcomes, true effects)."""
    n = len(base)
    a = rng.choice(len(ACTIONS), size=n)
    p_true = np.clip(base[:, None] + tau, 0.01, 0.99)
    y = (rng.random(n) < p_true[np.arange(n), a]).astype(int)
    return np.asarray(ACTIONS, dtype=object)[a], np.full(n, 1 / len(ACTIONS)), y, p_true - p_true[:, [0]]


@pytest.mark.parametrize("final", ["dr", "plugin"])
def test_effect_signs_recovered(final: str) -> None:
    rng = np.random.default_rng(0)
    X, a, p, y, _true_effect = synthetic(12_000, rng)
    model = UpliftModel(
        ACTIONS,
        outcome_estimators=150,
        effect_estimators=100,
        effect_min_child_samples=200,
        final=final,
        random_state=0,
    ).fit(X, a, p, y)
    Xt, _, _, _, true_t = synthetic(2000, np.random.default_rng(1))
    est = model.predict_effect(Xt)
    big = np.abs(true_t[:, 1:]) >= 0.05
    agree = np.sign(est[:, 1:])[big] == np.sign(true_t[:, 1:])[big]
    assert agree.mean() >= 0.8, agree.mean()
    harmful = true_t[:, 2] > 0.1
    assert (est[harmful, 2] > 0).mean() >= 0.8  # negative effects (sleeping dogs) are learned
    p0, pa = model.predict_churn(Xt)
    assert pa.shape == (2000, 4) and np.allclose(pa[:, 0], p0)
    assert ((pa >= 0) & (pa <= 1)).all()
    clone = pickle.loads(pickle.dumps(model))
    assert np.allclose(clone.predict_effect(Xt.head(50)), est[:50])


def test_bad_input_is_named() -> None:
    rng = np.random.default_rng(2)
    X, a, p, y, _ = synthetic(200, rng)
    a[0] = "fax:none"
    with pytest.raises(ValueError, match="fax:none"):
        UpliftModel(ACTIONS).fit(X, a, p, y)
    with pytest.raises(ValueError, match="actions\\[0\\]"):
        UpliftModel(ACTIONS[1:]).fit(X, a, p, y)


def test_reach_final_stage_recovers_effects_that_act_through_opens() -> None:
    """Effects of the form open rate on the channel x a per-offer, feature-dependent effect of an opened contact."""

    def reach_world(n: int, rng: np.random.Generator):
        X = with_open_rates(n, 4, email=(2, 5), push=(5, 2), rng=rng)
        base = 1 / (1 + np.exp(-(-1.2 + 0.8 * X["x0"].to_numpy())))
        g = {"none": -0.25 * X["x1"].to_numpy(), "discount_10": -0.1 + 0.3 * X["x2"].to_numpy()}
        g["content"] = 0.1 - 0.2 * X["x1"].to_numpy()
        return X, *uniformly_logged(base, through_opens(X, g), rng)

    X, a, p, y, _ = reach_world(20_000, np.random.default_rng(3))
    model = UpliftModel(
        ACTIONS, outcome_estimators=60, final="reach", effect_ridge=0.01, offer_ridge_ratio=3.0, random_state=0
    )
    model.fit(X, a, p, y)
    assert set(model.reach_features_) == {"email", "push"}
    Xt, _, _, _, true_t = reach_world(2000, np.random.default_rng(4))
    est = model.predict_effect(Xt)
    for k in range(1, len(ACTIONS)):
        assert np.corrcoef(est[:, k], true_t[:, k])[0, 1] > 0.6, ACTIONS[k]
    assert np.allclose(est[:, 0], 0.0)
    clone = pickle.loads(pickle.dumps(model))
    assert np.allclose(clone.predict_effect(Xt.head(50)), est[:50])


def test_reach_stage_screens_features_down_to_those_that_move_the_effect() -> None:
    """Two of 60 features drive the effect: screening keeps them, drops most noise, and estimates better."""

    def world(n: int, rng: np.random.Generator):
        X = with_open_rates(n, 60, email=(3, 3), push=(3, 3), rng=rng)
        base = 1 / (1 + np.exp(-(-1.0 + 0.6 * X["x0"].to_numpy())))
        g = -0.04 - 0.12 * X["x1"].to_numpy() + 0.08 * X["x2"].to_numpy()  # one shared shape for every offer
        return X, *uniformly_logged(base, through_opens(X, dict.fromkeys(OFFERS, g)), rng)

    X, a, p, y, _ = world(16_000, np.random.default_rng(5))
    Xt, _, _, _, true_t = world(2000, np.random.default_rng(6))
    fits = {
        k: UpliftModel(ACTIONS, outcome_estimators=40, final="reach", effect_features=k, random_state=0).fit(X, a, p, y)
        for k in ("auto", None)
    }
    auto, every = fits["auto"], fits[None]
    assert {"x1", "x2"} <= set(auto.effect_feature_names_)
    assert auto.effect_features_ < X.shape[1] == every.effect_features_
    assert auto.screen_loss_[auto.effect_features_] == min(auto.screen_loss_.values())

    def corr(model) -> float:
        est = model.predict_effect(Xt)
        return float(np.mean([np.corrcoef(est[:, k], true_t[:, k])[0, 1] for k in range(1, len(ACTIONS))]))

    assert corr(auto) > 0.8 and corr(auto) > corr(every)
    dropped = [i for i, c in enumerate(X.columns) if c not in auto.effect_feature_names_]
    assert np.allclose(auto.offer_slopes_[dropped], 0.0)  # a dropped feature has no slope anywhere
    for bad in (0, "some"):
        with pytest.raises(ValueError, match="effect_features"):
            UpliftModel(ACTIONS, final="reach", effect_features=bad).fit(X.head(400), a[:400], p[:400], y[:400])
