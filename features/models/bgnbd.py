"""The standard probabilistic customer-value model: BG/NBD for purchase counts, Gamma-Gamma for order value.

Fader, Hardie & Lee (2005) model a non-contractual customer as buying at a Poisson rate (gamma across
customers) until dropping out after some purchase (beta-geometric); Gamma-Gamma shrinks each customer's mean
order value toward the population's. Both need only an RFM summary per customer at a cutoff: repeat
purchases ``x``, the age of the last purchase within the customer's life ``t_x``, the customer's age ``T``
(all in days since the first purchase) and the mean repeat order value ``m``.

Parameters are fitted with ``lifetimes`` (the reference implementation); predictions use the closed forms
below, so a fitted model is four plus three numbers and pickles into a decision system without ``lifetimes``.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import hyp2f1

from features.contract.schema import Tables

WEEK = 7.0  # the models are fitted in weeks: their optimiser is better behaved on that scale than on days


@dataclass(frozen=True)
class RFMSummary:
    """Per customer (arrays aligned to ``index``): repeat purchases ``x``, ``t_x`` and ``T`` in days since the
    first purchase, mean repeat order value ``m`` (0 without repeats), and whether they ever bought."""

    index: pd.Index
    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    m: np.ndarray
    bought: np.ndarray

    def __len__(self) -> int:
        return len(self.index)


def summary_from_transactions(tables: Tables, cutoff: pd.Timestamp) -> RFMSummary:
    """The textbook summary (as ``lifetimes.utils.summary_data_from_transaction_data``): purchases strictly
    before ``cutoff`` collapsed to one transaction per customer and day, amounts summed per day.

    Every customer of ``tables.customers`` gets a row; those who never bought have ``bought`` False.
    """
    tp = tables.touchpoints
    m = ((tp["kind"] == "purchase") & (tp["ts"] < cutoff)).to_numpy()
    amount = tp["amount"].to_numpy(dtype=float, na_value=np.nan)[m] if "amount" in tp else np.zeros(int(m.sum()))
    day = tp["ts"][m].dt.floor("D")
    daily = (
        pd.DataFrame({"customer_id": tp["customer_id"][m].astype(str).to_numpy(), "day": day.to_numpy(),
                      "amount": np.nan_to_num(amount)})
        .groupby(["customer_id", "day"], sort=True)["amount"].sum()
        .reset_index()
    )
    g = daily.groupby("customer_id", sort=False)
    first, last, n = g["day"].transform("min"), g["day"].transform("max"), g["day"].transform("size")
    repeat = daily[daily["day"] > first]
    per = pd.DataFrame({
        "x": (n - 1).groupby(daily["customer_id"]).first(),
        "t_x": ((last - first).dt.total_seconds() / 86400).groupby(daily["customer_id"]).first(),
        "first": first.groupby(daily["customer_id"]).first(),
    })
    per["m"] = repeat.groupby("customer_id")["amount"].mean()
    ids = pd.Index(tables.customers["customer_id"].astype(str), name="customer_id")
    per = per.reindex(ids)
    bought = per["x"].notna().to_numpy()
    # the last day observed, as lifetimes counts T (a cutoff at midnight observes up to the day before)
    last_day = cutoff.ceil("D") - pd.Timedelta(days=1)
    T = ((last_day - per["first"]).dt.total_seconds() / 86400).to_numpy(dtype=float, na_value=0.0)
    return RFMSummary(
        index=ids,
        x=per["x"].to_numpy(dtype=float, na_value=0.0),
        t_x=per["t_x"].to_numpy(dtype=float, na_value=0.0),
        T=np.where(bought, T, 0.0),
        m=per["m"].to_numpy(dtype=float, na_value=0.0),
        bought=bought,
    )


def summary_from_features(F: pd.DataFrame) -> RFMSummary:
    """The same summary read back from engage's value features (so scoring from features needs no log).

    ``frequency`` counts purchase events (not days), ``mean_days_between_purchases`` x (frequency - 1) is
    the first-to-last span and ``recency_days`` the time since the last purchase; the mean order value
    ``aov`` stands in for the mean repeat order value.
    """
    need = ("frequency", "recency_days", "mean_days_between_purchases", "aov")
    missing = [c for c in need if c not in F.columns]
    if missing:
        raise ValueError(f"features: missing column(s) {missing} for the BG/NBD summary ({len(F)} rows)")

    def col(name: str) -> np.ndarray:
        return np.nan_to_num(F[name].to_numpy(dtype=float, na_value=np.nan))

    freq = col("frequency")
    bought = freq >= 1
    x = np.maximum(freq - 1.0, 0.0)
    t_x = np.where(bought, col("mean_days_between_purchases") * x, 0.0)
    T = np.where(bought, t_x + col("recency_days"), 0.0)
    m = np.where(x > 0, col("aov"), 0.0)
    return RFMSummary(pd.Index(F.index.astype(str), name="customer_id"), x, t_x, T, m, bought)


def _converged(fit, penalizer: float, what: str):
    """``fit(penalizer)``, retried with stronger penalties when the optimiser does not converge (small or
    degenerate populations); lifetimes' own advice for that failure."""
    last = None
    for pen in dict.fromkeys((penalizer, max(penalizer, 0.01), max(penalizer, 0.1))):
        # the optimiser probes invalid parameters; lifetimes prints its optimiser's state when it fails
        with np.errstate(all="ignore"), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            try:
                return fit(pen)
            except ValueError as exc:  # lifetimes' ConvergenceError is a ValueError
                last = exc
    raise ValueError(f"{what}: the fit did not converge even with penalizer {max(penalizer, 0.1)}: "
                     f"{str(last).strip().splitlines()[0] if last else ''}")


