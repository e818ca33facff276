"""Per receipt, what was known strictly before it: the member's profile and history since the log began.

Nothing at or after the receipt enters, so a row's covariates are the same whatever happens later, and
the offer sent at the receipt cannot leak into them. Missing values (empty profiles, no history at the
first wave) stay missing: the learners handle them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract.schema import Tables
from training.starbucks.rows import DAY, OFFER_TYPES, log_span, per_row, person_events, receipt_event_pairs


@dataclass(frozen=True)
class ReceiptHistory:
    """What the covariate families share: the receipt rows and every event of the person before each one."""

    rows: pd.DataFrame
    r_ts: pd.Series  # receipt times, renumbered
    history: np.ndarray  # days from the log's start to the receipt
    before: pd.DataFrame  # (receipt row, event) pairs with the event strictly before the receipt

    @property
    def n(self) -> int:
        return len(self.rows)


def _profile(h: ReceiptHistory, tables: Tables) -> pd.DataFrame:
    """Age, income, gender, membership tenure at the receipt, wave and days of history."""
    n = h.n
    cust = tables.customers.assign(customer_id=tables.customers["customer_id"].astype(str)).set_index("customer_id")
    cust = cust.reindex(h.rows["customer_id"].to_numpy())
    X = pd.DataFrame(index=pd.RangeIndex(n))
    X["age"] = cust["age"].to_numpy(float) if "age" in cust else np.nan
    X["income"] = cust["income"].to_numpy(float) if "income" in cust else np.nan
    gender = cust["gender"].astype(object).to_numpy() if "gender" in cust else np.full(n, None)
    for g in ("F", "M", "O"):
        X[f"gender_{g}"] = (gender == g).astype(float)
    X["tenure_days"] = ((h.r_ts - pd.to_datetime(cust["signup_ts"].to_numpy(), utc=True)) / DAY).to_numpy(float)
    X["wave"] = h.rows["wave"].to_numpy(float)
    X["history_days"] = h.history
    return X


def _transactions(h: ReceiptHistory) -> pd.DataFrame:
    """Transactions and spend before the receipt: totals, per day of history, mean ticket, days since the last."""
    n, history = h.n, h.history
    buy = h.before[(h.before["kind"] == "purchase").to_numpy()]
    spend = per_row(buy["amount"], buy["row"].to_numpy(), n)
    n_tx = per_row(None, buy["row"].to_numpy(), n)
    last_h = -per_row(buy["dt_h"], buy["row"].to_numpy(), n, how="max")
    has_history = history > 0
    X = pd.DataFrame(index=pd.RangeIndex(n))
    X["prior_spend"] = spend
    X["prior_tx"] = n_tx
    with np.errstate(invalid="ignore", divide="ignore"):
        X["prior_spend_per_day"] = np.where(has_history, spend / history, np.nan)
        X["prior_tx_per_day"] = np.where(has_history, n_tx / history, np.nan)
        X["prior_avg_tx"] = np.where(n_tx > 0, spend / n_tx, np.nan)
    # No transaction yet: as long ago as the history goes (missing at the first wave: nothing is known).
    X["days_since_tx"] = np.where(np.isnan(last_h), np.where(has_history, history, np.nan), last_h / 24.0)
    return X


def _offers(h: ReceiptHistory, catalogue: pd.DataFrame) -> pd.DataFrame:
    """Earlier offers received / viewed / completed per offer type, view rate, rewards earned, offers still valid."""
    n, rows, r_ts = h.n, h.rows, h.r_ts
    otype = catalogue["offer_type"]
    react = h.before[(h.before["kind"] != "purchase").to_numpy()]
    rtype = otype.reindex(react["offer_id"].to_numpy()).to_numpy()
    earlier = pd.DataFrame({"row": np.arange(n), "customer_id": rows["customer_id"].to_numpy(), "r_ts": r_ts})
    earlier = earlier.merge(pd.DataFrame({"customer_id": rows["customer_id"].to_numpy(), "p_ts": r_ts,
                                          "p_offer": rows["offer"].to_numpy()}), on="customer_id")
    earlier = earlier[(earlier["p_ts"] < earlier["r_ts"]).to_numpy()]
    ptype = otype.reindex(earlier["p_offer"].to_numpy()).to_numpy()
    X = pd.DataFrame(index=pd.RangeIndex(n))
    for t in OFFER_TYPES:
        X[f"received_{t}"] = per_row(None, earlier["row"].to_numpy()[ptype == t], n)
        for kind, name in (("message_open", "viewed"), ("offer_redeemed", "completed")):
            sel = (react["kind"].to_numpy() == kind) & (rtype == t)
            X[f"{name}_{t}"] = per_row(None, react["row"].to_numpy()[sel], n)
    for name in ("received", "viewed", "completed"):
        X[name] = X[[f"{name}_{t}" for t in OFFER_TYPES]].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        X["view_rate"] = np.where(X["received"] > 0, X["viewed"] / X["received"], np.nan)
    done = react[(react["kind"] == "offer_redeemed").to_numpy()]
    X["rewards_earned"] = per_row(done["discount"], done["row"].to_numpy(), n)
    valid_until = earlier["p_ts"] + pd.to_timedelta(
        catalogue["duration_days"].reindex(earlier["p_offer"].to_numpy()).to_numpy(), unit="D")
    still = (valid_until > earlier["r_ts"]).to_numpy()
    X["offers_valid"] = per_row(None, earlier["row"].to_numpy()[still], n)
    return X


def pre_receipt_covariates(rows: pd.DataFrame, tables: Tables, catalogue: pd.DataFrame) -> pd.DataFrame:
    """Per receipt row, what was known strictly before the receipt (``ts < receipt``): profile and history.

    Profile: age, income, gender, membership tenure at the receipt. History since the log began:
    transactions and spend (totals, per day, days since the last), offers received / viewed / completed per
    offer type, view rate, rewards earned, earlier offers still valid, wave and days of history.
    """
    start, _ = log_span(tables)
    r_ts = pd.to_datetime(rows["ts"], utc=True).reset_index(drop=True)
    m = receipt_event_pairs(rows, person_events(tables))
    h = ReceiptHistory(rows, r_ts, ((r_ts - start) / DAY).to_numpy(float), m[(m["dt_h"] < 0).to_numpy()])
    return pd.concat([_profile(h, tables), _transactions(h), _offers(h, catalogue)], axis=1)
