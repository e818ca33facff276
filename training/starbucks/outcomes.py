"""Per receipt, the outcome window after it and what happened in it: spend, rewards paid, net value per day.

By default a receipt's window runs from the receipt to the next wave (the last wave's window: to the log's
last event), whether or not the person gets an offer in the next wave. Such windows never overlap (every
transaction counts under at most one receipt), none runs past the log (a window of the offer's validity
would, for the late waves: :func:`validity_past_log_end` counts them), and their length depends only on
the wave, within which offers are randomised, so offers compete on equal windows.

The outcome is ``(margin x spend - rewards paid for completing this receipt's offer) / window days``.
Rewards are a cost: a completion by someone who would have bought anyway is money given away. Each
transaction counts up to ``amount_cap``: a few group or bulk orders, far above any offer's minimum spend,
carry most of the outcome's variance; the evaluation repeats its held-out figures uncapped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract.schema import Tables
from training.starbucks.rows import HOUR, log_span, per_row, person_events, receipt_event_pairs


def window_ends(rows: pd.DataFrame, tables: Tables, window_hours: float | None = None) -> pd.DataFrame:
    """Each receipt's outcome window ``[receipt, end)``: fixed ``window_hours``, or (``None``) until the next wave.

    Until the next wave, the last wave's window ends at, and includes (``closed``), the log's last event.
    A fixed window that runs past the log's end is marked ``censored`` (and later dropped).
    """
    _, end = log_span(tables)
    ts = pd.to_datetime(rows["ts"], utc=True).reset_index(drop=True)
    if window_hours is None:
        waves = np.sort(ts.unique())
        nxt = pd.Series(np.append(waves[1:], end), index=waves)
        stop = pd.Series(pd.to_datetime(nxt.reindex(ts.to_numpy()).to_numpy(), utc=True))
        closed = (ts == ts.max()).to_numpy()
    else:
        stop = ts + pd.Timedelta(hours=float(window_hours))
        closed = np.zeros(len(ts), bool)
    return pd.DataFrame({"end": stop, "hours": ((stop - ts) / HOUR).to_numpy(float), "closed": closed,
                         "censored": (stop > end).to_numpy()})


def validity_past_log_end(rows: pd.DataFrame, tables: Tables, catalogue: pd.DataFrame) -> int:
    """Receipts whose offer validity runs past the log's end: why validity windows are not used."""
    _, end = log_span(tables)
    days = catalogue["duration_days"].reindex(rows["offer"].to_numpy()).to_numpy(float)
    return int((pd.to_datetime(rows["ts"], utc=True) + pd.to_timedelta(days, unit="D") > end).sum())


def window_outcomes(
    rows: pd.DataFrame,
    tables: Tables,
    *,
    window_hours: float | None = None,
    amount_cap: float | None = 100.0,
    margin: float = 1.0,
) -> pd.DataFrame:
    """Per receipt row, what happened in its window ``[receipt, end)`` (:func:`window_ends`) and its value per day.

    ``spend`` (transactions, each counted up to ``amount_cap``), ``transactions``, ``capped`` (transactions
    above the cap), ``reward_paid`` (rewards of completions of *this* receipt, i.e. of its offer and
    campaign, inside the window), ``viewed`` / ``completed`` (this receipt's offer), ``hours``, ``censored``
    and ``net_per_day = (margin x spend - reward_paid) / window days``.
    """
    n = len(rows)
    win = window_ends(rows, tables, window_hours)
    m = receipt_event_pairs(rows, person_events(tables))
    stop_h = win["hours"].to_numpy()[m["row"].to_numpy()]
    closed = win["closed"].to_numpy()[m["row"].to_numpy()]
    dt = m["dt_h"].to_numpy()
    m = m[(dt >= 0) & ((dt < stop_h) | (closed & (dt == stop_h)))]
    buy = m[(m["kind"] == "purchase").to_numpy()]
    amount = buy["amount"].fillna(0.0)
    capped = np.zeros(n)
    if amount_cap is not None:
        capped = per_row(None, buy["row"].to_numpy()[(amount > amount_cap).to_numpy()], n)
        amount = amount.clip(upper=amount_cap)
    b_row = buy["row"].to_numpy()
    own = m[(m["kind"] != "purchase").to_numpy()]
    o_row = own["row"].to_numpy()
    mine = (own["offer_id"].to_numpy() == rows["offer"].to_numpy()[o_row]) & (
        own["campaign_id"].to_numpy() == rows["campaign_id"].to_numpy()[o_row])
    own = own[mine]
    is_done = (own["kind"] == "offer_redeemed").to_numpy()
    done = own[is_done]
    paid = per_row(done["discount"], done["row"].to_numpy(), n)
    spend = per_row(amount, b_row, n)
    days = win["hours"].to_numpy() / 24.0
    with np.errstate(invalid="ignore", divide="ignore"):
        net = (margin * spend - paid) / days
    return pd.DataFrame({
        "spend": spend,
        "transactions": per_row(None, b_row, n),
        "capped": capped,
        "reward_paid": paid,
        "viewed": per_row(None, own["row"].to_numpy()[~is_done], n) > 0,
        "completed": per_row(None, done["row"].to_numpy(), n) > 0,
        "hours": win["hours"].to_numpy(),
        "censored": win["censored"].to_numpy(),
        "net_per_day": net,
    })