class BGNBDGammaGamma:
    """BG/NBD purchase counts x Gamma-Gamma order value: expected spend of each customer over a horizon.

    ``penalizer``: lifetimes' L2 penalty on the log-parameters (0 = the published maximum likelihood).
    Fitted attributes: ``bgnbd_params_`` (r, alpha in weeks, a, b), ``gg_params_`` (p, q, v) and
    ``population_order_value_`` (the mean order value a customer without repeat purchases gets).
    """

    def __init__(self, *, penalizer: float = 0.0) -> None:
        self.penalizer = penalizer

    def fit(self, summary: RFMSummary) -> BGNBDGammaGamma:
        """Fit both sub-models on the customers who bought (Gamma-Gamma: those with repeat purchases)."""
        with warnings.catch_warnings():  # lifetimes sets a pandas option that pandas 3 deprecates
            warnings.simplefilter("ignore")
            from lifetimes import BetaGeoFitter, GammaGammaFitter

        b = summary.bought & (summary.T > 0)
        if b.sum() < 20 or (summary.x[b] > 0).sum() < 10:
            raise ValueError(
                f"BG/NBD: {int(b.sum())} buyers, {int((summary.x[b] > 0).sum())} with repeat purchases "
                "before the cutoff; at least 20 and 10 are needed to fit"
            )
        rep = b & (summary.x > 0) & (summary.m > 0)
        bg = _converged(lambda pen: BetaGeoFitter(penalizer_coef=pen).fit(
            summary.x[b], summary.t_x[b] / WEEK, summary.T[b] / WEEK), self.penalizer, "BG/NBD")
        gg = _converged(lambda pen: GammaGammaFitter(penalizer_coef=pen).fit(summary.x[rep], summary.m[rep]),
                        self.penalizer, "Gamma-Gamma")
        self.penalizer_used_ = {"bgnbd": bg.penalizer_coef, "gamma_gamma": gg.penalizer_coef}
        self.bgnbd_params_ = {k: float(bg.params_[k]) for k in ("r", "alpha", "a", "b")}
        self.gg_params_ = {k: float(gg.params_[k]) for k in ("p", "q", "v")}
        p, q, v = (self.gg_params_[k] for k in ("p", "q", "v"))
        self.population_order_value_ = float(v * p / (q - 1.0)) if q > 1 else float(np.mean(summary.m[rep]))
        return self

    def expected_purchases(self, summary: RFMSummary, horizon_days: float) -> np.ndarray:
        """E[purchases in the next ``horizon_days`` | x, t_x, T] (lifetimes' closed form, its overflow guard)."""
        r, alpha, a, b = (self.bgnbd_params_[k] for k in ("r", "alpha", "a", "b"))
        x, t_x, T, t = summary.x, summary.t_x / WEEK, summary.T / WEEK, horizon_days / WEEK
        _a, _b, _c = r + x, b + x, a + b + x - 1.0
        z = t / (alpha + T + t)
        with np.errstate(all="ignore"):
            ln_hyp = np.log(hyp2f1(_a, _b, _c, z))
            alt = np.log(hyp2f1(_c - _a, _c - _b, _c, z)) + (_c - _a - _b) * np.log1p(-z)
            ln_hyp = np.where(np.isinf(ln_hyp) | np.isnan(ln_hyp), alt, ln_hyp)
            first = (a + b + x - 1.0) / (a - 1.0)
            second = 1.0 - np.exp(ln_hyp + (r + x) * np.log((alpha + T) / (alpha + t + T)))
            den = 1.0 + (x > 0) * (a / (b + x - 1.0)) * ((alpha + T) / (alpha + t_x)) ** (r + x)
            out = first * second / den
        return np.where(np.isfinite(out), np.maximum(out, 0.0), 0.0)

    def p_alive(self, summary: RFMSummary) -> np.ndarray:
        """P(still active | x, t_x, T); 1 without repeat purchases (BG/NBD drops customers only after a purchase)."""
        r, alpha, a, b = (self.bgnbd_params_[k] for k in ("r", "alpha", "a", "b"))
        x, t_x, T = summary.x, summary.t_x / WEEK, summary.T / WEEK
        with np.errstate(all="ignore"):
            log_div = (r + x) * np.log((alpha + T) / (alpha + t_x)) + np.log(a / (b + np.maximum(x, 1.0) - 1.0))
            out = np.where(x == 0, 1.0, 1.0 / (1.0 + np.exp(log_div)))
        return out

    def expected_order_value(self, summary: RFMSummary) -> np.ndarray:
        """Gamma-Gamma's E[mean order value | x, m]: the customer's mean shrunk toward the population's."""
        p, q = self.gg_params_["p"], self.gg_params_["q"]
        x = summary.x
        w = np.where(x > 0, p * x / (p * x + q - 1.0), 0.0)
        return (1.0 - w) * self.population_order_value_ + w * summary.m

    def expected_spend(self, summary: RFMSummary, horizon_days: float) -> np.ndarray:
        """Expected purchase amount over the next ``horizon_days``; customers who never bought get 0."""
        spend = self.expected_purchases(summary, horizon_days) * self.expected_order_value(summary)
        return np.where(summary.bought, spend, 0.0)
