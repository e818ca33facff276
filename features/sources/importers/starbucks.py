"""Starbucks rewards-app offers (Udacity capstone): offer receipts, views, completions and transactions.

Source: ``portfolio.jsonl.gz`` (the offer catalogue), ``profile.jsonl.gz`` (one record per member) and
``transcript.jsonl.gz`` (the event log: offer received / viewed / completed and transactions), JSON lines
of simulated data that mimic the rewards app over a 30-day test.

Mapping: members become customers (membership date = sign-up; gender, age, income as attributes; consent
to email and push, since every member received offers by email and mobile). Offers received become
outreach rows on channel ``email`` (every offer's channel set includes email; the full set, with mobile
meaning app push, is kept in column ``channels``), with offer names ``<type>_<reward>_<min spend>_<days>d``
and campaign ``wave_<hour>h``. Views are ``message_open``, completions ``offer_redeemed`` (discount =
reward), both on ``email`` and tied to the latest receipt of the same offer; transactions are ``purchase``
(channel ``store``) with ``amount`` and, as ``discount``, the rewards of offers completed by that
transaction.

Quirks: the transcript counts hours from the start of the test and has no calendar date: hours count from
``STARBUCKS_BASE``. Age 118 is the placeholder of an empty profile and becomes missing. Receipts and
views spell the offer key ``offer id``, completions ``offer_id``. One transaction can complete the same
offer received in two waves, which the transcript records as identical lines (tied one by one to the
receipts, see :func:`_campaigns`).

Propensity: in each wave part of the members received exactly one offer, the 10 offers in equal shares
and independent of gender, age and income (checked; shares in the manifest), so the probability of an
offer given a receipt is ``STARBUCKS_OFFER_SHARE``. With ``holdout=True`` the members who received no
offer in a wave are added as holdout rows (no contact, propensity ``1 - STARBUCKS_RECEIPT_RATE``) and
offer rows get the unconditional propensity, so ``no_contact`` can be evaluated too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract.errors import DataError
from features.contract.schema import OUTREACH_CHANNELS, Tables
from features.sources.importers.frames import (
    concat_touch,
    constant_category,
    customers_frame,
    finish_import,
    touch,
)
from features.sources.importers.source_files import dataset_folder, read_jsonl, require_columns

# The transcript has no calendar date. Every membership date lies before this base, so sign-up always
# precedes activity.
STARBUCKS_BASE = pd.Timestamp("2018-08-01T00:00:00Z")
# The 10 offers were assigned uniformly at random to whoever received one in a wave (see the manifest's
# check); a receipt in a wave happened with the rate below, independently of the customer's attributes.
STARBUCKS_OFFER_SHARE = 0.1
STARBUCKS_RECEIPT_RATE = 0.75
FILES = ("portfolio.jsonl.gz", "profile.jsonl.gz", "transcript.jsonl.gz")
EVENTS = {"offer received", "offer viewed", "offer completed", "transaction"}

# What the dataset really has and what it lacks (written into the manifest).
NOTES: dict[str, list[str]] = {
    "has": [
        "17,000 rewards-app members with gender, age, income and membership date",
        "offer receipts (outreach: 10 offers, bogo / discount / informational, full channel set)",
        "offer views (message_open) and completions (offer_redeemed with the reward as discount)",
        "transactions (purchase with amount; discount = rewards earned by that transaction)",
        "random offer assignment: propensity 0.1 per offer given a receipt",
    ],
    "lacks": [
        "calendar dates (hours since test start; base date in the manifest)",
        "which channel actually delivered an offer (email is in every offer's set: used as the channel)",
        "web/app browsing, service contacts, products bought, cancellations",
        "consent records (email and push assumed: every member received offers by email and mobile)",
    ],
}


@dataclass(frozen=True)
class StarbucksFiles:
    """The three published files as read, each checked to hold the columns the import needs."""

    folder: Path
    portfolio: pd.DataFrame
    profile: pd.DataFrame
    transcript: pd.DataFrame


@dataclass(frozen=True)
class Transcript:
    """The transcript checked against the catalogue, one entry per line, and its offer receipts."""

    event: np.ndarray  # the event name of each line
    lines: pd.DataFrame  # person, hour, ts, portfolio_id (the offer id; missing for transactions)
    receipts: pd.DataFrame  # the ``offer received`` lines, renumbered
    offers: pd.DataFrame  # the catalogue indexed by offer id, with ``name`` and ``channels`` as text

    def of(self, event: str) -> pd.DataFrame:
        """The lines of one event."""
        return self.lines[self.event == event]


def _offer_name(row: pd.Series) -> str:
    return f"{row['offer_type']}_{int(row['reward'])}_{int(row['difficulty'])}_{int(row['duration'])}d"


def _read_files(source: str | Path) -> StarbucksFiles:
    folder = dataset_folder(source, "starbucks", FILES)
    port = read_jsonl(folder / FILES[0])
    prof = read_jsonl(folder / FILES[1])
    tr = read_jsonl(folder / FILES[2])
    require_columns(port, FILES[0], ("id", "offer_type", "reward", "difficulty", "duration", "channels"))
    require_columns(prof, FILES[1], ("id", "gender", "age", "became_member_on", "income"))
    require_columns(tr, FILES[2], ("person", "event", "time"))
    return StarbucksFiles(folder, port, prof.reset_index(drop=True), tr)


def _members(profile: pd.DataFrame) -> pd.DataFrame:
    """Customers: membership date is the sign-up; age 118 marks an empty profile, not a real age."""
    signup = pd.to_datetime(profile["became_member_on"].astype("str"), format="%Y%m%d", errors="coerce",
                            utc=True)
    bad = signup.isna() & profile["became_member_on"].notna()
    if bad.any():
        raise DataError(FILES[1], "became_member_on", "a date that is not YYYYMMDD",
                        profile.loc[bad, "became_member_on"].head().tolist(), int(bad.sum()))
    age = profile["age"].astype("float64").where(profile["age"] != 118)
    attrs = pd.DataFrame({"gender": profile["gender"].astype("str"), "age": age,
                          "income": profile["income"].astype("float64")})
    return customers_frame(profile["id"], signup, ("email", "push"), attrs)


def _catalogue(portfolio: pd.DataFrame) -> pd.DataFrame:
    """The offer catalogue as published, with each offer's name and its channel set as text."""
    return portfolio.assign(name=portfolio.apply(_offer_name, axis=1),
                            channels=portfolio["channels"].map(lambda c: ",".join(c)))


