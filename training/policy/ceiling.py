"""How much of the oracle's uplift can any policy reach from the features? ``engage diagnose ceiling``.

The simulator's oracle assigns actions with each customer's *true* incremental values, which depend on hidden
traits and on chance the features cannot see. This diagnostic trains, on half of the customers, one LightGBM
regressor per action on the *true* incremental value itself (the truth as the label: no outcome noise, no
propensities, no causal estimation), predicts the other half from their features, and assigns actions with the
same eligibility and limits. The captured uplift ratio of that assignment is what a learner that recovered
``E[true value | features]`` well would reach: an estimate of the ceiling for the learned policy, measured on
the same held-out customers as the oracle.
"""

from __future__ import annotations

import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.contract.catalogue import Catalogue, load_catalogue
from features.contract.cutoffs import evaluation_cutoff
from features.contract.schema import Tables
from features.decision.assignment import assign, limit_matrix
from features.decision.config import PolicyConfig, load_policy_config
from features.decision.eligibility import contact_history, eligibility
from features.decision.nba import active_customers
from features.decision.rule import expected_incremental_value, total_value
from training.policy.rows import features_at as _features
from training.policy.truth import truth_ev


def observable_ceiling(
    tables: Tables,
    cutoff: pd.Timestamp,
    catalogue: Catalogue,
    config: PolicyConfig,
    rng: np.random.Generator,
    *,
    train_share: float = 0.5,
    n_estimators: int = 400,
    objective: str = "retention",
) -> dict:
    """Captured uplift ratio of actions chosen by regressors of the true values on the features (held-out half).

    ``objective``: whose true values (:func:`training.policy.truth.truth_ev`); retention by default.
    """
    if tables.truth is None:
        raise ValueError("observable_ceiling needs a simulated world with its truth table")
    t0 = time.perf_counter()
    data = tables.without_truth()
    customers = data.customers
    ids = customers["customer_id"].astype(str)
    F = _features(data, cutoff, None).loc[ids]
    ev_t = truth_ev(tables.truth, customers, catalogue, objective, margin=config.value.margin)
    hist = contact_history(data.outreach, customers["customer_id"], cutoff, config.caps.window_days)
    eligible, _, _ = eligibility(customers, hist, catalogue, config.caps)
    active = active_customers(F, config)
    train = rng.random(len(ids)) < train_share
    test = ~train
    X = F.to_numpy(dtype=np.float64, na_value=np.nan)
    ev_hat = np.zeros((int(test.sum()), len(catalogue.ids)))
    r2 = {}
    for k, action in enumerate(catalogue.ids):
        if k == 0:
            continue  # no contact: 0 by definition
        model = lgb.LGBMRegressor(
            n_estimators=n_estimators,
            learning_rate=0.05,
            num_leaves=31,
            min_child_samples=40,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            random_state=int(rng.integers(2**31 - 1)),
            verbose=-1,
            n_jobs=1,  # LightGBM's thread pool spin-waits on a shared machine
        )
        model.fit(X[train], ev_t[train, k])
        ev_hat[:, k] = model.predict(X[test])
        resid = ev_t[test, k] - ev_hat[:, k]
        total = ev_t[test, k] - ev_t[test, k].mean()
        r2[action] = float(1 - (resid @ resid) / max(total @ total, 1e-12))
    A, b, _ = limit_matrix(catalogue, config.limits)
    b_test = b * test.mean()  # the round's limits, pro rata for the held-out share of the base
    elig = eligible[test]
    truth = ev_t[test]
    oracle = total_value(truth, assign(truth, elig, A, b_test, min_value=0.0))
    out: dict = {
        "customers": len(ids),
        "held_out": int(test.sum()),
        "cutoff": str(cutoff),
        "objective": objective,
        "oracle_value": oracle,
        "r2_true_value_by_action": r2,
        "r2_median": float(np.median(list(r2.values()))),
    }
    for name, mask in (("all_eligible", None), ("active_only", None if active is None else active[test])):
        e = elig.copy()
        if mask is not None:
            e[~mask, 1:] = False
        choice = assign(ev_hat, e, A, b_test, min_value=config.min_incremental_value)
        value = total_value(truth, choice)
        out[name] = {
            "policy_value": value,
            "captured_uplift_ratio": value / oracle if oracle > 0 else None,
            "contacts": int((choice != 0).sum()),
        }
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def effect_value_decomposition(policy, tables: Tables, cutoff: pd.Timestamp, F: pd.DataFrame) -> dict:
    """Which estimate limits a fitted policy: captured uplift with the truth swapped in for one part at a time.

    ``policy`` is a fitted :class:`features.decision.nba.NextBestAction`, ``F`` the features of ``tables``'
    customers at ``cutoff``. Returns the captured uplift ratio of the policy's own values, of the true value
    with the estimated effect, and of the estimated value with the true effect (same eligibility, activity
    rule and limits), plus how the estimated effects relate to the true ones per action among the customers
    the policy may contact (active ones).
    """
    if tables.truth is None:
        raise ValueError("effect_value_decomposition needs a simulated world with its truth table")
    cat, cfg = policy.catalogue, policy.config
    data = tables.without_truth()
    customers = data.customers
    ids = customers["customer_id"].astype(str)
    F = F.loc[ids]
    truth = tables.truth.set_index(tables.truth["customer_id"].astype(str)).loc[ids]
    est = policy.expected_values(F)
    ev_t = truth_ev(tables.truth, customers, cat)
    p_true = np.column_stack([truth[f"p_churn__{a}"].to_numpy(float) for a in cat.ids])
    v_true = truth["value"].to_numpy(float)
    hist = contact_history(data.outreach, customers["customer_id"], cutoff, cfg.caps.window_days)
    eligible, _, _ = eligibility(customers, hist, cat, cfg.caps)
    active = active_customers(F, cfg)
    if active is not None:
        eligible[~active, 1:] = False
    A, b, _ = limit_matrix(cat, cfg.limits)
    oracle = total_value(ev_t, assign(ev_t, eligible, A, b))

    def captured(ev: np.ndarray, threshold: float) -> float:
        return total_value(ev_t, assign(ev, eligible, A, b, min_value=threshold)) / oracle

    # Effects compared where the policy acts (active customers): elsewhere nobody is contacted, and the
    # truth's effect on an already lost customer is 0.
    domain = np.ones(len(ids), dtype=bool) if active is None else active
    eff_est = (est["p0"][:, None] - est["p"])[domain]
    eff_true = (p_true[:, [0]] - p_true)[domain]
    return {
        "captured_estimated": captured(est["ev"], cfg.min_incremental_value),
        "captured_true_value_estimated_effect": captured(
            expected_incremental_value(est["p0"], est["p"], v_true, cat), cfg.min_incremental_value
        ),
        "captured_estimated_value_true_effect": captured(
            expected_incremental_value(p_true[:, 0], p_true, est["value"], cat), 0.0
        ),
        "value_correlation": float(np.corrcoef(v_true, est["value"])[0, 1]),
        "effect_domain_customers": int(domain.sum()),
        "effect_by_action": {
            a: {
                "correlation": float(np.corrcoef(eff_true[:, k], eff_est[:, k])[0, 1]),
                "mean_true": float(eff_true[:, k].mean()),
                "mean_estimated": float(eff_est[:, k].mean()),
            }
            for k, a in enumerate(cat.ids)
            if k > 0
        },
    }


def ceiling_report(data: Path, cutoff: str | None = None, seed: int = 0, system_path: Path | None = None) -> dict:
    """The observable ceiling on a simulated data folder; with ``system_path``, also the effect/value
    decomposition of that decision system's policy (``engage diagnose ceiling``)."""
    from features.sources.io import read_tables
    from features.system import load_system_file

    tables = read_tables(data)
    at = evaluation_cutoff(tables, cutoff)
    res = observable_ceiling(tables, at, load_catalogue(), load_policy_config(), np.random.default_rng(seed))
    if system_path is None:
        return res
    system = load_system_file(system_path)
    if system.policy is None:
        raise ValueError(f"{system_path}: the decision system has no policy to decompose")
    F = system.features(tables.without_truth(), at)
    return {"ceiling": res, "decomposition": effect_value_decomposition(system.policy, tables, at, F)}
