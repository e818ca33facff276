"""The world frozen at the evaluation cutoff: every customer's exact churn-label probability and value,
with no contact and with each catalogue action.

The closed forms are those of :mod:`features.sources.simulation.truth`; this module feeds them the state the
day loop reached, so the truth table reports exactly what a contact on the cutoff day would do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.sources.simulation.activity import BUY_BY_STAGE
from features.sources.simulation.campaigns import OutreachOptions
from features.sources.simulation.config import SimConfig
from features.sources.simulation.state import WorldState
from features.sources.simulation.traits import Traits, log_hazard, rates
from features.sources.simulation.truth import action_effects, best_actions, piecewise_label_probability


@dataclass(frozen=True)
class CutoffTruth:
    """Per-customer quantities at the cutoff (arrays over customers; per-action ones customers × actions)."""

    alive: np.ndarray
    h0: np.ndarray  # daily churn hazard without outreach
    rates: np.ndarray  # active episode rates (customers × episode types)
    lam: np.ndarray  # total active episode rate
    ends: np.ndarray  # days after the cutoff each logged contact's effect stops
    n_recent: np.ndarray  # contacts within the fatigue window
    p_no: np.ndarray  # P(churn label) with no contact
    value: np.ndarray  # forward value of the customer
    p_all: np.ndarray  # P(churn label) per catalogue action (column 0: no contact)
    ev: np.ndarray  # expected value net of cost per action
    best: np.ndarray  # best allowed action id
    best_ev: np.ndarray


def freeze_at_cutoff(cfg: SimConfig, options: OutreachOptions, t: Traits, state: WorldState) -> CutoffTruth:
    """The exact truth at the cutoff, given the state the history ended in."""
    day, horizon = cfg.days, cfg.horizon_days
    h0 = np.exp(log_hazard(t, day, state.troubled))
    rates_c = rates(t, day, state.troubled, False, cfg)
    lam_c = rates_c.sum(axis=1)
    ends = np.clip(state.eff_until - day, 0, None).astype(np.float64)
    alive = state.alive.copy()
    p_none = piecewise_label_probability(ends, state.eff, h0, lam_c, cfg.cancel_probability, horizon)
    p_no = np.where(alive, p_none, 1.0)
    n_recent = (state.contact_days > day - cfg.fatigue_window_days).sum(axis=1)
    p_act = _p_churn_per_action(cfg, options, t, state, alive, ends, h0, lam_c, n_recent)
    p_buy_avg = BUY_BY_STAGE.mean() * t.buy_freq
    value = np.where(
        alive, cfg.margin * t.aov * rates_c[:, :3].sum(axis=1) * p_buy_avg * cfg.value_horizon_days, 0.0
    )
    cat = options.catalogue
    costs = np.array([a.cost for a in cat.actions])
    p_all = np.column_stack([p_no, p_act])
    ev = value[:, None] * (p_no[:, None] - p_all) - costs[None, :]
    ev[:, 0] = 0.0
    allowed = np.column_stack([np.ones(len(alive), bool), state.consent[:, options.act_chan]])
    best, best_ev = best_actions(ev, allowed, cat.ids)
    return CutoffTruth(
        alive=alive,
        h0=h0,
        rates=rates_c,
        lam=lam_c,
        ends=ends,
        n_recent=n_recent,
        p_no=p_no,
        value=value,
        p_all=p_all,
        ev=ev,
        best=best,
        best_ev=best_ev,
    )


def _p_churn_per_action(
    cfg: SimConfig,
    options: OutreachOptions,
    t: Traits,
    state: WorldState,
    alive: np.ndarray,
    ends: np.ndarray,
    h0: np.ndarray,
    lam: np.ndarray,
    n_recent: np.ndarray,
) -> np.ndarray:
    """P(churn label) if each contact action were sent on the cutoff day (customers × contact actions).

    The contact is opened with the customer's channel preference; opened, it adds the action's effect,
    unopened only the fatigue of recent contacts, both for ``effect_window_days``.
    """
    n, horizon, cp = len(alive), cfg.horizon_days, cfg.cancel_probability
    tau_c, _ = action_effects(
        options.catalogue,
        segment=t.segment,
        strength=t.strength,
        price_sensitivity=t.price_sens,
        loyalty=t.loyalty,
        promoter=t.promoter,
        stage=state.stage,
        troubled=state.troubled,
        cynicism=cfg.cynicism,
        dog_effect=cfg.sleeping_dog_effect,
    )
    open_p = t.pref[:, options.act_chan]
    fat = cfg.fatigue_per_contact * n_recent
    ends_a = np.column_stack([ends, np.full(n, float(cfg.effect_window_days))])
    p_act = np.ones((n, len(options.act_chan)))
    for j in range(len(options.act_chan)):
        p_op = piecewise_label_probability(
            ends_a, np.column_stack([state.eff, -(tau_c[:, j] - fat)]), h0, lam, cp, horizon
        )
        p_un = piecewise_label_probability(
            ends_a, np.column_stack([state.eff, np.full(n, 1.0) * fat]), h0, lam, cp, horizon
        )
        p_act[:, j] = np.where(alive, open_p[:, j] * p_op + (1 - open_p[:, j]) * p_un, 1.0)
    return p_act