def _transcript(tr: pd.DataFrame, offers: pd.DataFrame) -> Transcript:
    """The transcript's lines, checked to hold only known events and offers of the catalogue."""
    hours = tr["time"].to_numpy()
    ts = STARBUCKS_BASE + pd.to_timedelta(hours, unit="h")
    event = tr["event"].astype("str").to_numpy()
    # Receipts and views spell the key "offer id", completions "offer_id".
    offer_col = np.where(pd.notna(tr.get("value.offer id")), tr.get("value.offer id"),
                         tr.get("value.offer_id"))
    unknown = ~np.isin(event, list(EVENTS))
    if unknown.any():
        raise DataError(FILES[2], "event", "an unknown event", pd.unique(event[unknown])[:5].tolist(),
                        int(unknown.sum()), allowed=sorted(EVENTS))
    is_offer_event = event != "transaction"
    bad_offer = is_offer_event & ~pd.Series(offer_col).isin(offers.index).to_numpy()
    if bad_offer.any():
        raise DataError(FILES[2], "value", "an offer id missing from the portfolio",
                        pd.unique(offer_col[bad_offer])[:5].tolist(), int(bad_offer.sum()))
    lines = pd.DataFrame({"person": tr["person"].astype("str").array, "hour": hours, "ts": ts,
                          "portfolio_id": offer_col})
    receipts = lines[event == "offer received"].reset_index(drop=True)
    return Transcript(event, lines, receipts, offers)


def _offer_propensity(holdout: bool) -> float:
    """An offer's logging propensity: given a receipt, or (with holdout rows) unconditional."""
    return round(STARBUCKS_OFFER_SHARE * (STARBUCKS_RECEIPT_RATE if holdout else 1.0), 6)


