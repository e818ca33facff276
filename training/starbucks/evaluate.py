"""Starbucks offers: which of the 10 portfolio offers to send to whom, learned and evaluated off-policy.

Rows: one per offer receipt (:mod:`training.starbucks.rows`), with the person's covariates from strictly
before the receipt (:mod:`training.starbucks.covariates`) and the net value per day of the window after it
(:mod:`training.starbucks.outcomes`). :data:`IDENTIFICATION` says what the log can and cannot tell.

Method (everything chosen on train persons; held-out persons only estimate values):

1. Outcome model ``q(x, offer)``: one LightGBM regressor on covariates + offer attributes (an S-learner),
   cross-fitted over person folds (:mod:`training.starbucks.outcome_model`); DR pseudo-outcomes ``G``
   (:func:`features.decision.ope.dr_pseudo_outcomes`).
2. Candidate policies, all anchored on the best single offer (highest mean ``G``): depth-1/2 policy trees
   on ``G`` (Athey & Wager's policy learning, exhaustive over quantile splits) and ridge-shrunk per-offer
   gain regressions that deviate only above a threshold (:mod:`training.starbucks.policies`).
3. Selection by cross-validation over person folds (:mod:`training.starbucks.selection`): the candidate
   with the highest lower bound ``mean - z x se`` of its DR gain over the fold's best single offer; when no
   bound is above zero the policy is the best single offer for everyone.
4. Held-out persons: IPS / SNIPS / DR values (``q`` refitted on all train persons) of the learned policy,
   uniform random assignment, every single offer and the plain LightGBM argmax; DR differences with row
   and person bootstrap intervals (:mod:`training.starbucks.differences`). With a cap on
   transaction amounts, the same policy is valued uncapped too, as a sensitivity check.

Every random draw (split, folds, model seed, bootstraps) comes from one generator, in a fixed order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract.schema import Tables
from features.decision.ope import dr_pseudo_outcomes, evaluate, policy_matrix
from training.starbucks.covariates import pre_receipt_covariates
from training.starbucks.differences import policy_difference
from training.starbucks.outcome_model import OutcomeModel, cross_fit_q
from training.starbucks.outcomes import validity_past_log_end, window_outcomes
from training.starbucks.policies import make_candidate
from training.starbucks.rows import CHANNEL_SET, offer_catalogue, receipt_rows
from training.starbucks.selection import person_folds, select_policy, split_persons

IDENTIFICATION = (
    "Identified: offer versus offer. Among members who received an offer in a wave, the 10 offers were "
    "assigned uniformly at random (each 9.6-10.4 % of a wave's receipts, independent of age, income, "
    "gender and time), so P(offer | receipt) = 0.1 is known and the value of any rule that picks one of the 10 "
    "offers for each receipt is identified (IPS / DR), as is every difference between such rules. "
    "Not identified: (1) offer versus no offer: nearly every member received offers and receivers have no "
    "untreated control; the importer's holdout option (members without a receipt in a wave) is not used, "
    "so no figure here says whether sending any offer beats sending none. (2) The channel apart from the "
    "offer: each offer comes with a fixed channel set (e.g. only some have social), so a channel's effect is "
    "confounded with the offers that carry it; the action is the offer with its channel set. (3) Effects "
    "after the window: spend and rewards of a 10-day offer after the next wave count in the next receipt's "
    "window (as noise there: assignments are independent across waves), not for the offer that caused "
    "them. (4) Sequential effects: a policy is valued receipt by receipt, with earlier offers as logged. "
    "(5) Long-run effects: the log covers 30 days."
)
MATCHES_BEST_SINGLE_RULE = (
    "matches_best_single: DR point estimate of learned - best single offer (held-out hindsight best) >= 0; "
    "not_worse_than_best_single: the upper ends of its 95 % intervals (row and person bootstrap) >= 0; "
    "beats_random: the lower ends of both 95 % intervals of learned - random above zero"
)


@dataclass(frozen=True)
class Settings:
    """The evaluation's options (see :func:`evaluate_starbucks`)."""

    window_hours: float | None
    amount_cap: float | None
    margin: float
    heldout_share: float
    n_folds: int
    z: float
    n_boot: int
    candidates: dict[str, Callable[[], object]] | None


