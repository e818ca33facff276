"""Touch rows from activity: each active episode expanded into its touches, and the company's passive touches.

An episode's first touch is at its start time: an online session becomes a visit with page views, product
views, searches, filters and carts; a shopping episode that bought adds a purchase (and maybe a return); a
service contact may add a complaint; an answered survey or attended event adds the survey or invitation that
came before it. Passive touches (impressions, unanswered surveys, declined invitations) carry no signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.contract.schema import CONTENT_TOPICS
from features.sources.simulation.activity import AMOUNT_SIGMA
from features.sources.simulation.codes import (
    APP,
    CALL,
    CH,
    CHAT,
    DAY,
    DEV,
    EVENT,
    KIND,
    N_PRODUCTS,
    REF,
    SOCIAL,
    STORE,
    SURVEY,
    TOP,
)
from features.sources.simulation.config import SimConfig
from features.sources.simulation.rows import TouchRows, touch_rows
from features.sources.simulation.state import Episodes
from features.sources.simulation.traits import Traits

_CART_BY_STAGE = np.array([0.05, 0.2, 0.45])
# Page-view topic mix by micro-moment stage (know → how-to, go/do → store locator, buy → price).
_TOPIC_BY_STAGE = np.array(
    [
        [0.50, 0.40, 0.05, 0.05],
        [0.15, 0.35, 0.35, 0.15],
        [0.05, 0.30, 0.15, 0.50],
    ]
)
_CONTENT_TOPIC_CODES = np.array([TOP[x] for x in CONTENT_TOPICS])
_SOCIAL_KINDS = np.array([KIND[k] for k in ("social_like", "social_comment", "social_share", "review")])


@dataclass(frozen=True)
class Sessions:
    """The online (web / app) episodes and what each session holds."""

    idx: np.ndarray  # their positions among the episodes
    cust: np.ndarray
    stage: np.ndarray
    npv: np.ndarray  # page views
    has_pv: np.ndarray  # a product view
    has_search: np.ndarray
    has_filter: np.ndarray
    has_cart: np.ndarray
    dur: np.ndarray  # seconds
    dev: np.ndarray
    ref: np.ndarray
    chan: np.ndarray


def decorate(
    ep: Episodes, t: Traits, rng: np.random.Generator, cutoff_sec: np.int64, return_p: float
) -> list[TouchRows]:
    """Expand active episodes into touch rows; the episode's first touch is at its start time."""
    # a touch placed before its episode never falls before signup (history) or the cutoff (horizon)
    floor = np.where(ep.pre, t.signup_sec[ep.cust], cutoff_sec)
    sessions = _draw_sessions(ep, t, rng)
    out = [_visit_rows(ep, sessions), _page_view_rows(ep, sessions, rng), *_session_detail_rows(ep, sessions, t, rng)]
    store = np.flatnonzero(ep.etype == STORE)
    store_dur = np.round(rng.uniform(300, 3_000, len(store)), 1)
    out.append(_store_visit_rows(ep, store, store_dur))
    out.extend(_purchase_rows(ep, sessions, store, store_dur, t, rng, return_p))
    out.extend(_service_rows(ep, t, rng))
    out.append(_social_rows(ep, t, rng))
    out.extend(_survey_rows(ep, floor, t, rng))
    out.extend(_event_rows(ep, floor, rng))
    return out