def _offer_rows(log: Transcript, holdout: bool) -> pd.DataFrame:
    """Outreach: one row per receipt, with the offer's attributes."""
    rec = log.receipts
    o = log.offers.loc[rec["portfolio_id"]]
    return pd.DataFrame({
        "customer_id": rec["person"].array, "ts": rec["ts"].array,
        "channel": constant_category("email", OUTREACH_CHANNELS, len(rec)),
        "offer": o["name"].to_numpy(), "campaign_id": [f"wave_{h}h" for h in rec["hour"]],
        "propensity": _offer_propensity(holdout), "holdout": False,
        "channels": o["channels"].to_numpy(), "portfolio_id": rec["portfolio_id"].to_numpy(),
        "offer_type": o["offer_type"].to_numpy(), "reward": o["reward"].to_numpy(dtype="float64"),
        "difficulty": o["difficulty"].to_numpy(dtype="float64"),
        "duration_days": o["duration"].to_numpy(dtype="float64"),
    })


def _holdout_rows(receipts: pd.DataFrame, member_ids: pd.Series) -> pd.DataFrame:
    """A holdout row (no contact) for every member without a receipt in a wave."""
    waves = np.sort(receipts["hour"].unique())
    grid = pd.MultiIndex.from_product([waves, member_ids], names=["hour", "person"])
    got = pd.MultiIndex.from_arrays([receipts["hour"], receipts["person"]])
    none = grid[~grid.isin(got)].to_frame(index=False)
    return pd.DataFrame({
        "customer_id": none["person"].array,
        "ts": (STARBUCKS_BASE + pd.to_timedelta(none["hour"].to_numpy(), unit="h")),
        "channel": pd.Categorical.from_codes(np.full(len(none), -1, dtype=np.int8),
                                             categories=pd.Index(OUTREACH_CHANNELS, dtype="str")),
        "offer": "none",
        "campaign_id": [f"wave_{h}h" for h in none["hour"]],
        "propensity": 1.0 - STARBUCKS_RECEIPT_RATE, "holdout": True,
    })


def _campaigns(rows: pd.DataFrame, receipts: pd.DataFrame) -> np.ndarray:
    """The campaign (``wave_<hour>h``) of the receipt each reaction is tied to (``None`` when none is).

    A reaction is tied to the latest receipt of the same offer by the same member at or before it. One
    transaction can complete the same offer received in two waves, which the transcript records as
    identical lines: the k-th copy is tied to the k-th latest receipt, so these real double completions
    are not taken for duplicates.
    """
    sent = receipts[["person", "portfolio_id", "hour"]].rename(columns={"hour": "rec_hour"})
    left = rows[["person", "portfolio_id", "hour"]].reset_index(drop=True)
    left["row"] = np.arange(len(left))
    left["copy"] = left.groupby(["person", "portfolio_id", "hour"], sort=False).cumcount()
    m = left.merge(sent, on=["person", "portfolio_id"], how="inner")
    m = m[m["rec_hour"] <= m["hour"]].sort_values(["row", "rec_hour"], ascending=[True, False])
    m = m[m.groupby("row", sort=False).cumcount().to_numpy() == m["copy"].to_numpy()]
    camp = np.full(len(left), None, dtype=object)
    camp[m["row"].to_numpy()] = ("wave_" + m["rec_hour"].astype("str") + "h").to_numpy()
    return camp


