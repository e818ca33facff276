"""The parameters of a simulated world: :class:`SimConfig`, checked when it is built."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import pandas as pd

from features.contract.cutoffs import utc_timestamp

SIM_VERSION = "2"  # recorded in the manifest; bump on any change of what a seed produces

# Parameters added for scenarios: the manifest lists one only when it differs from its default, so the
# default world's manifest stays what it was.
SCENARIO_FIELDS: tuple[str, ...] = (
    "scenario",
    "channel_weights",
    "track_opens",
    "track_clicks",
    "secondary_consent_scale",
    "segment_shift",
    "response_lift",
    "response_days",
    "real_discounts",
    "objective_days",
    "block_customers",  # not a scenario's: listed when set, like them, so the default world's manifest stays
)


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

    The parameters below describe how a CRM differs from the default retention world (named sets of them:
    :mod:`features.sources.simulation.scenarios`); their defaults leave that world exactly as it was.
    scenario: the name of the scenario the parameters came from (a label for the manifest).
    channel_weights: the logging policy's base weight of each outreach channel (email, sms, push, call).
    track_opens / track_clicks: whether opens / clicks are recorded as touchpoints (a contact reaches the
    customer only if opened either way). secondary_consent_scale: multiplies the chance of consenting to
    each channel other than the customer's primary one (low values: most customers reachable on one channel
    only). segment_shift: added to the logit of each uplift segment (persuadable, sure thing, lost cause,
    sleeping dog) when segments are drawn. response_lift / response_days: an opened contact multiplies the
    customer's visit rate (web, app, store) by ``exp(response_lift × segment response × min(offer fit, 2))``
    for ``response_days`` (0: contacts change only the churn hazard); a response ends before the next
    campaign, so each campaign's response is its own. real_discounts: an opened discount offer takes its
    discount off the customer's next purchase within ``response_days`` (its cost is the discount given).
    objective_days: when set, the truth also holds each action's campaign outcomes over this many days after
    the cutoff (probability of a visit and of a purchase, expected spend: truth columns ``p_visit__<action>``,
    ``p_buy__<action>``, ``spend__<action>``).

    block_customers: customers per simulation block (:mod:`features.sources.simulation.blocks`): a larger world
    is simulated block by block (blocks share the campaign and promotion days; each has its own Generator
    derived from the seed), which lets it be written a chunk of blocks at a time; a world of up to one block is
    the same world whatever this is.
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
    scenario: str = "retention"
    channel_weights: tuple[float, float, float, float] = (1.0, 0.7, 0.8, 0.3)
    track_opens: bool = True
    track_clicks: bool = True
    secondary_consent_scale: float = 1.0
    segment_shift: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    response_lift: float = 0.0
    response_days: int = 14
    real_discounts: bool = False
    objective_days: int | None = None
    block_customers: int = 50_000

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
            "channel_weights": len(self.channel_weights) == 4
            and min(self.channel_weights) >= 0
            and max(self.channel_weights) > 0,
            "secondary_consent_scale": 0.0 <= self.secondary_consent_scale <= 1.0,
            "segment_shift": len(self.segment_shift) == 4,
            "response_lift": self.response_lift >= 0,
            # a response ends before the next campaign: no response is still running at the cutoff
            "response_days": not self.responds or 1 <= self.response_days <= self.campaign_gap_days[0],
            "objective_days": self.objective_days is None or 1 <= self.objective_days <= self.horizon_days,
            "block_customers": self.block_customers >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"SimConfig: invalid {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)}")
        pd.Timestamp(self.start)  # raises on an unparseable start date

    def manifest_params(self) -> dict:
        """The parameters as the manifest records them (tuples as lists; scenario ones only when set)."""
        defaults = {f.name: f.default for f in fields(self)}
        return {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in asdict(self).items()
            if k not in SCENARIO_FIELDS or v != defaults[k]
        }

    @property
    def responds(self) -> bool:
        """Whether contacts do more than change the churn hazard (visit lifts or real discounts)."""
        return self.response_lift > 0 or self.real_discounts

    @property
    def start_ts(self) -> pd.Timestamp:
        return utc_timestamp(self.start)

    @property
    def cutoff_ts(self) -> pd.Timestamp:
        return self.start_ts + pd.Timedelta(days=self.days)
