"""A simulated customer base that knows its own truth: traits, touchpoints, outreach, churn and exact effects.

``simulate_world(config, rng)`` draws latent traits per customer, then walks day by day (vectorised
over customers) through ``config.days`` days of history: engagement trends, a latent "troubled" state,
intent stages, promotions, campaigns chosen by a randomised logging policy (propensities recorded),
reactions to them, and churn as a daily hazard. At the evaluation cutoff (start + days) the state is
frozen and ``horizon_days`` more days are simulated in continuous time with NO outreach, so realised
labels exist and the truth is exact: ``truth`` holds, for every customer and catalogue action, the
closed-form probability of the churn label (:func:`features.sources.simulation.truth.piecewise_label_probability`)
and the expected value net of cost. Feature code never reads ``truth``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from features.contract.catalogue import Catalogue, load_catalogue
from features.contract.schema import (
    CHANNELS,
    CONTENT_TOPICS,
    DEVICES,
    DIRECTIONS,
    KINDS,
    OUTREACH_CHANNELS,
    OUTREACH_TO_TOUCH_CHANNEL,
    REFERRERS,
    SERVICE_TOPICS,
    Tables,
)
from features.sources.simulation.truth import (
    LOST_CAUSE,
    PERSUADABLE,
    SEGMENTS,
    SLEEPING_DOG,
    STAGES,
    TRENDS,
    action_channel_index,
    action_effects,
    best_actions,
    discount_depth,
    piecewise_churn_time,
    piecewise_label_probability,
)

SIM_VERSION = "2"
DAY = 86_400
_NEVER = np.int64(2**62)
_CH = {c: i for i, c in enumerate(CHANNELS)}
_KIND = {k: i for i, k in enumerate(KINDS)}
_REF = {r: i for i, r in enumerate(REFERRERS)}
_DEV = {d: i for i, d in enumerate(DEVICES)}
TOPICS: tuple[str, ...] = SERVICE_TOPICS + CONTENT_TOPICS
_TOP = {t: i for i, t in enumerate(TOPICS)}
N_PRODUCTS = 200
# Episode types: each active episode yields at least one active (inbound, non-passive) touch.
WEB, APP, STORE, CALL, CHAT, SOCIAL, SURVEY, EVENT = range(8)
N_TYPES = 8
_BUY_BY_STAGE = np.array([0.04, 0.12, 0.35])
_CART_BY_STAGE = np.array([0.05, 0.2, 0.45])
# Page-view topic mix by micro-moment stage (know → how-to, go/do → store locator, buy → price).
_TOPIC_BY_STAGE = np.array(
    [
        [0.50, 0.40, 0.05, 0.05],
        [0.15, 0.35, 0.35, 0.15],
        [0.05, 0.30, 0.15, 0.50],
    ]
)
BASE_ACTIVITY = 0.04  # median web/app/store visits per day
LOST_HAZARD = -5.5  # log daily hazard of a lost cause after onset (before engagement and trouble terms)
_CLICK_BY_SEGMENT = np.array([2.0, 1.0, 0.8, 0.4])  # click-through multiplier by segment (SEGMENTS order)
_CHANNEL_WEIGHT = np.array([1.0, 0.7, 0.8, 0.3])  # logging policy base weights: email, sms, push, call


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
    percentage points of churn probability, e.g. 0.14 → 0.08 on their best channel). Persuadables
    (≈ 19 %) show in behaviour: fading activity, more service trouble, price sensitivity, and they click
    through twice as often as others when they open (sleeping dogs rarely click, and unsubscribe more);
    a contact reaches anyone only if opened (probability = their channel preference, visible as open
    rates). Sleeping dogs (≈ 19 %) are pushed away by any opened contact, loyal price-insensitive
    customers by discounts (cynicism).
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
        ts = pd.Timestamp(self.start)
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")

    @property
    def cutoff_ts(self) -> pd.Timestamp:
        return self.start_ts + pd.Timedelta(days=self.days)


# --------------------------------------------------------------------------------------------- traits
def _draw_traits(cfg: SimConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = cfg.n_customers
    t: dict[str, np.ndarray] = {}
    t["loglam0"] = np.log(BASE_ACTIVITY * cfg.activity_scale) + rng.normal(0.0, 0.7, n)
    t["trend"] = rng.choice(3, size=n, p=[0.5, 0.2, 0.3])
    t["trend_sign"] = np.array([0.0, 1.0, -1.0])[t["trend"]]
    t["trend_rate"] = rng.uniform(0.5, 1.5, n)  # log-engagement change per year
    primary = rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])
    pref = rng.beta(1.2, 7.0, (n, 4))
    pref[np.arange(n), primary] = rng.beta(6.0, 3.0, n)
    t["pref"] = pref
    base = np.array([0.45, 0.25, 0.3, 0.15])
    t["consent"] = rng.random((n, 4)) < np.clip(base + 0.5 * pref, 0.0, 0.95)
    t["app_share"] = np.clip(np.where(primary == 2, 0.75, 0.15) + rng.normal(0, 0.1, n), 0.02, 0.95)
    t["store_share"] = rng.beta(1.5, 6.0, n)
    t["price_sens"] = rng.beta(2.0, 3.0, n)
    t["aov"] = np.exp(np.log(60.0) + rng.normal(0.0, 0.5, n))
    t["buy_freq"] = np.exp(rng.normal(0.0, 0.4, n))
    t["promoter"] = rng.beta(1.5, 4.0, n)
    t["trouble_in"] = np.exp(np.log(1 / 250) + rng.normal(0.0, 0.7, n))
    t["survey_resp"] = np.clip(0.1 + 0.4 * t["promoter"], 0.0, 0.9)
    t["attend"] = np.clip(0.05 + 0.5 * t["promoter"], 0.0, 0.9)
    # loyalty: how much of a habit buying here is (frequency × engagement), in (0, 1)
    z_loyal = (t["loglam0"] - t["loglam0"].mean()) / 0.7 + np.log(t["buy_freq"]) / 0.4
    t["loyalty"] = 1.0 / (1.0 + np.exp(-z_loyal / 1.4))
    z_eng = (t["loglam0"] - np.log(BASE_ACTIVITY * cfg.activity_scale)) / 0.7
    z_tr = (np.log(t["trouble_in"]) - np.log(1 / 250)) / 0.7
    fading, rising, stable = t["trend"] == 2, t["trend"] == 1, t["trend"] == 0
    logits = np.column_stack(
        [
            -1.0 + 1.6 * fading + 0.8 * z_tr + 3.0 * (t["price_sens"] - 0.4),  # persuadable
            0.4 + 0.8 * z_eng + 0.5 * rising + 0.8 * (t["promoter"] - 0.27),  # sure thing
            -1.2 + 1.4 * fading - 0.8 * z_eng + 0.5 * z_tr,  # lost cause
            -0.6 - 0.3 * z_eng + 0.5 * stable - 1.0 * (t["promoter"] - 0.27),  # sleeping dog
        ]
    )
    t["segment"] = np.argmax(logits + rng.gumbel(size=(n, 4)), axis=1)
    t["strength"] = rng.uniform(cfg.persuadable_strength[0], cfg.persuadable_strength[1], n)
    # persuadables waver: they fall into the troubled state more often (and can be won back)
    t["trouble_in"] = np.where(t["segment"] == PERSUADABLE, 1.5, 1.0) * t["trouble_in"]
    # Lost causes have decided to leave at an onset day late in the history: from then on their
    # engagement collapses and their hazard jumps, so they sit at the top of churn risk at the cutoff.
    t["seg_hazard"] = np.array([-6.5, -8.0, -7.0, -7.4])[t["segment"]] + np.log(cfg.churn_scale)
    t["lost_hazard"] = np.full(n, LOST_HAZARD + np.log(cfg.churn_scale))
    t["onset_day"] = np.where(
        t["segment"] == LOST_CAUSE,
        rng.integers(max(cfg.days - 180, 0), max(cfg.days - 20, 1), n),
        np.iinfo(np.int64).max,
    )
    t["fav_product"] = rng.integers(0, N_PRODUCTS, n)
    t["region"] = rng.choice(4, size=n)
    new = rng.random(n) < cfg.new_customer_share
    signup_day = np.where(new, rng.integers(0, max(cfg.days - 30, 1), n), -rng.integers(30, 1800, n))
    t["signup_sec"] = signup_day.astype(np.int64) * DAY + rng.integers(0, DAY, n)
    t["signup_day"] = np.floor_divide(t["signup_sec"], DAY)
    t["loglam_mu"] = np.full(n, np.log(BASE_ACTIVITY * cfg.activity_scale))
    return t


def _declining(t: dict, day: float) -> np.ndarray:
    return day >= t["onset_day"]


def _loglam(t: dict, day: float) -> np.ndarray:
    return t["loglam0"] + t["trend_sign"] * t["trend_rate"] * (day / 365.0) - 1.0 * _declining(t, day)


def _log_hazard(t: dict, day: float, troubled: np.ndarray) -> np.ndarray:
    """Log daily churn hazard without outreach: segment level, low/fading engagement, troubled state."""
    z = (_loglam(t, day) - t["loglam_mu"]) / 0.7
    return np.where(_declining(t, day), t["lost_hazard"], t["seg_hazard"]) - 0.35 * z + 1.2 * troubled


def _rates(t: dict, day: float, troubled: np.ndarray, promo: bool, cfg: SimConfig) -> np.ndarray:
    """Poisson rates of the active episode types (customers × 8)."""
    lam = np.exp(_loglam(t, day))
    visit = lam * (1.0 + (cfg.promo_boost * t["price_sens"] if promo else 0.0)) * (1 - 0.2 * troubled)
    online = visit * (1.0 - t["store_share"])
    return np.column_stack(
        [
            online * (1.0 - t["app_share"]),
            online * t["app_share"],
            visit * t["store_share"],
            (0.006 + 0.04 * troubled) * 0.6 * cfg.activity_scale,
            (0.006 + 0.04 * troubled) * 0.4 * cfg.activity_scale,
            0.5 * lam * t["promoter"],
            cfg.survey_rate * np.clip(t["survey_resp"] + 0.2 * troubled, 0.0, 0.95),
            cfg.event_invite_rate * t["attend"],
        ]
    )


def _buy_prob(t: dict, idx: np.ndarray, stage: np.ndarray, promo: bool, cfg: SimConfig) -> np.ndarray:
    p = _BUY_BY_STAGE[stage] * t["buy_freq"][idx]
    if promo:
        p = p * (1.0 + cfg.promo_boost * t["price_sens"][idx])
    return np.clip(p, 0.0, 0.9)


def _purchase_discount(t: dict, idx: np.ndarray, promo: bool, rng: np.random.Generator) -> np.ndarray:
    if promo:
        return rng.choice(np.array([0.1, 0.2, 0.3]), size=len(idx))
    coupon = rng.random(len(idx)) < 0.1 * t["price_sens"][idx]
    return np.where(coupon, 0.1, 0.0)


# ------------------------------------------------------------------------------------------- the world
def simulate_world(
    config: SimConfig, rng: np.random.Generator, *, catalogue: Catalogue | None = None
) -> Tables:
    """Simulate customers, touchpoints, outreach and the exact truth at ``config.cutoff_ts``.

    ``catalogue`` (default: the packaged one) defines the outreach actions of the logging policy and
    the truth's columns. Deterministic given the Generator's state.
    """
    cfg = config
    if not isinstance(rng, np.random.Generator):
        raise TypeError("simulate_world needs a numpy.random.Generator (e.g. numpy.random.default_rng(seed))")
    cat = catalogue if catalogue is not None else load_catalogue()
    t = _draw_traits(cfg, rng)
    n, days, H = cfg.n_customers, cfg.days, cfg.horizon_days
    cutoff_sec = np.int64(days) * DAY
    end_sec = np.int64(days + H) * DAY
    acts = cat.actions[1:]
    act_chan = action_channel_index(cat)
    offers = sorted(cat.offers)
    act_offer = np.array([offers.index(a.offer) for a in acts])
    chan_in_cat = np.array([c in cat.allowed for c in OUTREACH_CHANNELS])
    # action column of (channel, k-th allowed offer)
    chan_acts = [np.flatnonzero(act_chan == c) for c in range(4)]
    n_offers = np.array([len(a) for a in chan_acts])
    offer_kind = [str(cat.offers[a.offer].get("kind", "value_contact")) for a in acts]
    redeemable = np.array([k in ("reward", "discount", "service", "event") for k in offer_kind])
    act_depth = np.array(
        [
            discount_depth(a.offer) if k == "discount" else np.nan
            for a, k in zip(acts, offer_kind, strict=True)
        ]
    )

    gaps = []
    d = cfg.campaign_first_day
    # The last campaign is at least one gap before the cutoff: the cutoff is the next campaign's decision day.
    while d <= days - cfg.campaign_gap_days[0]:
        gaps.append(d)
        d += int(rng.integers(cfg.campaign_gap_days[0], cfg.campaign_gap_days[1] + 1))
    campaign_day = {day: i for i, day in enumerate(gaps)}
    campaign_ids = [f"CMP{i + 1:03d}" for i in range(len(gaps))]
    promo_days = rng.random(days) < cfg.promo_day_share

    alive = np.ones(n, bool)
    churn_sec = np.full(n, _NEVER, np.int64)
    cancelled = np.zeros(n, bool)
    troubled = rng.random(n) < 0.04
    stage = rng.integers(0, 3, n)
    # Each contact's effect on the log-hazard lasts effect_window_days; effects of overlapping contacts add.
    n_slots = -(-cfg.effect_window_days // cfg.campaign_gap_days[0]) + 1
    eff = np.zeros((n, n_slots))
    eff_until = np.full((n, n_slots), -1, np.int64)
    contact_days = np.full((n, 3), -(10**6), np.int64)
    last_open = np.full((n, 4), -(10**6), np.int64)
    consent = t["consent"].copy()
    last_active = t["signup_day"].copy()
    eff_kw = dict(cynicism=cfg.cynicism, dog_effect=cfg.sleeping_dog_effect)

    episodes: list[dict] = []
    rows: list[dict] = []  # finished touch rows (reactions, cancels, unsubscribes)
    outreach: list[dict] = []
    unsubs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    ar = np.arange(n)

    for d in range(days):
        signed = t["signup_day"] <= d
        # ---- campaign: one logged decision per reachable customer (10:00 UTC + up to 2 h)
        if d in campaign_day:
            ci = campaign_day[d]
            ok_c = consent & chan_in_cat
            elig = np.flatnonzero(signed & ~cancelled & ok_c.any(axis=1))
            m = len(elig)
            send = d * DAY + 36_000 + rng.integers(0, 7_200, m)
            q0 = cfg.holdout_share + cfg.dormant_extra_holdout * (d - last_active[elig] > 30)
            w = _CHANNEL_WEIGHT * (1.0 + cfg.open_boost * (d - last_open[elig] <= 90)) * ok_c[elig]
            wsum = w.sum(axis=1)
            contact = rng.random(m) >= q0
            u = rng.random(m)
            ch = (u[:, None] * wsum[:, None] >= np.cumsum(w, axis=1)).sum(axis=1)
            ch = np.minimum(ch, 3)
            k = np.floor(rng.random(m) * n_offers[ch]).astype(np.int64)
            col = _pick_cols(chan_acts, ch, k)
            prop = np.where(contact, (1.0 - q0) * w[np.arange(m), ch] / wsum / n_offers[ch], q0)
            outreach.append(
                dict(
                    cust=elig,
                    sec=send,
                    chan=np.where(contact, ch, -1),
                    offer=np.where(contact, act_offer[col], -1),
                    campaign=np.full(m, ci),
                    prop=prop,
                    holdout=~contact,
                )
            )
            # reactions and effects for the contacted
            cc, ch, col, send = elig[contact], ch[contact], col[contact], send[contact]
            mc = len(cc)
            n_recent = (contact_days[cc] > d - cfg.fatigue_window_days).sum(axis=1)
            tau, fit = action_effects(
                cat,
                segment=t["segment"][cc],
                strength=t["strength"][cc],
                price_sensitivity=t["price_sens"][cc],
                loyalty=t["loyalty"][cc],
                promoter=t["promoter"][cc],
                stage=stage[cc],
                troubled=troubled[cc],
                **eff_kw,
            )
            rr = np.arange(mc)
            tau, fit = tau[rr, col], fit[rr, col]
            opened = alive[cc] & (rng.random(mc) < t["pref"][cc, ch])
            slot = np.argmin(eff_until[cc], axis=1)
            eff[cc, slot] = -(np.where(opened, tau, 0.0) - cfg.fatigue_per_contact * n_recent)
            eff_until[cc, slot] = d + cfg.effect_window_days
            oldest = np.argmin(contact_days[cc], axis=1)
            contact_days[cc, oldest] = d
            # responders respond: persuadables click through far more often than others, sleeping dogs rarely
            p_click = (0.1 + 0.45 * np.minimum(fit, 1.2) / 1.2) * _CLICK_BY_SEGMENT[t["segment"][cc]]
            clicked = opened & (rng.random(mc) < np.minimum(p_click, 0.95))
            redeemed = clicked & redeemable[col] & (rng.random(mc) < 0.2 + 0.5 * np.minimum(fit, 1.0))
            unsub = (
                opened
                & (ch != 3)
                & (rng.random(mc) < 0.01 + 0.05 * (t["segment"][cc] == SLEEPING_DOG) + 0.02 * n_recent)
            )
            consent[cc[unsub], ch[unsub]] = False
            last_open[cc[opened], ch[opened]] = d
            last_active[cc[opened]] = d
            t_open = send + np.minimum(rng.exponential(4 * 3600, mc), 40 * 3600).astype(np.int64)
            t_click = t_open + rng.integers(10, 600, mc)
            t_red = t_click + rng.integers(1_800, 5 * DAY, mc)
            t_uns = t_open + 5
            unsubs.append((cc[unsub], t_uns[unsub], ch[unsub]))
            touch_ch = np.array([_CH[OUTREACH_TO_TOUCH_CHANNEL[c]] for c in OUTREACH_CHANNELS])[ch]
            offer_code = act_offer[col]
            is_call = ch == 3
            for mask, ts, kind in (
                (opened, t_open, "message_open"),
                (clicked & ~is_call, t_click, "message_click"),
                (redeemed, t_red, "offer_redeemed"),
                (unsub, t_uns, "unsubscribe"),
            ):
                extra = {}
                if kind == "message_open":
                    extra["duration_s"] = np.where(is_call[mask], rng.integers(60, 900, mask.sum()), np.nan)
                if kind == "offer_redeemed":
                    extra["discount"] = act_depth[col[mask]]
                rows.append(
                    _rows(
                        cc[mask],
                        ts[mask],
                        touch_ch[mask],
                        _KIND[kind],
                        0,
                        pre=True,
                        offer=offer_code[mask] if kind != "unsubscribe" else None,
                        campaign=np.full(mask.sum(), ci),
                        **extra,
                    )
                )
        # ---- churn (at a random second of the day; a churner does nothing else that day)
        live = alive & signed
        p_die = 1.0 - np.exp(-np.exp(_log_hazard(t, d, troubled) + (eff * (eff_until > d)).sum(axis=1)))
        die = live & (rng.random(n) < p_die)
        k = int(die.sum())
        if k:
            churn_sec[die] = d * DAY + rng.integers(0, DAY, k)
            alive[die] = False
            canc = np.flatnonzero(die)[rng.random(k) < cfg.cancel_probability]
            cancelled[canc] = True
            rows.append(
                _rows(canc, churn_sec[canc], np.full(len(canc), _CH["other"]), _KIND["cancel"], 0, pre=True)
            )
        live &= ~die
        # ---- latent troubled state
        u = rng.random(n)
        troubled = np.where(troubled, u >= 1 / 30, u < t["trouble_in"])
        # ---- active episodes
        promo = bool(promo_days[d])
        rates = _rates(t, d, troubled, promo, cfg)
        tot = rates.sum(axis=1)
        cnt = np.where(live, rng.poisson(tot), 0)
        idx = np.repeat(ar, cnt)
        ep = _episode_types(rates, tot, idx, rng)
        sec = d * DAY + rng.integers(0, 79_200, len(idx))
        st = stage[idx]
        shop = ep <= STORE
        bought = shop & (rng.random(len(idx)) < _buy_prob(t, idx, st, promo, cfg))
        disc = np.where(bought, _purchase_discount(t, idx, promo, rng), np.nan)
        episodes.append(
            dict(
                cust=idx,
                sec=sec,
                etype=ep,
                stage=st,
                troubled=troubled[idx],
                bought=bought,
                discount=disc,
                pre=np.ones(len(idx), bool),
            )
        )
        last_active[idx] = d
        # ---- intent stage: know → go/do → buy; a purchase starts a new cycle
        adv = rng.random(n)
        p_adv = np.where(stage == 0, 0.04, 0.05) * np.minimum(np.exp(_loglam(t, d) - t["loglam_mu"]), 3.0)
        stage = np.where((stage < 2) & (adv < p_adv), stage + 1, stage)
        stage[idx[bought]] = 0

    # An unsubscribe that would fall after the customer's churn or after the cutoff never happened:
    # the consent at the cutoff is exactly what the recorded log implies.
    for uc, us, uch in unsubs:
        lost = (us >= cutoff_sec) | (us > churn_sec[uc])
        consent[uc[lost], uch[lost]] = True

    # ------------------------------------------------------------------ state frozen at the cutoff
    D = days
    h0 = np.exp(_log_hazard(t, D, troubled))
    rates_c = _rates(t, D, troubled, False, cfg)
    lam_c = rates_c.sum(axis=1)
    ends = np.clip(eff_until - D, 0, None).astype(np.float64)  # days after the cutoff each effect stops
    alive_c = alive.copy()
    cp = cfg.cancel_probability
    p_no = np.where(alive_c, piecewise_label_probability(ends, eff, h0, lam_c, cp, H), 1.0)
    n30 = (contact_days > D - cfg.fatigue_window_days).sum(axis=1)
    tau_c, _ = action_effects(
        cat,
        segment=t["segment"],
        strength=t["strength"],
        price_sensitivity=t["price_sens"],
        loyalty=t["loyalty"],
        promoter=t["promoter"],
        stage=stage,
        troubled=troubled,
        **eff_kw,
    )
    open_p = t["pref"][:, act_chan]
    fat = cfg.fatigue_per_contact * n30
    ends_a = np.column_stack([ends, np.full(n, float(cfg.effect_window_days))])
    p_act = np.ones((n, len(acts)))
    for j in range(len(acts)):
        p_op = piecewise_label_probability(
            ends_a, np.column_stack([eff, -(tau_c[:, j] - fat)]), h0, lam_c, cp, H
        )
        p_un = piecewise_label_probability(
            ends_a, np.column_stack([eff, np.full(n, 1.0) * fat]), h0, lam_c, cp, H
        )
        p_act[:, j] = np.where(alive_c, open_p[:, j] * p_op + (1 - open_p[:, j]) * p_un, 1.0)
    p_buy_avg = _BUY_BY_STAGE.mean() * t["buy_freq"]
    value = np.where(
        alive_c, cfg.margin * t["aov"] * rates_c[:, :3].sum(axis=1) * p_buy_avg * cfg.value_horizon_days, 0.0
    )
    costs = np.array([a.cost for a in cat.actions])
    p_all = np.column_stack([p_no, p_act])
    ev = value[:, None] * (p_no[:, None] - p_all) - costs[None, :]
    ev[:, 0] = 0.0
    allowed = np.column_stack([np.ones(n, bool), consent[:, act_chan]])
    best, best_ev = best_actions(ev, allowed, cat.ids)

    # ------------------------------------------------------------------ the horizon: no outreach
    ac = np.flatnonzero(alive_c)
    T = piecewise_churn_time(ends[ac], eff[ac], h0[ac], rng.exponential(1.0, len(ac)), H)
    dies = T < H
    span = np.minimum(T, H)
    cnt = rng.poisson(lam_c[ac] * span)
    idx = np.repeat(ac, cnt)
    when = rng.random(len(idx)) * np.repeat(span, cnt)
    ep = _episode_types(rates_c, lam_c, idx, rng)
    sec = cutoff_sec + np.floor(when * DAY).astype(np.int64)
    st = stage[idx]
    bought = (ep <= STORE) & (rng.random(len(idx)) < _buy_prob(t, idx, st, False, cfg))
    disc = np.where(bought, _purchase_discount(t, idx, False, rng), np.nan)
    episodes.append(
        dict(
            cust=idx,
            sec=sec,
            etype=ep,
            stage=st,
            troubled=troubled[idx],
            bought=bought,
            discount=disc,
            pre=np.zeros(len(idx), bool),
        )
    )
    churn_sec[ac[dies]] = cutoff_sec + np.floor(T[dies] * DAY).astype(np.int64)
    canc_h = ac[dies][rng.random(int(dies.sum())) < cfg.cancel_probability]
    cancelled[canc_h] = True
    rows.append(
        _rows(canc_h, churn_sec[canc_h], np.full(len(canc_h), _CH["other"]), _KIND["cancel"], 0, pre=False)
    )
    label = np.ones(n, np.int8)
    label[ac] = ((cnt == 0) | np.isin(ac, canc_h)).astype(np.int8)

    # ------------------------------------------------------------------ touches from episodes + passive
    ep_all = {k: np.concatenate([e[k] for e in episodes]) for k in episodes[0]}
    rows.extend(_decorate(ep_all, t, rng, cutoff_sec, cfg.return_probability))
    rows.extend(_passive(t, cfg, rng, end_sec))
    tp = _assemble_touchpoints(rows, t, churn_sec, cancelled, cutoff_sec, end_sec)

    ids = pd.Index([f"C{i + 1:06d}" for i in range(n)], dtype="str", name="customer_id")
    start_ns = cfg.start_ts.value
    customers = pd.DataFrame(
        {
            "customer_id": pd.Series(ids, dtype="str"),
            "signup_ts": _utc(start_ns, t["signup_sec"]),
            **{f"consent_{c}": consent[:, i] for i, c in enumerate(OUTREACH_CHANNELS)},
            "region": pd.Series(
                np.array(["north", "south", "east", "west"], dtype=object)[t["region"]], dtype="str"
            ),
            "loyalty_member": rng.random(n) < 0.2 + 0.6 * t["loyalty"],
        }
    )
    touchpoints = _touch_frame(tp, ids, start_ns, offers, campaign_ids)
    out = _outreach_frame(outreach, ids, start_ns, offers, campaign_ids)
    truth = _truth_frame(
        ids,
        t,
        stage,
        troubled,
        alive_c,
        h0,
        lam_c,
        n30,
        p_no,
        value,
        p_all,
        ev,
        best,
        best_ev,
        label,
        churn_sec,
        cutoff_sec,
        end_sec,
        cat,
    )
    manifest = {
        "simulator_version": SIM_VERSION,
        "seed": cfg.seed,
        "start": cfg.start_ts.isoformat(),
        "cutoff": cfg.cutoff_ts.isoformat(),
        "horizon_days": H,
        "end": (cfg.cutoff_ts + pd.Timedelta(days=H)).isoformat(),
        "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "campaigns": len(campaign_ids),
        "counts": {
            "customers": n,
            "touchpoints": len(touchpoints),
            "touchpoints_before_cutoff": int((tp["sec"] < cutoff_sec).sum()),
            "outreach": len(out),
            "outreach_contacts": int((~out["holdout"]).sum()),
            "truth": len(truth),
            "alive_at_cutoff": int(alive_c.sum()),
            "churn_label_rate_alive": float(label[alive_c].mean()) if alive_c.any() else None,
            "segments": {s: int((t["segment"] == i).sum()) for i, s in enumerate(SEGMENTS)},
        },
    }
    return Tables(
        customers=customers, touchpoints=touchpoints, outreach=out, truth=truth, meta={"manifest": manifest}
    )


# ----------------------------------------------------------------------------------------- helpers
def _pick_cols(chan_acts: list[np.ndarray], ch: np.ndarray, k: np.ndarray) -> np.ndarray:
    width = max(len(a) for a in chan_acts)
    table = np.full((4, max(width, 1)), -1, np.int64)
    for c, a in enumerate(chan_acts):
        table[c, : len(a)] = a
    return table[ch, np.minimum(k, table.shape[1] - 1)]


def _episode_types(
    rates: np.ndarray, tot: np.ndarray, idx: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    cum = np.cumsum(rates[idx], axis=1)
    u = rng.random(len(idx)) * tot[idx]
    return np.minimum((u[:, None] >= cum).sum(axis=1), N_TYPES - 1)


def _rows(cust, sec, chan, kind, direction, *, pre: bool, **cols) -> dict:
    """One block of touch rows; ``kind``/``direction`` may be scalars or arrays; unknown columns absent."""
    m = len(cust)
    out = {
        "cust": np.asarray(cust, np.int64),
        "sec": np.asarray(sec, np.int64),
        "chan": np.broadcast_to(np.asarray(chan, np.int16), (m,)),
        "kind": np.broadcast_to(np.asarray(kind, np.int16), (m,)),
        "dir": np.broadcast_to(np.asarray(direction, np.int8), (m,)),
        "pre": np.full(m, pre),
    }
    for k, v in cols.items():
        if v is not None:
            out[k] = np.broadcast_to(np.asarray(v), (m,))
    return out


def _choice_rows(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row-wise categorical draws from a (m × k) probability matrix."""
    u = rng.random(len(p))
    return np.minimum((u[:, None] >= np.cumsum(p, axis=1)).sum(axis=1), p.shape[1] - 1)