def _reactions(tr: pd.DataFrame, log: Transcript) -> tuple[pd.DataFrame, int]:
    """Views, completions and transactions as touchpoints, and how many views/completions no receipt ties."""
    event = log.event
    view, done, buy = log.of("offer viewed"), log.of("offer completed"), log.of("transaction")
    reward = (tr["value.reward"].to_numpy(dtype="float64") if "value.reward" in tr.columns
              else np.full(len(tr), np.nan))
    done_reward = reward[event == "offer completed"]
    amount = tr["value.amount"].to_numpy(dtype="float64")[event == "transaction"]
    # Rewards earned by a transaction: completions share the transaction's member and hour.
    earned = pd.Series(done_reward, index=pd.MultiIndex.from_arrays([done["person"], done["hour"]])) \
        .groupby(level=[0, 1]).sum()
    disc = earned.reindex(pd.MultiIndex.from_arrays([buy["person"], buy["hour"]])).fillna(0.0).to_numpy()
    view_camp, done_camp = _campaigns(view, log.receipts), _campaigns(done, log.receipts)
    names = log.offers["name"]
    touchpoints = concat_touch([
        touch(view["person"], view["ts"], "email", "message_open",
              offer_id=names.loc[view["portfolio_id"]].to_numpy(), campaign_id=view_camp,
              portfolio_id=view["portfolio_id"].to_numpy()),
        touch(done["person"], done["ts"], "email", "offer_redeemed", discount=done_reward,
              offer_id=names.loc[done["portfolio_id"]].to_numpy(), campaign_id=done_camp,
              portfolio_id=done["portfolio_id"].to_numpy()),
        touch(buy["person"], buy["ts"], "store", "purchase", amount=amount, discount=disc),
    ])
    return touchpoints, int(pd.isna(view_camp).sum() + pd.isna(done_camp).sum())


def _manifest(files: StarbucksFiles, catalogue: pd.DataFrame, log: Transcript, n_members: int, holdout: bool,
              untied: int) -> dict:
    """The import's decisions and checks: time base, propensity, the random-assignment check, counts."""
    rec, event = log.receipts, log.event
    rec_share = rec.groupby("hour").size() / n_members
    shares = pd.crosstab(rec["hour"], rec["portfolio_id"], normalize="index")
    offer_prop = _offer_propensity(holdout)
    return {
        "time_base": f"transcript hour 0 = {STARBUCKS_BASE.isoformat()} (the data have no calendar dates)",
        "propensity": (f"{offer_prop} per offer: offers assigned uniformly at random among the 10 "
                       + ("(unconditional: receipt rate 0.75 x 0.1; holdout rows 0.25)" if holdout
                          else "given a receipt in the wave")),
        "check_random_assignment": {
            "receipt_share_per_wave": {str(k): round(float(v), 4) for k, v in rec_share.items()},
            "offer_share_min": round(float(shares.to_numpy().min()), 4),
            "offer_share_max": round(float(shares.to_numpy().max()), 4),
        },
        "source_rows": {"profile": len(files.profile), "transcript": len(files.transcript),
                        "portfolio": len(catalogue),
                        **{f"transcript_{e.replace(' ', '_')}": int((event == e).sum()) for e in sorted(EVENTS)}},
        "offers": {r["name"]: {"portfolio_id": r["id"], "channels": r["channels"]}
                   for _, r in catalogue.iterrows()},
        "consent": "email and push assumed for every member; sms and call unknown (False)",
        "last_receipt": (STARBUCKS_BASE + pd.Timedelta(hours=int(rec["hour"].max()))).isoformat(),
        "untied_reactions": untied,
    }


def import_starbucks(source: str | Path, *, holdout: bool = False) -> Tables:
    """Starbucks rewards-app offers: receipts → outreach, views/completions/transactions → touchpoints.

    With ``holdout=True`` the members without a receipt in a wave are added as holdout outreach rows and
    offer propensities become unconditional (see the module notes).
    """
    start = time.perf_counter()
    files = _read_files(source)
    customers = _members(files.profile)
    catalogue = _catalogue(files.portfolio)
    log = _transcript(files.transcript, catalogue.set_index("id"))
    outreach = _offer_rows(log, holdout)
    if holdout:
        outreach = pd.concat([outreach, _holdout_rows(log.receipts, customers["customer_id"])], ignore_index=True)
    touchpoints, untied = _reactions(files.transcript, log)
    manifest = _manifest(files, catalogue, log, len(customers), holdout, untied)
    tables = Tables(customers=customers, touchpoints=touchpoints, outreach=outreach)
    return finish_import("starbucks", files.folder, tables, manifest, NOTES, start)