@dataclass(frozen=True)
class Receipts:
    """The learning table without censored windows: logged rows, covariates, outcomes and the offers."""

    tables: Tables
    rows: pd.DataFrame
    X: pd.DataFrame
    Y: pd.DataFrame
    catalogue: pd.DataFrame
    n_censored: int

    @property
    def offers(self) -> list[str]:
        return [str(o) for o in self.catalogue.index]

    @property
    def persons(self) -> np.ndarray:
        return self.rows["customer_id"].to_numpy()

    @property
    def actions(self) -> np.ndarray:
        return self.rows["action"].to_numpy(int)

    @property
    def propensities(self) -> np.ndarray:
        return self.rows["propensity"].to_numpy(float)

    @property
    def reward(self) -> np.ndarray:
        return self.Y["net_per_day"].to_numpy(float)


@dataclass(frozen=True)
class Split:
    """Which rows belong to held-out persons, and the seed of every outcome model."""

    held: np.ndarray
    seed: int

    @property
    def train(self) -> np.ndarray:
        return ~self.held


@dataclass(frozen=True)
class Training:
    """What was learned on train persons: pseudo-outcomes, the cross-validation table and the fitted policy."""

    X: pd.DataFrame
    persons: np.ndarray
    G: np.ndarray
    chosen: str
    cv: pd.DataFrame
    policy: object

    @property
    def best_single(self) -> int:
        """The best single offer on train persons (every candidate's anchor)."""
        return int(self.policy.baseline_)


@dataclass(frozen=True)
class HeldOut:
    """Held-out persons: their logged rows, ``q`` fitted on train persons, pseudo-outcomes and the policies valued."""

    X: pd.DataFrame
    persons: np.ndarray
    actions: np.ndarray
    propensities: np.ndarray
    reward: np.ndarray
    q: np.ndarray
    G: np.ndarray
    learned: np.ndarray  # the learned policy's offer per row
    pis: dict[str, np.ndarray]  # policy matrices by name
    values: dict[str, dict]  # IPS / SNIPS / DR estimates by policy name
    best: int  # the best single offer on held-out persons, in hindsight


def load_starbucks(tables_or_folder: Tables | str | Path) -> Tables:
    """Tables as given, or read from a folder: the raw dataset (``transcript.jsonl.gz``) or an imported one."""
    if isinstance(tables_or_folder, Tables):
        return tables_or_folder
    folder = Path(tables_or_folder)
    if (folder / "transcript.jsonl.gz").exists() or folder.name.endswith(".jsonl.gz"):
        from features.sources.importers.starbucks import import_starbucks

        return import_starbucks(folder)
    from features.sources.io import read_tables

    return read_tables(folder)


