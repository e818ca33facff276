"""The world frozen at the evaluation cutoff: every customer's exact churn-label probability and value,
with no contact and with each catalogue action.

The closed forms are those of :mod:`features.sources.simulation.truth` (and, for a world with
``objective_days``, the campaign outcomes of :mod:`features.sources.simulation.outcomes`); this module feeds
them the state the day loop reached, so the truth table reports exactly what a contact on the cutoff day
would do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.sources.simulation.activity import BUY_BY_STAGE, COUPON_RATE, buy_prob
from features.sources.simulation.campaigns import OutreachOptions, contact_effects
from features.sources.simulation.config import SimConfig
from features.sources.simulation.outcomes import (
    OUTCOMES,
    Pieces,
    Shopper,
    WindowOutcomes,
    mean_amount_factor,
    window_outcomes,
)
from features.sources.simulation.response import coupon_depths, visit_lift
from features.sources.simulation.state import WorldState
from features.sources.simulation.traits import Traits, log_hazard, rates
from features.sources.simulation.truth import best_actions, piecewise_label_probability


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
    outcomes: dict[str, np.ndarray] | None = None  # OUTCOMES per action over objective_days


@dataclass(frozen=True)
class ActionEffects:
    """What a contact on the cutoff day would do (customers × contact actions)."""

    tau: np.ndarray  # log-hazard reduction if opened
    open_p: np.ndarray  # chance the contact is opened
    fatigue: np.ndarray  # log-hazard added by recent contacts (per customer)
    lift: np.ndarray | None  # log visit-rate multiplier if opened (None: no responses in this world)
    coupon: np.ndarray  # discount on the next purchase if opened (per action)


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
    effects = _action_effects(cfg, options, t, state, n_recent)
    visits = rates_c[:, :3].sum(axis=1)  # web, app and store visits
    p_act = _p_churn_per_action(cfg, state, alive, ends, h0, lam_c, visits, effects)
    p_buy_avg = BUY_BY_STAGE.mean() * t.buy_freq
    value = np.where(alive, cfg.margin * t.aov * visits * p_buy_avg * cfg.value_horizon_days, 0.0)
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
        outcomes=None
        if cfg.objective_days is None
        else _campaign_outcomes(cfg, t, state, alive, ends, h0, visits, effects),
    )


def _action_effects(
    cfg: SimConfig, options: OutreachOptions, t: Traits, state: WorldState, n_recent: np.ndarray
) -> ActionEffects:
    """The effects of each contact action sent on the cutoff day (the history's closed forms)."""
    tau, fit = contact_effects(cfg, options, t, state)
    return ActionEffects(
        tau=tau,
        open_p=t.pref[:, options.act_chan],
        fatigue=cfg.fatigue_per_contact * n_recent,
        lift=visit_lift(fit, t.segment, cfg) if cfg.response_lift > 0 else None,
        coupon=coupon_depths(options.act_depth, cfg),
    )


def _p_churn_per_action(
    cfg: SimConfig,
    state: WorldState,
    alive: np.ndarray,
    ends: np.ndarray,
    h0: np.ndarray,
    lam: np.ndarray,
    visits: np.ndarray,
    eff: ActionEffects,
) -> np.ndarray:
    """P(churn label) if each contact action were sent on the cutoff day (customers × contact actions).

    The contact is opened with the customer's channel preference; opened, it adds the action's effect
    (and, where contacts draw visits, their lift for ``response_days``), unopened only the fatigue of recent
    contacts, both for ``effect_window_days``.
    """
    n, horizon, cp = len(alive), cfg.horizon_days, cfg.cancel_probability
    fat = eff.fatigue
    ends_a = np.column_stack([ends, np.full(n, float(cfg.effect_window_days))])
    p_act = np.ones((n, eff.tau.shape[1]))
    for j in range(eff.tau.shape[1]):
        if eff.lift is None:
            p_op = piecewise_label_probability(
                ends_a, np.column_stack([state.eff, -(eff.tau[:, j] - fat)]), h0, lam, cp, horizon
            )
        else:
            p_op = piecewise_label_probability(
                np.column_stack([ends_a, np.full(n, float(cfg.response_days))]),
                np.column_stack([state.eff, -(eff.tau[:, j] - fat), np.zeros(n)]),
                h0,
                lam,
                cp,
                horizon,
                lift_log_mult=np.column_stack([np.zeros_like(ends_a), eff.lift[:, j]]),
                lifted=visits,
            )
        p_un = piecewise_label_probability(
            ends_a, np.column_stack([state.eff, np.full(n, 1.0) * fat]), h0, lam, cp, horizon
        )
        p_act[:, j] = np.where(alive, eff.open_p[:, j] * p_op + (1 - eff.open_p[:, j]) * p_un, 1.0)
    return p_act


def _campaign_outcomes(
    cfg: SimConfig,
    t: Traits,
    state: WorldState,
    alive: np.ndarray,
    ends: np.ndarray,
    h0: np.ndarray,
    visits: np.ndarray,
    eff: ActionEffects,
) -> dict[str, np.ndarray]:
    """Visit and purchase probabilities and spend over ``objective_days`` per action (column 0: no contact)."""
    n, window = len(alive), float(cfg.objective_days)
    everyone = np.arange(n)
    shopper = Shopper(
        buy_prob=buy_prob(t, everyone, state.stage, False, cfg),
        order_value=t.aov * mean_amount_factor(),
        coupon_rate=COUPON_RATE * t.price_sens,
    )
    zeros = np.zeros_like(ends)

    def pieces(extra_ends: list, extra_h: list, extra_v: list, horizon: float = window) -> Pieces:
        cols = [np.full(n, float(e)) for e in extra_ends]
        return Pieces.build(
            np.column_stack([ends, *cols]),
            np.column_stack([state.eff, *extra_h]),
            np.column_stack([zeros, *extra_v]),
            h0,
            visits,
            horizon,
        )

    columns = [window_outcomes(pieces([], [], []), shopper)]
    unopened = window_outcomes(pieces([cfg.effect_window_days], [eff.fatigue], [np.zeros(n)]), shopper)
    for j in range(eff.tau.shape[1]):
        lift = np.zeros(n) if eff.lift is None else eff.lift[:, j]
        spec = ([cfg.effect_window_days, cfg.response_days], [-(eff.tau[:, j] - eff.fatigue), np.zeros(n)],
                [np.zeros(n), lift])
        coupon = np.full(n, eff.coupon[j])
        opened = window_outcomes(
            pieces(*spec), shopper, coupon, pieces(*spec, horizon=min(cfg.response_days, window))
        )
        o = eff.open_p[:, j]
        columns.append(
            WindowOutcomes(**{k: o * getattr(opened, k) + (1 - o) * getattr(unopened, k) for k in OUTCOMES})
        )
    return {
        k: np.where(alive[:, None], np.column_stack([getattr(c, k) for c in columns]), 0.0)
        for k in OUTCOMES
    }