def _sentiment(t: dict, cust: np.ndarray, troubled: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    s = 0.25 + 0.9 * (t["promoter"][cust] - 0.27) - 0.8 * troubled + rng.normal(0, 0.3, len(cust))
    return np.round(np.clip(s, -1.0, 1.0), 3)


def _before(sec: np.ndarray, lag: np.ndarray, floor: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``sec - lag``, or a uniform time in ``[floor, sec)`` when that would fall before ``floor``."""
    cand = sec - lag
    inside = floor + (rng.random(len(sec)) * np.maximum(sec - floor, 0)).astype(np.int64)
    return np.where(cand >= floor, cand, inside)


def _decorate(
    ep: dict, t: dict, rng: np.random.Generator, cutoff_sec: np.int64, return_p: float
) -> list[dict]:
    """Expand active episodes into touch rows; the episode's first touch is at its start time."""
    out: list[dict] = []
    cust, sec, et, stg, trb, pre = ep["cust"], ep["sec"], ep["etype"], ep["stage"], ep["troubled"], ep["pre"]
    floor = np.where(pre, t["signup_sec"][cust], cutoff_sec)

    def product(c: np.ndarray) -> np.ndarray:
        return (t["fav_product"][c] + rng.geometric(0.3, len(c)) - 1) % N_PRODUCTS

    # ---- online sessions (web / app)
    s = np.flatnonzero(et <= APP)
    c, st, app = cust[s], stg[s], et[s] == APP
    m = len(s)
    npv = 1 + rng.poisson(np.array([0.8, 1.0, 1.3])[st] * 0.6)
    has_pv = rng.random(m) < 0.5 + 0.1 * st
    has_search = rng.random(m) < 0.3
    has_filter = rng.random(m) < 0.15 + 0.1 * (st > 0)
    bought = ep["bought"][s]
    has_cart = bought | (rng.random(m) < _CART_BY_STAGE[st])
    dur = np.round(40.0 * (npv + has_pv + has_search + has_filter + 1) * rng.lognormal(0.0, 0.5, m), 1)
    dev_web = _choice_rows(np.tile([0.5, 0.4, 0.1], (m, 1)), rng)
    dev = np.where(app, np.where(rng.random(m) < 0.85, _DEV["mobile"], _DEV["tablet"]), dev_web)
    ref_p = np.tile([0.2, 0.35, 0.3, 0.1, 0.05], (m, 1))
    ref_p[:, 4] += 0.25 * t["pref"][c, 0]
    ref = np.where(app, _REF["direct"], _choice_rows(ref_p / ref_p.sum(axis=1, keepdims=True), rng))
    chan = np.where(app, _CH["app"], _CH["web"])
    pages = (npv + has_pv + has_search + has_filter).astype(np.float64)
    out.append(
        _rows(
            c,
            sec[s],
            chan,
            _KIND["visit"],
            0,
            pre=False,
            duration_s=dur,
            pages=pages,
            device=dev,
            referrer=ref,
        )
        | {"pre": pre[s]}
    )
    # page views with a micro-moment topic
    r = np.repeat(np.arange(m), npv)
    topic = np.array([_TOP[x] for x in CONTENT_TOPICS])[_choice_rows(_TOPIC_BY_STAGE[st[r]], rng)]
    # pages follow each other: the i-th page view starts i steps into the session (never two at once)
    rank = np.arange(len(r)) - np.repeat(np.cumsum(npv) - npv, npv)
    step = np.maximum(dur[r] / (npv[r] + 1), 1.0)
    off = 1 + (rank * step + rng.random(len(r)) * step * 0.5).astype(np.int64)
    out.append(
        _rows(
            c[r],
            sec[s][r] + off,
            chan[r],
            _KIND["page_view"],
            0,
            pre=False,
            topic=topic,
            device=dev[r],
            duration_s=np.round(dur[r] / (npv[r] + 1), 1),
        )
        | {"pre": pre[s][r]}
    )
    for mask, kind in (
        (has_pv, "product_view"),
        (has_search, "search"),
        (has_filter, "filter"),
        (has_cart, "add_to_cart"),
    ):
        k = np.flatnonzero(mask)
        off = 1 + (rng.random(len(k)) * dur[k]).astype(np.int64)
        extra = {"product": product(c[k])} if kind in ("product_view", "add_to_cart") else {}
        out.append(
            _rows(c[k], sec[s][k] + off, chan[k], _KIND[kind], 0, pre=False, device=dev[k], **extra)
            | {"pre": pre[s][k]}
        )
    # ---- store visits
    g = np.flatnonzero(et == STORE)
    sdur = np.round(rng.uniform(300, 3_000, len(g)), 1)
    out.append(
        _rows(
            cust[g],
            sec[g],
            _CH["store"],
            _KIND["visit"],
            0,
            pre=False,
            duration_s=sdur,
            device=_DEV["in_person"],
        )
        | {"pre": pre[g]}
    )
    # ---- purchases (online at the end of the session, in store at the end of the visit)
    b = np.flatnonzero(ep["bought"])
    bdur = np.zeros(len(ep["bought"]))
    bdur[s] = dur
    bdur[g] = sdur
    bc = cust[b]
    amount = np.round(t["aov"][bc] * rng.lognormal(0.0, 0.35, len(b)) * (1 - ep["discount"][b]), 2)
    bchan = np.where(et[b] == STORE, _CH["store"], np.where(et[b] == APP, _CH["app"], _CH["web"]))
    bsec = sec[b] + bdur[b].astype(np.int64) + 1
    out.append(
        _rows(
            bc,
            bsec,
            bchan,
            _KIND["purchase"],
            0,
            pre=False,
            amount=amount,
            discount=ep["discount"][b],
            product=product(bc),
        )
        | {"pre": pre[b]}
    )
    # returns: later, on the purchase channel; dropped later if past churn / cutoff / horizon
    ret = rng.random(len(b)) < return_p * (1 + 2 * trb[b])  # troubled customers return more
    rsec = bsec[ret] + rng.integers(2 * DAY, 20 * DAY, int(ret.sum()))
    out.append(
        _rows(
            bc[ret],
            rsec,
            np.where(bchan[ret] == _CH["app"], _CH["web"], bchan[ret]),
            _KIND["return"],
            0,
            pre=False,
            amount=amount[ret],
        )
        | {"pre": pre[b][ret]}
    )
    # ---- service contacts: topics and sentiment turn sour in the troubled state
    v = np.flatnonzero((et == CALL) | (et == CHAT))
    vt = trb[v]
    tp = np.where(vt[:, None], [[0.0, 0.0, 0.2, 0.45, 0.35]], [[0.35, 0.25, 0.4, 0.0, 0.0]])
    vtopic = _choice_rows(tp, rng)  # SERVICE_TOPICS occupy the first five TOPICS codes
    vchan = np.where(et[v] == CALL, _CH["call_center"], _CH["chat"])
    vdev = np.where(
        et[v] == CALL, _DEV["phone"], np.where(rng.random(len(v)) < 0.5, _DEV["desktop"], _DEV["mobile"])
    )
    out.append(
        _rows(
            cust[v],
            sec[v],
            vchan,
            _KIND["service_contact"],
            0,
            pre=False,
            topic=vtopic,
            device=vdev,
            duration_s=np.round(rng.uniform(60, 1_200, len(v)), 1),
            sentiment=_sentiment(t, cust[v], vt, rng),
        )
        | {"pre": pre[v]}
    )
    cmp = np.flatnonzero(vt & (rng.random(len(v)) < 0.35))
    out.append(
        _rows(
            cust[v][cmp],
            sec[v][cmp] + 60,
            vchan[cmp],
            _KIND["complaint"],
            0,
            pre=False,
            topic=np.full(len(cmp), _TOP["dissatisfaction"]),
            sentiment=np.round(-rng.uniform(0.4, 1.0, len(cmp)), 3),
        )
        | {"pre": pre[v][cmp]}
    )
    # ---- social
    so = np.flatnonzero(et == SOCIAL)
    skind = np.array([_KIND[k] for k in ("social_like", "social_comment", "social_share", "review")])[
        _choice_rows(np.tile([0.5, 0.25, 0.15, 0.1], (len(so), 1)), rng)
    ]
    ssent = np.where(skind == _KIND["review"], _sentiment(t, cust[so], trb[so], rng), np.nan)
    out.append(
        _rows(cust[so], sec[so], _CH["social"], skind, 0, pre=False, sentiment=ssent, device=_DEV["mobile"])
        | {"pre": pre[so]}
    )
    # ---- survey responses, each after its (passive) survey
    sv = np.flatnonzero(et == SURVEY)
    out.append(
        _rows(
            cust[sv],
            sec[sv],
            _CH["survey"],
            _KIND["survey_response"],
            0,
            pre=False,
            sentiment=_sentiment(t, cust[sv], trb[sv], rng),
        )
        | {"pre": pre[sv]}
    )
    sent = _before(sec[sv], rng.integers(3_600, 2 * DAY, len(sv)), floor[sv], rng)
    out.append(_rows(cust[sv], sent, _CH["survey"], _KIND["survey_sent"], 1, pre=False) | {"pre": pre[sv]})
    # ---- event attendance, each after its (passive) invitation
    ev = np.flatnonzero(et == EVENT)
    out.append(
        _rows(
            cust[ev],
            sec[ev],
            _CH["event"],
            _KIND["event_attendance"],
            0,
            pre=False,
            duration_s=np.round(rng.uniform(1_800, 10_800, len(ev)), 1),
            device=_DEV["in_person"],
        )
        | {"pre": pre[ev]}
    )
    inv = _before(sec[ev], rng.integers(3 * DAY, 20 * DAY, len(ev)), floor[ev], rng)
    out.append(_rows(cust[ev], inv, _CH["event"], _KIND["event_invite"], 1, pre=False) | {"pre": pre[ev]})
    return out


def _passive(t: dict, cfg: SimConfig, rng: np.random.Generator, end_sec: np.int64) -> list[dict]:
    """Company-initiated touches: ad impressions (identical rate for everyone: no signal), unanswered
    surveys and declined event invitations."""
    first = np.maximum(t["signup_sec"], 0)
    span = (end_sec - first) / DAY
    out = []
    for rate, chan, kind in (
        (np.full(len(span), cfg.impression_rate), None, "impression"),
        (cfg.survey_rate * (1 - t["survey_resp"]), _CH["survey"], "survey_sent"),
        (cfg.event_invite_rate * (1 - t["attend"]), _CH["event"], "event_invite"),
    ):
        cnt = rng.poisson(rate * span)
        c = np.repeat(np.arange(len(span)), cnt)
        sec = first[c] + (rng.random(len(c)) * (end_sec - first[c])).astype(np.int64)
        if chan is None:
            chan = np.array([_CH[x] for x in ("web", "social", "app", "email")])[rng.integers(0, 4, len(c))]
        out.append(_rows(c, sec, chan, _KIND[kind], 1, pre=False) | {"pre": np.zeros(len(c), bool)})
    return out


def _assemble_touchpoints(rows, t, churn_sec, cancelled, cutoff_sec, end_sec) -> dict:
    """Concatenate row blocks, apply the world's rules (nothing after churn, before signup, past the
    horizon; history-generated touches never spill past the cutoff) and sort by (customer, time)."""
    names = [
        "duration_s",
        "pages",
        "amount",
        "discount",
        "sentiment",
        "topic",
        "device",
        "referrer",
        "offer",
        "campaign",
        "product",
    ]
    floats = {"duration_s", "pages", "amount", "discount", "sentiment"}
    cols: dict[str, list] = {k: [] for k in ["cust", "sec", "chan", "kind", "dir", "pre", *names]}
    for r in rows:
        m = len(r["cust"])
        for k in ("cust", "sec", "chan", "kind", "dir", "pre"):
            cols[k].append(r[k])
        for k in names:
            if k in r:
                cols[k].append(np.asarray(r[k], np.float64 if k in floats else np.int64))
            else:
                cols[k].append(np.full(m, np.nan) if k in floats else np.full(m, -1, np.int64))
    tp = {k: np.concatenate(v) for k, v in cols.items()}
    c, sec = tp["cust"], tp["sec"]
    inbound = tp["dir"] == 0
    exit_ok = tp["kind"] == _KIND["cancel"]
    company_stops = np.isin(tp["kind"], [_KIND["survey_sent"], _KIND["event_invite"]])
    keep = (sec < end_sec) & (sec >= t["signup_sec"][c]) & ~(tp["pre"] & (sec >= cutoff_sec))
    keep &= ~(inbound & ~exit_ok & (sec > churn_sec[c]))
    keep &= ~(company_stops & cancelled[c] & (sec > churn_sec[c]))
    order = np.lexsort((np.arange(len(c))[keep], sec[keep], c[keep]))
    return {k: v[keep][order] for k, v in tp.items()}


def _str_col(codes: np.ndarray, vocab: list[str]) -> pd.Series:
    """A pandas ``str`` column (NaN where code < 0), built through Arrow for speed."""
    codes = np.asarray(codes)
    arr = pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int32), mask=codes < 0),
        pa.array(list(vocab), type=pa.large_string()),
    ).cast(pa.large_string())
    return pd.Series(pd.array(arr, dtype=pd.StringDtype("pyarrow", na_value=np.nan)))


