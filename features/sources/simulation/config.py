"""The parameters of a simulated world: :class:`SimConfig`, checked when it is built."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.contract.cutoffs import utc_timestamp

SIM_VERSION = "2"  # recorded in the manifest; bump on any change of what a seed produces


@dataclass(frozen=True)
class SimConfig:
    """Parameters of the simulated world (all rates per customer per day unless stated).

    n_customers: customers drawn. days: history length before the evaluation cutoff (cutoff = start +
    days). horizon_days: days simulated after the cutoff with no outreach (label horizon). start: first
    day (UTC). seed: recorded in the manifest only (randomness comes from the Generator passed in).
    new_customer_share: share signing up during the history (others signed up up to 5 years before).
    activity_scale: multiplies every customer-initiated activity rate (touchpoint volume).
    churn_scale: multiplies every churn hazard. cancel_probability: chance that a churn leaves an
    explicit ``cancel``. campaign_first_day / campaign_gap_days: campaign cadence (gap drawn uniformly in
    the inclusive range). holdout_share: logging-policy probability of no contact (a holdout row)
    for an active customer; dormant_extra_holdout: added for customers with no active touch in the
    last 30 days. open_boost: logging-policy weight bonus for a channel the customer opened in the last
    90 days. Campaigns stop at least ``campaign_gap_days[0]`` days before the cutoff, so the cutoff is the
    next campaign's decision day. effect_window_days: how long a contact changes the hazard (effects of
    overlapping contacts add). fatigue_window_days / fatigue_per_contact: each earlier contact within the
    window adds this much to the log-hazard of a new contact (opened or not). The window is shorter than
    the campaign gap on purpose: fatigue punishes contacting twice within a week (what the policy's
    ``min_days_between_contacts`` cap forbids), and a logged contact never changes the effect of the next
    campaign's contact, so an effect estimated from the log is the effect the truth reports (with a 30-day
    window the log showed harm that the truth, with no outreach after the cutoff, does not have).
    persuadable_strength: range of a persuadable's responsiveness; an opened contact lowers their
    log-hazard by strength × offer fit (value contact ≈ 0.5–1, a well-fitting offer 1–3: several
    percentage points of churn probability on their best channel). Persuadables show in behaviour:
    fading activity, more service trouble, price sensitivity, and they click through twice as often as
    others when they open (sleeping dogs rarely click, and unsubscribe more); a contact reaches anyone
    only if opened (probability = their channel preference, visible as open rates). Sleeping dogs are
    pushed away by any opened contact, loyal price-insensitive customers by discounts (cynicism).
    cynicism: log-hazard penalty of a discount for a loyal, price-insensitive customer.
    sleeping_dog_effect: log-hazard increase when a sleeping dog opens a contact. promo_day_share /
    promo_boost: sitewide promotion days and how much they lift visits and buying of price-sensitive
    customers. impression_rate: ad impressions (no signal). survey_rate /
    event_invite_rate: surveys and event invitations sent. return_probability: purchases returned.
    margin / value_horizon_days: forward value = margin × expected spend over this many days.
    """

    n_customers: int = 20_000
    days: int = 365
    horizon_days: int = 90
    start: str = "2025-01-01"
    seed: int | None = None
    new_customer_share: float = 0.3
    activity_scale: float = 1.0
    churn_scale: float = 1.0
    cancel_probability: float = 0.6
    campaign_first_day: int = 10
    campaign_gap_days: tuple[int, int] = (14, 28)
    holdout_share: float = 0.2
    dormant_extra_holdout: float = 0.2
    open_boost: float = 1.0
    effect_window_days: int = 90
    fatigue_window_days: int = 7
    fatigue_per_contact: float = 0.15
    persuadable_strength: tuple[float, float] = (1.5, 3.0)
    cynicism: float = 0.8
    sleeping_dog_effect: float = 0.35
    promo_day_share: float = 0.08
    promo_boost: float = 1.5
    impression_rate: float = 0.03
    survey_rate: float = 1 / 60
    event_invite_rate: float = 1 / 90
    return_probability: float = 0.08
    margin: float = 0.35
    value_horizon_days: int = 730

    def __post_init__(self) -> None:
        checks = {
            "n_customers": self.n_customers >= 1,
            "days": self.days >= 60,
            "horizon_days": self.horizon_days >= 1,
            "cancel_probability": 0.0 <= self.cancel_probability <= 1.0,
            "holdout_share": self.holdout_share > 0.0
            and self.holdout_share + self.dormant_extra_holdout < 1.0,
            "campaign_gap_days": 1 <= self.campaign_gap_days[0] <= self.campaign_gap_days[1],
            "activity_scale": self.activity_scale > 0,
            "churn_scale": self.churn_scale > 0,
            "effect_window_days": self.effect_window_days >= 1,
            "fatigue_window_days": self.fatigue_window_days >= 1,
            "persuadable_strength": 0.0 <= self.persuadable_strength[0] <= self.persuadable_strength[1],
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"SimConfig: invalid {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)}")
        pd.Timestamp(self.start)  # raises on an unparseable start date

    @property
    def start_ts(self) -> pd.Timestamp:
        return utc_timestamp(self.start)

    @property
    def cutoff_ts(self) -> pd.Timestamp:
        return self.start_ts + pd.Timedelta(days=self.days)
