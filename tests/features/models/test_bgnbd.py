"""BG/NBD + Gamma-Gamma: the published CDNOW estimates, lifetimes' closed forms, the day-level summary."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from features.contract.schema import Tables
from features.models.bgnbd import WEEK, BGNBDGammaGamma, RFMSummary, summary_from_transactions


@pytest.fixture(scope="module")
def cdnow_sample():
    """The 2,357-customer CDNOW sample (39-week calibration) that lifetimes ships, as an RFM summary in days."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value

    d = load_cdnow_summary_data_with_monetary_value()
    s = RFMSummary(pd.Index(d.index.astype(str)), d["frequency"].to_numpy(float), d["recency"].to_numpy(float) * WEEK,
                   d["T"].to_numpy(float) * WEEK, d["monetary_value"].to_numpy(float), np.ones(len(d), bool))
    return d, s


def test_fit_reproduces_the_published_cdnow_estimates(cdnow_sample) -> None:
    """Fader, Hardie & Lee (2005): r .243, alpha 4.414, a .793, b 2.426; Gamma-Gamma p 6.25, q 3.74, v 15.44."""
    _, s = cdnow_sample
    m = BGNBDGammaGamma().fit(s)
    got = m.bgnbd_params_
    for k, want in {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}.items():
        assert got[k] == pytest.approx(want, abs=0.002), k
    for k, want in {"p": 6.25, "q": 3.74, "v": 15.44}.items():
        assert m.gg_params_[k] == pytest.approx(want, abs=0.01), k


def test_closed_forms_equal_lifetimes(cdnow_sample) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes import BetaGeoFitter, GammaGammaFitter

    d, s = cdnow_sample
    m = BGNBDGammaGamma().fit(s)
    bg = BetaGeoFitter().fit(d["frequency"], d["recency"], d["T"])
    want = bg.conditional_expected_number_of_purchases_up_to_time(39, d["frequency"], d["recency"], d["T"])
    np.testing.assert_allclose(m.expected_purchases(s, 39 * WEEK), want.to_numpy(), rtol=1e-6, atol=1e-9)
    alive = bg.conditional_probability_alive(d["frequency"], d["recency"], d["T"])
    np.testing.assert_allclose(m.p_alive(s), np.asarray(alive), rtol=1e-6)
    rep = d[d["frequency"] > 0]
    gg = GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])
    np.testing.assert_allclose(m.expected_order_value(s),
                               gg.conditional_expected_average_profit(d["frequency"], d["monetary_value"]).to_numpy(),
                               rtol=1e-6)


def test_day_level_summary_as_lifetimes_counts_it() -> None:
    """Two purchases on one day are one transaction; T runs to the last day before the cutoff."""
    ts = pd.to_datetime(["2024-01-01 10:00", "2024-01-01 15:00", "2024-01-11 00:00", "2024-01-21 00:00",
                         "2024-02-05 00:00", "2024-01-05 00:00"], utc=True)
    tp = pd.DataFrame({"customer_id": ["a", "a", "a", "a", "a", "b"], "ts": ts, "kind": "purchase",
                       "amount": [10.0, 5.0, 20.0, 30.0, 99.0, 7.0]})
    customers = pd.DataFrame({"customer_id": ["a", "b", "c"]})
    s = summary_from_transactions(Tables(customers=customers, touchpoints=tp), pd.Timestamp("2024-02-01", tz="UTC"))
    assert s.x.tolist() == [2.0, 0.0, 0.0]  # a: days 1, 11, 21 (the purchase on Feb 5 is after the cutoff)
    assert s.t_x.tolist() == [20.0, 0.0, 0.0]
    assert s.T.tolist() == [30.0, 26.0, 0.0]  # to Jan 31, the last day observed
    assert s.m.tolist() == [25.0, 0.0, 0.0]  # repeat transactions only: (20 + 30) / 2
    assert s.bought.tolist() == [True, True, False]