def _utc(start_ns: int, sec: np.ndarray) -> pd.Series:
    """UTC timestamps from seconds after the start (integer arithmetic: no float rounding)."""
    ns = np.int64(start_ns) + np.asarray(sec, np.int64) * np.int64(1_000_000_000)
    return pd.Series(ns.view("datetime64[ns]")).dt.tz_localize("UTC")


def _cat(codes: np.ndarray, vocab) -> pd.Categorical:
    return pd.Categorical.from_codes(
        np.asarray(codes, np.int64),
        categories=vocab if isinstance(vocab, pd.Index) else pd.Index(list(vocab), dtype="str"),
    )


def _touch_frame(
    tp: dict, ids: pd.Index, start_ns: int, offers: list[str], campaigns: list[str]
) -> pd.DataFrame:
    products = [f"P{i + 1:04d}" for i in range(N_PRODUCTS)]
    return pd.DataFrame(
        {
            "customer_id": _cat(tp["cust"], ids),
            "ts": _utc(start_ns, tp["sec"]),
            "channel": _cat(tp["chan"], CHANNELS),
            "kind": _cat(tp["kind"], KINDS),
            "direction": _cat(tp["dir"], DIRECTIONS),
            "referrer": _cat(tp["referrer"], REFERRERS),
            "duration_s": tp["duration_s"],
            "pages": tp["pages"],
            "amount": tp["amount"],
            "discount": tp["discount"],
            "sentiment": tp["sentiment"],
            "topic": _str_col(tp["topic"], list(TOPICS)),
            "device": _str_col(tp["device"], list(DEVICES)),
            "offer_id": _str_col(tp["offer"], offers),
            "campaign_id": _str_col(tp["campaign"], campaigns),
            "product_id": _str_col(tp["product"], products),
        }
    )


