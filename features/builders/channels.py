"""The channel family: per outreach channel, contacts, response rates, recency, consent and fatigue.

Contacts come from the outreach table, responses (opens, clicks, redemptions) from the touchpoint log
on the channel's touch channel; rates are smoothed toward each channel's population rate.
"""

from __future__ import annotations

import numpy as np

from features.builders.base import INT_MIN, FeatureBuilder, days_since, per_member, safe_div, smoothed_rate
from features.builders.events import EventArrays
from features.builders.vocab_codes import N_CHANNELS, N_OUT, C, K, kind_dir_lut
from features.contract.schema import DAY_NS, OUTREACH_CHANNELS, OUTREACH_TO_TOUCH_CHANNEL

TOUCH_TO_OUT = np.full(N_CHANNELS, -1, dtype=np.int8)
for _j, _c in enumerate(OUTREACH_CHANNELS):
    TOUCH_TO_OUT[C[OUTREACH_TO_TOUCH_CHANNEL[_c]]] = _j
RESPONSE_KINDS = ("message_open", "message_click", "offer_redeemed")
# kind_dir -> response index (open, click, redemption) of inbound responses, -1 otherwise.
RESPONSE_DIR = kind_dir_lut({k: j for j, k in enumerate(RESPONSE_KINDS)}, np.int8, -1)