def learning_table(tables: Tables, *, window_hours: float | None = None, amount_cap: float | None = 100.0,
                   margin: float = 1.0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(rows, X, outcomes, catalogue)`` of every receipt: logged rows, pre-receipt covariates, window outcomes."""
    catalogue = offer_catalogue(tables.outreach)
    rows = receipt_rows(tables)
    X = pre_receipt_covariates(rows, tables, catalogue)
    Y = window_outcomes(rows, tables, window_hours=window_hours, amount_cap=amount_cap, margin=margin)
    return rows, X, Y, catalogue


def _mix(choice: np.ndarray, catalogue: pd.DataFrame) -> tuple[dict, dict]:
    """The share of rows given each offer, and of rows whose offer goes out on each channel."""
    offers = catalogue.index.to_numpy()
    share = np.bincount(choice, minlength=len(offers)) / max(len(choice), 1)
    offer_mix = {str(o): float(s) for o, s in zip(offers, share, strict=True) if s > 0}
    channel_mix = {c: float((catalogue[f"via_{c}"].to_numpy()[choice] > 0).mean()) for c in CHANNEL_SET}
    return offer_mix, channel_mix


# ------------------------------------------------------------------------------------ evaluation steps
def _receipts(tables: Tables, s: Settings) -> Receipts:
    """The learning table of every receipt, without windows censored by the log's end."""
    rows, X, Y, catalogue = learning_table(tables, window_hours=s.window_hours, amount_cap=s.amount_cap,
                                           margin=s.margin)
    n_censored = int(Y["censored"].sum())
    keep = ~Y["censored"].to_numpy()
    rows, X, Y = (f[keep].reset_index(drop=True) for f in (rows, X, Y))
    return Receipts(tables, rows, X, Y, catalogue, n_censored)


def _split(data: Receipts, s: Settings, rng: np.random.Generator, say: Callable[[str], None]) -> Split:
    """Held-out persons, then the outcome models' seed (in this order: the draws follow one sequence)."""
    persons = data.persons
    held_ids = split_persons(persons, s.heldout_share, rng)
    held = pd.Series(persons).isin(set(held_ids)).to_numpy()
    say(f"starbucks: {len(data.rows):,} receipts of {len(pd.unique(persons)):,} persons; "
        f"train {int((~held).sum()):,} rows, held out {int(held.sum()):,}")
    return Split(held, int(rng.integers(0, 2**31 - 1)))


def _train(data: Receipts, split: Split, s: Settings, rng: np.random.Generator) -> Training:
    """Train persons: cross-fitted pseudo-outcomes, candidate selection, the final policy."""
    tr = split.train
    a, p, r = data.actions[tr], data.propensities[tr], data.reward[tr]
    Xt, persons = data.X[tr].reset_index(drop=True), data.persons[tr]
    folds = person_folds(persons, s.n_folds, rng)
    q_cf = cross_fit_q(Xt, a, r, folds, data.catalogue, split.seed)
    G = dr_pseudo_outcomes(a, p, r, q_cf)
    chosen, cv = select_policy(Xt, G, folds, persons, z=s.z, candidates=s.candidates)
    policy = make_candidate(chosen, s.candidates).fit(Xt, G)
    return Training(Xt, persons, G, chosen, cv, policy)


def _held_out(data: Receipts, split: Split, training: Training, s: Settings,
              rng: np.random.Generator) -> HeldOut:
    """Held-out persons: ``q`` from all train persons, then the value of every policy compared."""
    held, tr, K = split.held, split.train, len(data.catalogue)
    Xh = data.X[held].reset_index(drop=True)
    q_model = OutcomeModel(data.catalogue, random_state=split.seed).fit(
        training.X, data.actions[tr], data.reward[tr])
    qh = q_model.predict_all(Xh)
    ah, ph, rh = data.actions[held], data.propensities[held], data.reward[held]
    Gh = dr_pseudo_outcomes(ah, ph, rh, qh)
    learned = training.policy.predict(Xh)
    pis = {"learned": policy_matrix(learned, K), "random": np.full((len(ah), K), 1.0 / K),
           "plain_lightgbm_argmax": policy_matrix(qh.argmax(axis=1), K)}
    for k, o in enumerate(data.offers):
        pis[f"single:{o}"] = policy_matrix(np.full(len(ah), k), K)
    values = {}
    for name, pi in pis.items():
        est = evaluate(ah, ph, rh, pi, q=qh, rng=rng, n_boot=s.n_boot)
        values[name] = {k: v.as_dict() for k, v in est.items()}
    best = int(np.argmax([values[f"single:{o}"]["dr"]["value"] for o in data.offers]))
    return HeldOut(Xh, data.persons[held], ah, ph, rh, qh, Gh, learned, pis, values, best)


def _differences(data: Receipts, training: Training, h: HeldOut, s: Settings,
                 rng: np.random.Generator) -> dict[str, dict]:
    """DR differences of the learned policy (and the plain argmax) against random and the best single offers."""
    offers, pis = data.offers, h.pis
    best_held, best_train = pis[f"single:{offers[h.best]}"], pis[f"single:{offers[training.best_single]}"]
    return {
        "learned_minus_random": policy_difference(h.G, pis["learned"], pis["random"], h.persons, rng, s.n_boot),
        "learned_minus_best_single": policy_difference(h.G, pis["learned"], best_held, h.persons, rng, s.n_boot),
        "learned_minus_train_best_single": policy_difference(h.G, pis["learned"], best_train, h.persons, rng,
                                                       s.n_boot),
        "plain_lightgbm_argmax_minus_best_single": policy_difference(
            h.G, pis["plain_lightgbm_argmax"], best_held, h.persons, rng, s.n_boot),
    }


def _best_personalised(data: Receipts, training: Training, h: HeldOut, s: Settings,
                       rng: np.random.Generator) -> dict | None:
    """Diagnostic only (chooses nothing): the personalised candidate cross-validation ranked first, on held-out."""
    cv = training.cv
    personal = cv[cv["candidate"] != "best_single_offer"]
    if not len(personal):
        return None
    offers = data.offers
    runner = str(personal["candidate"].iloc[int(personal["lower_bound"].to_numpy().argmax())])
    run_policy = (training.policy if runner == training.chosen
                  else make_candidate(runner, s.candidates).fit(training.X, training.G))
    run_choice = run_policy.predict(h.X)
    run_pi = policy_matrix(run_choice, len(offers))
    return {
        "candidate": runner,
        "cv": personal[personal["candidate"] == runner].iloc[0].to_dict(),
        "rules": run_policy.rules(offers) if hasattr(run_policy, "rules") else None,
        "heldout_dr": float((run_pi * h.G).sum(axis=1).mean()),
        "heldout_deviation_share": float((run_choice != training.best_single).mean()),
        "minus_best_single": policy_difference(h.G, run_pi, h.pis[f"single:{offers[h.best]}"], h.persons, rng,
                                         s.n_boot),
    }


def _sensitivity_uncapped(data: Receipts, split: Split, training: Training, h: HeldOut, s: Settings,
                          rng: np.random.Generator) -> dict | None:
    """The same policy valued with uncapped transactions (``q`` refitted on uncapped train outcomes)."""
    if s.amount_cap is None:
        return None
    tr, offers, pis = split.train, data.offers, h.pis
    r_raw = window_outcomes(data.rows, data.tables, window_hours=s.window_hours, amount_cap=None,
                            margin=s.margin)["net_per_day"].to_numpy(float)
    q_raw = OutcomeModel(data.catalogue, random_state=split.seed).fit(
        training.X, data.actions[tr], r_raw[tr]).predict_all(h.X)
    G_raw = dr_pseudo_outcomes(h.actions, h.propensities, r_raw[split.held], q_raw)
    raw_single = G_raw.mean(axis=0)
    b_raw = int(raw_single.argmax())
    return {
        "what": "amount_cap=None: every transaction at full amount (same policy, q refitted on uncapped outcomes)",
        "dr_learned": float((pis["learned"] * G_raw).sum(axis=1).mean()),
        "dr_random": float(G_raw.mean()),
        "dr_single_offers": {o: float(v) for o, v in zip(offers, raw_single, strict=True)},
        "best_single_offer": offers[b_raw],
        "learned_minus_random": policy_difference(G_raw, pis["learned"], pis["random"], h.persons, rng, s.n_boot),
        "learned_minus_best_single": policy_difference(G_raw, pis["learned"], pis[f"single:{offers[b_raw]}"],
                                                 h.persons, rng, s.n_boot),
    }


def _outcome_section(data: Receipts, s: Settings) -> dict:
    """How the outcome is defined and what its windows look like."""
    Y = data.Y
    window_text = ("from the receipt to the next wave (the last wave: to the log's last event)"
                   if s.window_hours is None else f"the {s.window_hours:g} hours after the receipt")
    return {
        "definition": (f"net value per day of the window {window_text}: (margin x spend - rewards paid for "
                       f"completing this receipt's offer in the window) / window days; margin {s.margin:g}; "
                       + (f"each transaction counted up to {s.amount_cap:g}" if s.amount_cap is not None
                          else "transactions uncapped")),
        "window_hours": {str(int(h) if float(h).is_integer() else h): int(c)
                         for h, c in Y["hours"].value_counts().sort_index().items()},
        "censored_windows_dropped": data.n_censored,
        "validity_windows_past_log_end": validity_past_log_end(data.rows, data.tables, data.catalogue),
        "transactions_capped": int(Y["capped"].sum()),
        "mean_net_per_day": float(data.reward.mean()),
        "mean_reward_paid_per_day": float((Y["reward_paid"] / (Y["hours"] / 24.0)).mean()),
    }


def evaluate_starbucks(
    tables_or_folder: Tables | str | Path,
    *,
    rng: np.random.Generator,
    window_hours: float | None = None,
    amount_cap: float | None = 100.0,
    margin: float = 1.0,
    heldout_share: float = 0.5,
    n_folds: int = 5,
    z: float = 1.0,
    n_boot: int = 500,
    candidates: dict[str, Callable[[], object]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Learn an offer policy on train persons and estimate its value on held-out persons; returns the report.

    ``window_hours=None``: outcome windows run to the next wave (else fixed, censored windows dropped);
    ``amount_cap``: each transaction counts up to this much (``None``: uncapped; the report always adds the
    uncapped figures as a sensitivity check); ``margin``: the share of spend that is value; ``z``: the
    cross-validation guard (see :func:`~training.starbucks.selection.select_policy`). Randomness (split,
    folds, model seeds, bootstraps) comes only from ``rng``.
    """
    t0 = time.time()
    say = progress or (lambda _msg: None)
    s = Settings(window_hours, amount_cap, margin, heldout_share, n_folds, z, n_boot, candidates)
    data = _receipts(load_starbucks(tables_or_folder), s)
    split = _split(data, s, rng, say)
    training = _train(data, split, s, rng)
    say(f"starbucks: chose {training.chosen} by {n_folds}-fold cross-validation on train persons")
    h = _held_out(data, split, training, s, rng)
    diffs = _differences(data, training, h, s, rng)
    best_personalised = _best_personalised(data, training, h, s, rng)
    sensitivity = _sensitivity_uncapped(data, split, training, h, s, rng)
    offers, persons, tr, vs_best = data.offers, data.persons, split.train, diffs["learned_minus_best_single"]
    offer_mix, channel_mix = _mix(h.learned, data.catalogue)
    best_train = training.best_single
    return {
        "dataset": "starbucks",
        "n_rows": len(data.rows),
        "n_persons": len(pd.unique(persons)),
        "train": {"rows": int(tr.sum()), "persons": len(pd.unique(persons[tr]))},
        "heldout": {"rows": int(split.held.sum()), "persons": len(pd.unique(h.persons))},
        "outcome": _outcome_section(data, s),
        "identification": IDENTIFICATION,
        "method": ("DR pseudo-outcomes (cross-fitted LightGBM S-learner q over person folds); candidates "
                   "anchored on the best single offer (policy trees, ridge-shrunk gains with thresholds) chosen by "
                   f"{n_folds}-fold cross-validation on train persons: highest mean - {z:g} x se of the gain over "
                   "the best single offer, the best single offer when no bound is above zero"),
        "model_selection": {"chosen": training.chosen, "cv": training.cv.to_dict("records")},
        "policy": {"name": training.chosen, "train_best_single_offer": offers[best_train],
                   "rules": training.policy.rules(offers) if hasattr(training.policy, "rules") else None,
                   "deviation_share": float((h.learned != best_train).mean())},
        "best_personalised_candidate": best_personalised,
        "offer_mix": offer_mix,
        "channel_mix": channel_mix,
        "values": h.values,
        "best_single_offer": offers[h.best],
        "best_single_offer_note": "chosen in hindsight on held-out persons (the hardest bar; the train-chosen one "
                                  f"is {offers[best_train]})",
        "differences": diffs,
        "beats_random": diffs["learned_minus_random"]["above_zero"],
        "matches_best_single": bool(vs_best["value"] >= 0),
        "not_worse_than_best_single": bool(vs_best["high"] >= 0 and vs_best["person_bootstrap"]["high"] >= 0),
        "matches_best_single_rule": MATCHES_BEST_SINGLE_RULE,
        "sensitivity_uncapped": sensitivity,
        "seconds": time.time() - t0,
    }
