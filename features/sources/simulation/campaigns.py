"""Outreach campaigns: a randomised logging policy decides, contacts change the hazard, customers react.

On a campaign day every reachable customer gets one logged decision (a contact on a consented channel with
an offer, or a holdout), with the propensity the policy drew it with. An opened contact changes the
customer's churn hazard for ``effect_window_days`` by the same closed-form effect the truth reports
(:func:`features.sources.simulation.truth.action_effects`) and, in worlds where contacts do more, starts
the customer's response (:mod:`features.sources.simulation.response`); opens, clicks, redemptions and
unsubscribes become touch rows (opens and clicks only where the world tracks them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.contract.catalogue import Catalogue
from features.contract.schema import OUTREACH_CHANNELS, OUTREACH_TO_TOUCH_CHANNEL
from features.sources.simulation.codes import CH, DAY, KIND
from features.sources.simulation.config import SimConfig
from features.sources.simulation.response import start_responses
from features.sources.simulation.rows import TouchRows, touch_rows
from features.sources.simulation.state import OutreachBlock, Unsubscribes, WorldLog, WorldState
from features.sources.simulation.traits import Traits
from features.sources.simulation.truth import SLEEPING_DOG, action_channel_index, action_effects, discount_depth

_CLICK_BY_SEGMENT = np.array([2.0, 1.0, 0.8, 0.4])  # click-through multiplier by segment (SEGMENTS order)
_CALL = 3  # OUTREACH_CHANNELS index of the phone call (no click, no unsubscribe)
_TOUCH_CHANNEL = np.array([CH[OUTREACH_TO_TOUCH_CHANNEL[c]] for c in OUTREACH_CHANNELS])


@dataclass(frozen=True)
class OutreachOptions:
    """The catalogue's contact actions as arrays (column ``j`` is ``catalogue.actions[j + 1]``)."""

    catalogue: Catalogue
    act_chan: np.ndarray  # outreach channel index of each action
    offers: list[str]  # sorted offer names: the codes of the offer columns
    act_offer: np.ndarray  # offer code of each action
    chan_in_cat: np.ndarray  # which outreach channels the catalogue allows
    chan_acts: list[np.ndarray]  # the action columns of each channel
    n_offers: np.ndarray  # how many actions each channel has
    redeemable: np.ndarray  # the action's offer can be redeemed
    act_depth: np.ndarray  # discount depth of a discount action, NaN otherwise

    @classmethod
    def from_catalogue(cls, cat: Catalogue) -> OutreachOptions:
        acts = cat.actions[1:]
        act_chan = action_channel_index(cat)
        offers = sorted(cat.offers)
        chan_acts = [np.flatnonzero(act_chan == c) for c in range(4)]
        offer_kind = [str(cat.offers[a.offer].get("kind", "value_contact")) for a in acts]
        return cls(
            catalogue=cat,
            act_chan=act_chan,
            offers=offers,
            act_offer=np.array([offers.index(a.offer) for a in acts]),
            chan_in_cat=np.array([c in cat.allowed for c in OUTREACH_CHANNELS]),
            chan_acts=chan_acts,
            n_offers=np.array([len(a) for a in chan_acts]),
            redeemable=np.array([k in ("reward", "discount", "service", "event") for k in offer_kind]),
            act_depth=np.array(
                [
                    discount_depth(a.offer) if k == "discount" else np.nan
                    for a, k in zip(acts, offer_kind, strict=True)
                ]
            ),
        )

    def column(self, ch: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Action column of (channel, k-th action of that channel)."""
        width = max(len(a) for a in self.chan_acts)
        table = np.full((4, max(width, 1)), -1, np.int64)
        for c, a in enumerate(self.chan_acts):
            table[c, : len(a)] = a
        return table[ch, np.minimum(k, table.shape[1] - 1)]


@dataclass(frozen=True)
class CampaignSchedule:
    """The campaign days of the history and the campaigns' ids."""

    days: tuple[int, ...]

    @classmethod
    def draw(cls, cfg: SimConfig, rng: np.random.Generator) -> CampaignSchedule:
        days = []
        d = cfg.campaign_first_day
        # The last campaign is at least one gap before the cutoff: the cutoff is the next campaign's decision day.
        while d <= cfg.days - cfg.campaign_gap_days[0]:
            days.append(d)
            d += int(rng.integers(cfg.campaign_gap_days[0], cfg.campaign_gap_days[1] + 1))
        return cls(tuple(days))

    @property
    def index(self) -> dict[int, int]:
        """Campaign number of each campaign day."""
        return {day: i for i, day in enumerate(self.days)}

    @property
    def ids(self) -> list[str]:
        return [f"CMP{i + 1:03d}" for i in range(len(self.days))]


@dataclass(frozen=True)
class Contacts:
    """The customers one campaign contacted, and what their contact was."""

    cust: np.ndarray
    chan: np.ndarray  # outreach channel index
    col: np.ndarray  # action column
    send: np.ndarray  # second sent
    fit: np.ndarray  # offer fit
    opened: np.ndarray
    n_recent: np.ndarray  # earlier contacts within the fatigue window


def run_campaign(
    d: int,
    campaign: int,
    signed: np.ndarray,
    cfg: SimConfig,
    options: OutreachOptions,
    t: Traits,
    state: WorldState,
    log: WorldLog,
    rng: np.random.Generator,
) -> None:
    """Campaign ``campaign`` on day ``d``: log the decisions, apply the contacts' effects, record reactions."""
    cc, ch, col, send = _log_decisions(d, campaign, signed, cfg, options, state, log, rng)
    contacts = _apply_contacts(d, cc, ch, col, send, cfg, options, t, state, rng)
    start_responses(d, contacts.cust, contacts.col, contacts.fit, contacts.opened, cfg, options.act_depth, t, state)
    reactions = _react(d, campaign, contacts, options, t, state, log, rng)
    tracked = {"message_open": cfg.track_opens, "message_click": cfg.track_clicks}
    log.rows.extend(rows for kind, rows in reactions.items() if tracked.get(kind, True))


def _log_decisions(
    d: int,
    campaign: int,
    signed: np.ndarray,
    cfg: SimConfig,
    options: OutreachOptions,
    state: WorldState,
    log: WorldLog,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One logged decision per reachable customer (10:00 UTC + up to 2 h).

    Returns the contacted customers with their channel, action column and send second.
    """
    ok_c = state.consent & options.chan_in_cat
    elig = np.flatnonzero(signed & ~state.cancelled & ok_c.any(axis=1))
    m = len(elig)
    send = d * DAY + 36_000 + rng.integers(0, 7_200, m)
    q0 = cfg.holdout_share + cfg.dormant_extra_holdout * (d - state.last_active[elig] > 30)
    base = np.asarray(cfg.channel_weights, np.float64)
    w = base * (1.0 + cfg.open_boost * (d - state.last_open[elig] <= 90)) * ok_c[elig]
    wsum = w.sum(axis=1)
    contact = rng.random(m) >= q0
    u = rng.random(m)
    ch = (u[:, None] * wsum[:, None] >= np.cumsum(w, axis=1)).sum(axis=1)
    ch = np.minimum(ch, 3)
    n_offers = options.n_offers[ch]
    k = np.floor(rng.random(m) * n_offers).astype(np.int64)
    col = options.column(ch, k)
    prop = np.where(contact, (1.0 - q0) * w[np.arange(m), ch] / wsum / n_offers, q0)
    log.outreach.append(
        OutreachBlock(
            cust=elig,
            sec=send,
            chan=np.where(contact, ch, -1),
            offer=np.where(contact, options.act_offer[col], -1),
            campaign=np.full(m, campaign),
            prop=prop,
            holdout=~contact,
        )
    )
    return elig[contact], ch[contact], col[contact], send[contact]


def contact_effects(
    cfg: SimConfig, options: OutreachOptions, t: Traits, state: WorldState, cust: np.ndarray | slice = slice(None)
) -> tuple[np.ndarray, np.ndarray]:
    """(log-hazard reduction if opened, offer fit) of every contact action for customers ``cust`` today."""
    traits = {"segment": t.segment, "strength": t.strength, "price_sensitivity": t.price_sens,
              "loyalty": t.loyalty, "promoter": t.promoter, "stage": state.stage, "troubled": state.troubled}
    return action_effects(options.catalogue, **{k: v[cust] for k, v in traits.items()}, cynicism=cfg.cynicism,
                          dog_effect=cfg.sleeping_dog_effect)


def _apply_contacts(
    d: int,
    cc: np.ndarray,
    ch: np.ndarray,
    col: np.ndarray,
    send: np.ndarray,
    cfg: SimConfig,
    options: OutreachOptions,
    t: Traits,
    state: WorldState,
    rng: np.random.Generator,
) -> Contacts:
    """Who opened, and the effect each contact has on the hazard (opened or not: fatigue) from today."""
    mc = len(cc)
    n_recent = (state.contact_days[cc] > d - cfg.fatigue_window_days).sum(axis=1)
    tau, fit = contact_effects(cfg, options, t, state, cc)
    rr = np.arange(mc)
    tau, fit = tau[rr, col], fit[rr, col]
    opened = state.alive[cc] & (rng.random(mc) < t.pref[cc, ch])
    slot = np.argmin(state.eff_until[cc], axis=1)
    state.eff[cc, slot] = -(np.where(opened, tau, 0.0) - cfg.fatigue_per_contact * n_recent)
    state.eff_until[cc, slot] = d + cfg.effect_window_days
    oldest = np.argmin(state.contact_days[cc], axis=1)
    state.contact_days[cc, oldest] = d
    return Contacts(cust=cc, chan=ch, col=col, send=send, fit=fit, opened=opened, n_recent=n_recent)


def _react(
    d: int,
    campaign: int,
    c: Contacts,
    options: OutreachOptions,
    t: Traits,
    state: WorldState,
    log: WorldLog,
    rng: np.random.Generator,
) -> dict[str, TouchRows]:
    """Opens, clicks, redemptions and unsubscribes of the contacted, as touch rows by kind (consent follows
    unsubscribes); the caller keeps the kinds the world tracks."""
    mc, cc, ch, col = len(c.cust), c.cust, c.chan, c.col
    # responders respond: persuadables click through far more often than others, sleeping dogs rarely
    p_click = (0.1 + 0.45 * np.minimum(c.fit, 1.2) / 1.2) * _CLICK_BY_SEGMENT[t.segment[cc]]
    clicked = c.opened & (rng.random(mc) < np.minimum(p_click, 0.95))
    redeemed = clicked & options.redeemable[col] & (rng.random(mc) < 0.2 + 0.5 * np.minimum(c.fit, 1.0))
    unsub = (
        c.opened
        & (ch != _CALL)
        & (rng.random(mc) < 0.01 + 0.05 * (t.segment[cc] == SLEEPING_DOG) + 0.02 * c.n_recent)
    )
    state.consent[cc[unsub], ch[unsub]] = False
    state.last_open[cc[c.opened], ch[c.opened]] = d
    state.last_active[cc[c.opened]] = d
    t_open = c.send + np.minimum(rng.exponential(4 * 3600, mc), 40 * 3600).astype(np.int64)
    t_click = t_open + rng.integers(10, 600, mc)
    t_red = t_click + rng.integers(1_800, 5 * DAY, mc)
    t_uns = t_open + 5
    log.unsubs.append(Unsubscribes(cc[unsub], t_uns[unsub], ch[unsub]))
    is_call = ch == _CALL
    call_s = np.where(is_call[c.opened], rng.integers(60, 900, c.opened.sum()), np.nan)

    def rows(
        mask: np.ndarray,
        ts: np.ndarray,
        kind: str,
        *,
        with_offer: bool = True,
        duration_s: np.ndarray | None = None,
        discount: np.ndarray | None = None,
    ) -> TouchRows:
        return touch_rows(
            cc[mask],
            ts[mask],
            _TOUCH_CHANNEL[ch][mask],
            KIND[kind],
            0,
            pre=True,
            offer=options.act_offer[col][mask] if with_offer else None,
            campaign=np.full(mask.sum(), campaign),
            duration_s=duration_s,
            discount=discount,
        )

    return {
        "message_open": rows(c.opened, t_open, "message_open", duration_s=call_s),
        "message_click": rows(clicked & ~is_call, t_click, "message_click"),
        "offer_redeemed": rows(redeemed, t_red, "offer_redeemed", discount=options.act_depth[col[redeemed]]),
        "unsubscribe": rows(unsub, t_uns, "unsubscribe", with_offer=False),
    }