class ChannelBuilder(FeatureBuilder):
    """Per outreach channel: contacts received, open/click/response rates, recency, consent, fatigue.

    Contacts come from the outreach table (holdout rows excluded: they were not contacted); responses
    are the customer's opens, clicks and redemptions on that channel in the touchpoint log.

    Parameters
    ----------
    prior_strength : pseudo-contacts at the channel's population rate that smooth each customer's rates.
    recency_cap_days : days-since value when there was no response / contact.
    """

    family = "channel"
    seed_idea = "channel affinity and contact fatigue"

    def __init__(self, prior_strength: float = 2.0, recency_cap_days: float = 3650.0):
        self.prior_strength = prior_strength
        self.recency_cap_days = recency_cap_days

    def describe(self) -> list[tuple[str, str]]:
        out = per_member(OUTREACH_CHANNELS, self._channel_columns)
        out += [
            ("contacts_7d", "outreach contacts on any channel in the last 7 days (fatigue)"),
            ("contacts_30d", "outreach contacts on any channel in the last 30 days (fatigue)"),
            ("contacts_total", "outreach contacts ever"),
            (
                "click_to_open_rate",
                "clicks / opens over every channel (CTOR), smoothed toward the population's: how much an opened "
                "message moves the customer, which opens alone do not show (a responsiveness signal)",
            ),
            ("redeem_to_click_rate", "offer redemptions / clicks over every channel, smoothed"),
        ]
        return out

    def _channel_columns(self, c: str) -> list[tuple[str, str]]:
        """The columns of outreach channel ``c``."""
        return [
            (f"chan_{c}_contacts", f"{c} outreach contacts received"),
            (f"chan_{c}_contacts_30d", f"{c} contacts in the last 30 days"),
            (f"chan_{c}_opens", f"{c} messages opened"),
            (f"chan_{c}_clicks", f"{c} messages clicked"),
            (
                f"chan_{c}_open_rate",
                f"{c} opens / contacts, smoothed toward the channel's population rate",
            ),
            (f"chan_{c}_click_rate", f"{c} clicks / contacts, smoothed"),
            (
                f"chan_{c}_response_rate",
                f"{c} contacts answered by any reaction (open, click or "
                "redemption; the largest of the three counts) / contacts, smoothed: the channel affinity",
            ),
            (
                f"chan_{c}_days_since_response",
                f"days since the last reaction on {c} (cap {self.recency_cap_days:g})",
            ),
            (
                f"chan_{c}_days_since_contact",
                f"days since the last {c} contact (cap {self.recency_cap_days:g})",
            ),
            (f"chan_{c}_consent", f"1 = consent to {c} contact"),
            (f"chan_{c}_unsubscribed", f"1 = unsubscribed on {c}"),
            (
                f"chan_{c}_inbound_90d",
                f"the customer's own active touches on {c}'s touch channel, last 90 days",
            ),
        ]

    def _counts(self, ev: EventArrays) -> dict[str, np.ndarray]:
        def _c():
            oc = ev.out_cust.astype(np.int64)
            oage = ev.cutoff_ns - ev.out_ts
            ob = (oage >= 7 * DAY_NS).astype(np.int64) + (oage >= 30 * DAY_NS)
            contacts = np.bincount(oc * (N_OUT * 3) + ev.out_channel * 3 + ob, minlength=ev.n * N_OUT * 3)
            contacts = contacts.reshape(ev.n, N_OUT, 3).cumsum(2)
            last_contact = np.full(ev.n * N_OUT, INT_MIN, dtype=np.int64)
            np.maximum.at(last_contact, oc * N_OUT + ev.out_channel, ev.out_ts)
            ochan = TOUCH_TO_OUT.take(ev.channel)
            rkc = RESPONSE_DIR.take(ev.kind_dir)
            idx = np.flatnonzero((ochan >= 0) & (rkc >= 0))
            key = ev.cust[idx].astype(np.int64) * N_OUT + ochan[idx]
            resp = np.bincount(key * 3 + rkc[idx], minlength=ev.n * N_OUT * 3).reshape(ev.n, N_OUT, 3)
            last_resp = np.full(ev.n * N_OUT, INT_MIN, dtype=np.int64)
            np.maximum.at(last_resp, key, ev.ts[idx])
            return {
                "contacts": contacts,
                "resp": resp,
                "last_resp": last_resp.reshape(ev.n, N_OUT),
                "last_contact": last_contact.reshape(ev.n, N_OUT),
            }

        return ev.memo("channel_counts", _c)

    def _fit_stats(self, ev: EventArrays) -> dict[str, np.ndarray]:
        c = self._counts(ev)
        return {"contacts": c["contacts"][:, :, 2], "resp": c["resp"]}

    def _fit_from(self, st: dict[str, np.ndarray]) -> None:
        n = st["contacts"].sum(0).astype(np.float64)
        r = st["resp"].sum(0).astype(np.float64)
        self.open_rate_ = np.minimum(safe_div(r[:, 0], n), 1.0)
        self.click_rate_ = np.minimum(safe_div(r[:, 1], n), 1.0)
        self.response_rate_ = np.minimum(safe_div(r.max(1), n), 1.0)
        pooled = r.sum(0)
        self.click_to_open_rate_ = float(min(safe_div(pooled[1], pooled[0]), 1.0))
        self.redeem_to_click_rate_ = float(min(safe_div(pooled[2], pooled[1]), 1.0))

    def _block(self, ev: EventArrays) -> np.ndarray:
        c = self._counts(ev)
        a = self.prior_strength
        contacts, resp = c["contacts"], c["resp"]
        active_ch = ev.active_channel_counts()[:, :, 2]
        # Unsubscribes (either direction) by channel; they are rare, so select them first.
        uidx = np.flatnonzero(ev.kind == K["unsubscribe"])
        uch = ev.channel[uidx]
        known = np.flatnonzero(uch >= 0)
        ukey = ev.cust[uidx[known]].astype(np.intp) * N_CHANNELS + uch[known]
        unsub = np.bincount(ukey, minlength=ev.n * N_CHANNELS).reshape(ev.n, N_CHANNELS)
        cols: list[np.ndarray] = []
        for j, ch in enumerate(OUTREACH_CHANNELS):
            n = contacts[:, j, 2]
            tj = C[OUTREACH_TO_TOUCH_CHANNEL[ch]]
            cols += [
                n,
                contacts[:, j, 1],
                resp[:, j, 0],
                resp[:, j, 1],
                smoothed_rate(resp[:, j, 0], n, self.open_rate_[j], a),
                smoothed_rate(resp[:, j, 1], n, self.click_rate_[j], a),
                smoothed_rate(resp[:, j].max(1), n, self.response_rate_[j], a),
                days_since(ev, c["last_resp"][:, j], self.recency_cap_days),
                days_since(ev, c["last_contact"][:, j], self.recency_cap_days),
                ev.consent[:, j],
                unsub[:, tj] > 0,
                active_ch[:, tj],
            ]
        cols += [contacts[:, :, 0].sum(1), contacts[:, :, 1].sum(1), contacts[:, :, 2].sum(1)]
        if hasattr(self, "click_to_open_rate_"):  # builders fitted before these columns existed keep their layout
            pooled = resp.sum(1)
            cols += [
                smoothed_rate(pooled[:, 1], pooled[:, 0], self.click_to_open_rate_, a),
                smoothed_rate(pooled[:, 2], pooled[:, 1], self.redeem_to_click_rate_, a),
            ]
        return np.column_stack(cols).astype(np.float64, copy=False)
