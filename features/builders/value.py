"""The value family: RFM, order value and frequency, loyalty, tenure, returns, price sensitivity, forward value.

The forward value multiplies a gamma-Poisson purchase rate (prior fitted on the training population),
a smoothed order value and the chance the customer is still active given their silence.
"""

from __future__ import annotations

import numpy as np

from features.builders.activity import purchase_times
from features.builders.base import INT_MIN, FeatureBuilder, days_since, safe_div, smoothed_rate
from features.builders.events import EventArrays
from features.builders.vocab_codes import K
from features.contract.schema import DAY_NS


class ValueBuilder(FeatureBuilder):
    """RFM, order value and frequency, loyalty, tenure, returns, price sensitivity and forward value.

    Parameters
    ----------
    prior_strength : pseudo-observations of the population rates used to smooth customer rates.
    value_horizon_days : horizon of the forward value estimate.
    alive_tolerance : a customer silent for this many expected purchase gaps keeps e^-1 of their value.
    recency_cap_days : recency for customers who never bought (and its maximum).
    loyalty_mark : purchase count that marks a loyal customer.
    """

    family = "value"
    seed_idea = "value and loyalty (RFM, AOV, APF, 5-purchase mark, price sensitivity)"
    int_columns = frozenset({"loyal"})

    def __init__(
        self,
        prior_strength: float = 2.0,
        value_horizon_days: float = 365.0,
        alive_tolerance: float = 3.0,
        recency_cap_days: float = 3650.0,
        loyalty_mark: int = 5,
    ):
        self.prior_strength = prior_strength
        self.value_horizon_days = value_horizon_days
        self.alive_tolerance = alive_tolerance
        self.recency_cap_days = recency_cap_days
        self.loyalty_mark = loyalty_mark

    def describe(self) -> list[tuple[str, str]]:
        return [
            ("recency_days", f"days since the last purchase (cap {self.recency_cap_days:g})"),
            ("frequency", "purchases ever"),
            ("monetary", "total purchase amount ever"),
            ("aov", "average order value (0 without purchases)"),
            ("apf", "average purchase frequency: purchases per month of tenure (tenure floored at 1 month)"),
            ("repeat_purchases", "purchases after the first"),
            ("loyal", f"1 = reached the {self.loyalty_mark}-purchase loyalty mark"),
            ("purchases_30d", "purchases in the last 30 days"),
            ("purchases_90d", "purchases in the last 90 days"),
            ("monetary_90d", "purchase amount in the last 90 days"),
            ("mean_days_between_purchases", "mean gap between purchases (0 with fewer than 2)"),
            ("tenure_days", "days since signup (since the first touch when signup is unknown)"),
            ("returns", "returns ever"),
            ("return_rate", "returns / purchases (0 without purchases)"),
            ("discount_purchases", "purchases with a discount"),
            ("discount_share", "share of purchases with a discount, smoothed toward the population share"),
            ("mean_discount", "mean discount of discounted purchases"),
            ("price_offers_received", "discount-type offers received in outreach"),
            ("price_offers_redeemed", "discount-type offers redeemed"),
            (
                "price_offer_redemption_rate",
                "redeemed / received discount offers, smoothed toward the population rate",
            ),
            ("price_sensitivity", "mean of the smoothed discount share and discount-offer redemption rate"),
            (
                "forward_value",
                f"expected purchase value in the next {self.value_horizon_days:g} days: "
                "gamma-Poisson purchase rate x smoothed AOV x P(still active)",
            ),
        ]

    def _basics(self, ev: EventArrays) -> dict[str, np.ndarray]:
        def _b():
            idx = ev.purchase_idx()
            c = ev.cust[idx]
            amt = ev.numeric("amount")
            a = np.nan_to_num(amt[idx]) if amt is not None else np.zeros(idx.size)
            disc = ev.numeric("discount")
            d = np.nan_to_num(disc[idx]) if disc is not None else np.zeros(idx.size)
            b = ev.window_bucket()[idx]
            r30, r90, disc_i = np.flatnonzero(b <= 1), np.flatnonzero(b <= 2), np.flatnonzero(d > 0)
            first_p, last_p = purchase_times(ev)
            first_any = ev.first_ts(None)
            start = np.where(ev.signup_ns != INT_MIN, ev.signup_ns, first_any)
            tenure = np.where(start < ev.cutoff_ns, (ev.cutoff_ns - start) / DAY_NS, 0.0)
            redeemed = ev.kind_dir == K["offer_redeemed"]
            return {
                "freq": np.bincount(c, minlength=ev.n).astype(np.float64),
                "mon": np.bincount(c, weights=a, minlength=ev.n),
                "p30": np.bincount(c[r30], minlength=ev.n),
                "p90": np.bincount(c[r90], minlength=ev.n),
                "m90": np.bincount(c[r90], weights=a[r90], minlength=ev.n),
                "dp": np.bincount(c[disc_i], minlength=ev.n).astype(np.float64),
                "dsum": np.bincount(c[disc_i], weights=d[disc_i], minlength=ev.n),
                "first_p": first_p,
                "last_p": last_p,
                "tenure": tenure,
                "offers": np.bincount(ev.out_cust[ev.out_discount], minlength=ev.n).astype(np.float64),
                "redeemed": ev.bincount(redeemed & self._price_offer_rows(ev)).astype(np.float64),
            }

        return ev.memo("value_basics", _b)

    @staticmethod
    def _price_offer_rows(ev: EventArrays) -> np.ndarray:
        """Redemptions of discount-type offers (all redemptions when offer ids are unknown)."""
        return ev.price_offer if ev.price_offer is not None else np.ones(ev.m, dtype=bool)

    def _fit_stats(self, ev: EventArrays) -> dict[str, np.ndarray]:
        b = self._basics(ev)
        return {k: b[k] for k in ("freq", "mon", "dp", "offers", "redeemed", "tenure")}

    def _fit_from(self, st: dict[str, np.ndarray]) -> None:
        self.discount_share_ = float(safe_div(st["dp"].sum(), st["freq"].sum()))
        self.redemption_rate_ = float(min(1.0, safe_div(st["redeemed"].sum(), st["offers"].sum())))
        self.aov_ = float(safe_div(st["mon"].sum(), st["freq"].sum()))
        # Gamma prior on the daily purchase rate by the method of moments over customers with tenure.
        t = st["tenure"]
        ok = t >= 1
        rate = st["freq"][ok] / t[ok]
        mean = float(rate.mean()) if rate.size else 0.0
        var = float(rate.var()) if rate.size else 0.0
        if mean > 0 and var > 0:
            self.rate_alpha_ = mean / var  # prior "days" of observation
            self.rate_shape_ = mean * self.rate_alpha_
        else:
            self.rate_alpha_, self.rate_shape_ = 1.0, mean

    def _block(self, ev: EventArrays) -> np.ndarray:
        b = self._basics(ev)
        a = self.prior_strength
        freq, mon, tenure = b["freq"], b["mon"], b["tenure"]
        aov = safe_div(mon, freq)
        apf = freq / np.maximum(tenure / 30.44, 1.0)
        gap = np.where(freq >= 2, (b["last_p"] - b["first_p"]) / DAY_NS / np.maximum(freq - 1, 1), 0.0)
        recency = days_since(ev, b["last_p"], self.recency_cap_days)
        returns = ev.inbound_kind("return")
        dshare = smoothed_rate(b["dp"], freq, self.discount_share_, a)
        rrate = smoothed_rate(b["redeemed"], b["offers"], self.redemption_rate_, a)
        rate = (freq + self.rate_shape_) / (np.maximum(tenure, 1.0) + self.rate_alpha_)
        aov_s = (mon + a * self.aov_) / (freq + a)
        p_alive = np.where(freq > 0, np.exp(-recency * rate / self.alive_tolerance), 1.0)
        fv = self.value_horizon_days * rate * aov_s * p_alive
        return np.column_stack(
            [
                recency,
                freq,
                mon,
                aov,
                apf,
                np.maximum(freq - 1, 0),
                freq >= self.loyalty_mark,
                b["p30"],
                b["p90"],
                b["m90"],
                gap,
                tenure,
                returns,
                safe_div(returns, freq),
                b["dp"],
                dshare,
                safe_div(b["dsum"], b["dp"]),
                b["offers"],
                b["redeemed"],
                rrate,
                0.5 * (dshare + rrate),
                fv,
            ]
        ).astype(np.float64, copy=False)
