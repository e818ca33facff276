"""What the day loop carries from one day to the next: the world's per-customer state and the log it writes.

:class:`WorldState` holds what changes day by day (alive, troubled, intent stage, contact effects and
responses, consent);
:class:`WorldLog` collects what happened (episodes of activity, touch rows, logged outreach decisions,
unsubscribes), turned into tables once the simulation ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from features.sources.simulation.codes import NEVER
from features.sources.simulation.config import SimConfig
from features.sources.simulation.rows import TouchRows
from features.sources.simulation.traits import Traits


@dataclass
class WorldState:
    """Per-customer state of the world on the current day (arrays over customers)."""

    alive: np.ndarray
    churn_sec: np.ndarray  # churn time in seconds after the start (NEVER while alive)
    cancelled: np.ndarray  # the churn left an explicit cancel
    troubled: np.ndarray  # latent troubled state
    stage: np.ndarray  # intent stage (index into STAGES)
    eff: np.ndarray  # log-hazard change of each recent contact (customers × slots)
    eff_until: np.ndarray  # the day each contact's effect stops (-1: empty slot)
    contact_days: np.ndarray  # the days of the last three contacts (for fatigue)
    last_open: np.ndarray  # the last day the customer opened a message, per outreach channel
    consent: np.ndarray  # customers × outreach channels
    last_active: np.ndarray  # the last day with an active touch
    lift: np.ndarray  # log visit-rate multiplier of the running response to a contact
    lift_until: np.ndarray  # the day that response ends (-1: none)
    coupon: np.ndarray  # discount depth of an unused discount offer
    coupon_until: np.ndarray  # the day the coupon expires (-1: none)

    @classmethod
    def initial(cls, cfg: SimConfig, t: Traits, rng: np.random.Generator) -> WorldState:
        """The state on the first day (draws the troubled state and the intent stage)."""
        n = cfg.n_customers
        troubled = rng.random(n) < 0.04
        stage = rng.integers(0, 3, n)
        # Each contact's effect on the log-hazard lasts effect_window_days; effects of overlapping contacts add.
        n_slots = -(-cfg.effect_window_days // cfg.campaign_gap_days[0]) + 1
        return cls(
            alive=np.ones(n, bool),
            churn_sec=np.full(n, NEVER, np.int64),
            cancelled=np.zeros(n, bool),
            troubled=troubled,
            stage=stage,
            eff=np.zeros((n, n_slots)),
            eff_until=np.full((n, n_slots), -1, np.int64),
            contact_days=np.full((n, 3), -(10**6), np.int64),
            last_open=np.full((n, 4), -(10**6), np.int64),
            consent=t.consent.copy(),
            last_active=t.signup_day.copy(),
            lift=np.zeros(n),
            lift_until=np.full(n, -1, np.int64),
            coupon=np.zeros(n),
            coupon_until=np.full(n, -1, np.int64),
        )

    def running_lift(self, d: int) -> np.ndarray:
        """The log visit-rate multiplier of responses running on day ``d`` (0 where none)."""
        return np.where(self.lift_until > d, self.lift, 0.0)


@dataclass
class Episodes:
    """Active episodes (one per visit, session, service contact...), expanded into touches at the end."""

    cust: np.ndarray
    sec: np.ndarray  # start of the episode
    etype: np.ndarray  # episode type (codes.WEB ... codes.EVENT)
    stage: np.ndarray  # intent stage at the time
    troubled: np.ndarray
    bought: np.ndarray
    discount: np.ndarray  # of the purchase (NaN if none)
    pre: np.ndarray  # before the cutoff

    @classmethod
    def concat(cls, blocks: list[Episodes]) -> Episodes:
        return cls(**{f.name: np.concatenate([getattr(b, f.name) for b in blocks]) for f in fields(cls)})


@dataclass
class OutreachBlock:
    """One campaign's logged decisions: a contact (channel, offer) or a holdout, with its propensity."""

    cust: np.ndarray
    sec: np.ndarray
    chan: np.ndarray  # -1 for a holdout
    offer: np.ndarray  # index into the sorted offers, -1 for a holdout
    campaign: np.ndarray
    prop: np.ndarray
    holdout: np.ndarray

    @classmethod
    def concat(cls, blocks: list[OutreachBlock]) -> OutreachBlock:
        if not blocks:
            return cls(**{f.name: np.array([], np.int64) for f in fields(cls)})
        return cls(**{f.name: np.concatenate([getattr(b, f.name) for b in blocks]) for f in fields(cls)})


@dataclass(frozen=True)
class Unsubscribes:
    """Unsubscribes drawn on a campaign day (customer, second, outreach channel)."""

    cust: np.ndarray
    sec: np.ndarray
    chan: np.ndarray


@dataclass
class WorldLog:
    """What has happened so far, in the order it was drawn."""

    episodes: list[Episodes] = field(default_factory=list)
    rows: list[TouchRows] = field(default_factory=list)  # finished touch rows (reactions, cancels, unsubscribes)
    outreach: list[OutreachBlock] = field(default_factory=list)
    unsubs: list[Unsubscribes] = field(default_factory=list)