def _outreach_frame(
    blocks: list[dict], ids: pd.Index, start_ns: int, offers: list[str], campaigns: list[str]
) -> pd.DataFrame:
    o = {
        k: np.concatenate([b[k] for b in blocks]) if blocks else np.array([], np.int64)
        for k in ("cust", "sec", "chan", "offer", "campaign", "prop", "holdout")
    }
    order = np.lexsort((o["sec"], o["cust"]))
    o = {k: v[order] for k, v in o.items()}
    offer_codes = np.where(o["offer"] < 0, len(offers), o["offer"])
    return pd.DataFrame(
        {
            "customer_id": _cat(o["cust"], ids),
            "ts": _utc(start_ns, o["sec"].astype(np.int64)),
            "channel": _cat(o["chan"], OUTREACH_CHANNELS),
            "offer": _str_col(offer_codes, [*offers, "none"]),
            "campaign_id": _str_col(o["campaign"], campaigns),
            "propensity": o["prop"].astype(np.float64),
            "holdout": o["holdout"].astype(bool),
        }
    )


def _truth_frame(
    ids,
    t,
    stage,
    troubled,
    alive_c,
    h0,
    lam_c,
    n30,
    p_no,
    value,
    p_all,
    ev,
    best,
    best_ev,
    label,
    churn_sec,
    cutoff_sec,
    end_sec,
    cat: Catalogue,
) -> pd.DataFrame:
    pref = t["pref"]
    cols: dict[str, object] = {
        "customer_id": pd.Series(ids, dtype="str"),
        "trait_engagement": np.exp(t["loglam0"]),
        "trait_trend": _str_col(t["trend"], list(TRENDS)),
        **{f"trait_pref_{c}": pref[:, i] for i, c in enumerate(OUTREACH_CHANNELS)},
        "trait_preferred_channel": _str_col(np.argmax(pref, axis=1), list(OUTREACH_CHANNELS)),
        "trait_price_sensitivity": t["price_sens"],
        "trait_value": t["aov"] * t["buy_freq"],
        "trait_aov": t["aov"],
        "trait_loyalty": t["loyalty"],
        "trait_intent_stage": _str_col(stage, list(STAGES)),
        "trait_promoter": t["promoter"],
        "trait_segment": _str_col(t["segment"], list(SEGMENTS)),
        "trait_troubled": troubled.astype(bool),
        "alive_at_cutoff": alive_c,
        "hazard_no_contact": np.where(alive_c, h0, np.nan),
        "active_rate": np.where(alive_c, lam_c, 0.0),
        "contacts_30d": n30,
        "p_churn_no_contact": p_no,
        "value": value,
    }
    for j, a in enumerate(cat.actions):
        cols[f"p_churn__{a.id}"] = p_all[:, j]
    for j, a in enumerate(cat.actions):
        cols[f"ev__{a.id}"] = ev[:, j]
    cols["best_action"] = pd.Series(best, dtype="str")
    cols["best_ev"] = best_ev
    cols["churned"] = label.astype(np.int64)
    cols["churn_event"] = (churn_sec < end_sec).astype(np.int64)
    return pd.DataFrame(cols)


__all__ = ["SimConfig", "simulate_world"]