def _product(t: Traits, c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A product near the customer's favourite."""
    return (t.fav_product[c] + rng.geometric(0.3, len(c)) - 1) % N_PRODUCTS


def _choice_rows(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row-wise categorical draws from a (m × k) probability matrix."""
    u = rng.random(len(p))
    return np.minimum((u[:, None] >= np.cumsum(p, axis=1)).sum(axis=1), p.shape[1] - 1)


def _sentiment(t: Traits, cust: np.ndarray, troubled: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    s = 0.25 + 0.9 * (t.promoter[cust] - 0.27) - 0.8 * troubled + rng.normal(0, 0.3, len(cust))
    return np.round(np.clip(s, -1.0, 1.0), 3)


def _before(sec: np.ndarray, lag: np.ndarray, floor: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``sec - lag``, or a uniform time in ``[floor, sec)`` when that would fall before ``floor``."""
    cand = sec - lag
    inside = floor + (rng.random(len(sec)) * np.maximum(sec - floor, 0)).astype(np.int64)
    return np.where(cand >= floor, cand, inside)


# ------------------------------------------------------------------------------------ online sessions
def _draw_sessions(ep: Episodes, t: Traits, rng: np.random.Generator) -> Sessions:
    s = np.flatnonzero(ep.etype <= APP)
    c, st, app = ep.cust[s], ep.stage[s], ep.etype[s] == APP
    m = len(s)
    npv = 1 + rng.poisson(np.array([0.8, 1.0, 1.3])[st] * 0.6)
    has_pv = rng.random(m) < 0.5 + 0.1 * st
    has_search = rng.random(m) < 0.3
    has_filter = rng.random(m) < 0.15 + 0.1 * (st > 0)
    has_cart = ep.bought[s] | (rng.random(m) < _CART_BY_STAGE[st])
    dur = np.round(40.0 * (npv + has_pv + has_search + has_filter + 1) * rng.lognormal(0.0, 0.5, m), 1)
    dev_web = _choice_rows(np.tile([0.5, 0.4, 0.1], (m, 1)), rng)
    dev = np.where(app, np.where(rng.random(m) < 0.85, DEV["mobile"], DEV["tablet"]), dev_web)
    ref_p = np.tile([0.2, 0.35, 0.3, 0.1, 0.05], (m, 1))
    ref_p[:, 4] += 0.25 * t.pref[c, 0]
    ref = np.where(app, REF["direct"], _choice_rows(ref_p / ref_p.sum(axis=1, keepdims=True), rng))
    return Sessions(
        idx=s,
        cust=c,
        stage=st,
        npv=npv,
        has_pv=has_pv,
        has_search=has_search,
        has_filter=has_filter,
        has_cart=has_cart,
        dur=dur,
        dev=dev,
        ref=ref,
        chan=np.where(app, CH["app"], CH["web"]),
    )


def _visit_rows(ep: Episodes, ss: Sessions) -> TouchRows:
    pages = (ss.npv + ss.has_pv + ss.has_search + ss.has_filter).astype(np.float64)
    return touch_rows(
        ss.cust,
        ep.sec[ss.idx],
        ss.chan,
        KIND["visit"],
        0,
        pre=ep.pre[ss.idx],
        duration_s=ss.dur,
        pages=pages,
        device=ss.dev,
        referrer=ss.ref,
    )


def _page_view_rows(ep: Episodes, ss: Sessions, rng: np.random.Generator) -> TouchRows:
    """Page views with a micro-moment topic."""
    npv = ss.npv
    r = np.repeat(np.arange(len(ss.idx)), npv)
    topic = _CONTENT_TOPIC_CODES[_choice_rows(_TOPIC_BY_STAGE[ss.stage[r]], rng)]
    # pages follow each other: the i-th page view starts i steps into the session (never two at once)
    rank = np.arange(len(r)) - np.repeat(np.cumsum(npv) - npv, npv)
    step = np.maximum(ss.dur[r] / (npv[r] + 1), 1.0)
    off = 1 + (rank * step + rng.random(len(r)) * step * 0.5).astype(np.int64)
    return touch_rows(
        ss.cust[r],
        ep.sec[ss.idx][r] + off,
        ss.chan[r],
        KIND["page_view"],
        0,
        pre=ep.pre[ss.idx][r],
        topic=topic,
        device=ss.dev[r],
        duration_s=np.round(ss.dur[r] / (npv[r] + 1), 1),
    )


def _session_detail_rows(ep: Episodes, ss: Sessions, t: Traits, rng: np.random.Generator) -> list[TouchRows]:
    """Product views, searches, filters and carts, each at a random moment of its session."""
    out = []
    for mask, kind in (
        (ss.has_pv, "product_view"),
        (ss.has_search, "search"),
        (ss.has_filter, "filter"),
        (ss.has_cart, "add_to_cart"),
    ):
        k = np.flatnonzero(mask)
        off = 1 + (rng.random(len(k)) * ss.dur[k]).astype(np.int64)
        product = _product(t, ss.cust[k], rng) if kind in ("product_view", "add_to_cart") else None
        out.append(
            touch_rows(
                ss.cust[k],
                ep.sec[ss.idx][k] + off,
                ss.chan[k],
                KIND[kind],
                0,
                pre=ep.pre[ss.idx][k],
                device=ss.dev[k],
                product=product,
            )
        )
    return out


# ------------------------------------------------------------------------------ stores and purchases
def _store_visit_rows(ep: Episodes, g: np.ndarray, store_dur: np.ndarray) -> TouchRows:
    return touch_rows(
        ep.cust[g],
        ep.sec[g],
        CH["store"],
        KIND["visit"],
        0,
        pre=ep.pre[g],
        duration_s=store_dur,
        device=DEV["in_person"],
    )


def _purchase_rows(
    ep: Episodes,
    ss: Sessions,
    store: np.ndarray,
    store_dur: np.ndarray,
    t: Traits,
    rng: np.random.Generator,
    return_p: float,
) -> list[TouchRows]:
    """Purchases (online at the end of the session, in store at the end of the visit) and their returns."""
    b = np.flatnonzero(ep.bought)
    bdur = np.zeros(len(ep.bought))
    bdur[ss.idx] = ss.dur
    bdur[store] = store_dur
    bc, et = ep.cust[b], ep.etype
    amount = np.round(t.aov[bc] * rng.lognormal(0.0, AMOUNT_SIGMA, len(b)) * (1 - ep.discount[b]), 2)
    bchan = np.where(et[b] == STORE, CH["store"], np.where(et[b] == APP, CH["app"], CH["web"]))
    bsec = ep.sec[b] + bdur[b].astype(np.int64) + 1
    purchases = touch_rows(
        bc,
        bsec,
        bchan,
        KIND["purchase"],
        0,
        pre=ep.pre[b],
        amount=amount,
        discount=ep.discount[b],
        product=_product(t, bc, rng),
    )
    # returns: later, on the purchase channel; dropped later if past churn / cutoff / horizon
    ret = rng.random(len(b)) < return_p * (1 + 2 * ep.troubled[b])  # troubled customers return more
    rsec = bsec[ret] + rng.integers(2 * DAY, 20 * DAY, int(ret.sum()))
    returns = touch_rows(
        bc[ret],
        rsec,
        np.where(bchan[ret] == CH["app"], CH["web"], bchan[ret]),
        KIND["return"],
        0,
        pre=ep.pre[b][ret],
        amount=amount[ret],
    )
    return [purchases, returns]


# ----------------------------------------------------------------- service, social, surveys, events
def _service_rows(ep: Episodes, t: Traits, rng: np.random.Generator) -> list[TouchRows]:
    """Service contacts; topics and sentiment turn sour in the troubled state, which also brings complaints."""
    v = np.flatnonzero((ep.etype == CALL) | (ep.etype == CHAT))
    vt, cust, et = ep.troubled[v], ep.cust[v], ep.etype[v]
    tp = np.where(vt[:, None], [[0.0, 0.0, 0.2, 0.45, 0.35]], [[0.35, 0.25, 0.4, 0.0, 0.0]])
    vtopic = _choice_rows(tp, rng)  # SERVICE_TOPICS occupy the first five TOPICS codes
    vchan = np.where(et == CALL, CH["call_center"], CH["chat"])
    vdev = np.where(et == CALL, DEV["phone"], np.where(rng.random(len(v)) < 0.5, DEV["desktop"], DEV["mobile"]))
    duration = np.round(rng.uniform(60, 1_200, len(v)), 1)
    contacts = touch_rows(
        cust,
        ep.sec[v],
        vchan,
        KIND["service_contact"],
        0,
        pre=ep.pre[v],
        topic=vtopic,
        device=vdev,
        duration_s=duration,
        sentiment=_sentiment(t, cust, vt, rng),
    )
    cmp = np.flatnonzero(vt & (rng.random(len(v)) < 0.35))
    complaints = touch_rows(
        cust[cmp],
        ep.sec[v][cmp] + 60,
        vchan[cmp],
        KIND["complaint"],
        0,
        pre=ep.pre[v][cmp],
        topic=np.full(len(cmp), TOP["dissatisfaction"]),
        sentiment=np.round(-rng.uniform(0.4, 1.0, len(cmp)), 3),
    )
    return [contacts, complaints]


def _social_rows(ep: Episodes, t: Traits, rng: np.random.Generator) -> TouchRows:
    so = np.flatnonzero(ep.etype == SOCIAL)
    skind = _SOCIAL_KINDS[_choice_rows(np.tile([0.5, 0.25, 0.15, 0.1], (len(so), 1)), rng)]
    ssent = np.where(skind == KIND["review"], _sentiment(t, ep.cust[so], ep.troubled[so], rng), np.nan)
    return touch_rows(
        ep.cust[so], ep.sec[so], CH["social"], skind, 0, pre=ep.pre[so], sentiment=ssent, device=DEV["mobile"]
    )


def _survey_rows(ep: Episodes, floor: np.ndarray, t: Traits, rng: np.random.Generator) -> list[TouchRows]:
    """Survey responses, each after its (passive) survey."""
    sv = np.flatnonzero(ep.etype == SURVEY)
    cust = ep.cust[sv]
    sentiment = _sentiment(t, cust, ep.troubled[sv], rng)
    responses = touch_rows(
        cust, ep.sec[sv], CH["survey"], KIND["survey_response"], 0, pre=ep.pre[sv], sentiment=sentiment
    )
    sent = _before(ep.sec[sv], rng.integers(3_600, 2 * DAY, len(sv)), floor[sv], rng)
    return [responses, touch_rows(cust, sent, CH["survey"], KIND["survey_sent"], 1, pre=ep.pre[sv])]


def _event_rows(ep: Episodes, floor: np.ndarray, rng: np.random.Generator) -> list[TouchRows]:
    """Event attendance, each after its (passive) invitation."""
    ev = np.flatnonzero(ep.etype == EVENT)
    cust = ep.cust[ev]
    attendance = touch_rows(
        cust,
        ep.sec[ev],
        CH["event"],
        KIND["event_attendance"],
        0,
        pre=ep.pre[ev],
        duration_s=np.round(rng.uniform(1_800, 10_800, len(ev)), 1),
        device=DEV["in_person"],
    )
    inv = _before(ep.sec[ev], rng.integers(3 * DAY, 20 * DAY, len(ev)), floor[ev], rng)
    return [attendance, touch_rows(cust, inv, CH["event"], KIND["event_invite"], 1, pre=ep.pre[ev])]


# ------------------------------------------------------------------------------------ passive touches
def passive_touches(t: Traits, cfg: SimConfig, rng: np.random.Generator, end_sec: np.int64) -> list[TouchRows]:
    """Company-initiated touches: ad impressions (identical rate for everyone: no signal), unanswered
    surveys and declined event invitations."""
    first = np.maximum(t.signup_sec, 0)
    span = (end_sec - first) / DAY
    out = []
    for rate, chan, kind in (
        (np.full(len(span), cfg.impression_rate), None, "impression"),
        (cfg.survey_rate * (1 - t.survey_resp), CH["survey"], "survey_sent"),
        (cfg.event_invite_rate * (1 - t.attend), CH["event"], "event_invite"),
    ):
        cnt = rng.poisson(rate * span)
        c = np.repeat(np.arange(len(span)), cnt)
        sec = first[c] + (rng.random(len(c)) * (end_sec - first[c])).astype(np.int64)
        if chan is None:
            chan = np.array([CH[x] for x in ("web", "social", "app", "email")])[rng.integers(0, 4, len(c))]
        out.append(touch_rows(c, sec, chan, KIND[kind], 1, pre=False))
    return out
