"""The policy's training rows: one per logged decision, with its features, action, propensity and outcome.

For every logged campaign date ``s`` (the day of a campaign's first send; every row of a campaign is decided
then) whose outcome window ``[s, s + horizon)`` ends by the evaluation cutoff: the features of each logged
customer at cutoff ``s`` (:func:`features.builders.pipeline.build_features` semantics: only events before
``s``), the logged action (a holdout row is ``no_contact``), its propensity, and the objective's outcome in
the window (:mod:`training.policy.outcomes`). Every logged decision left out is counted by reason.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract.catalogue import NO_CONTACT, Catalogue
from features.contract.schema import Tables
from features.decision.config import PolicyConfig
from features.sources.io import release_freed_memory
from training.policy.outcomes import NOT_IN_LATEST, WINDOW_INCOMPLETE, TouchArrays, outcomes_at, retention_labels
from training.policy.row_table import RowTable

log = logging.getLogger("engage.policy.rows")


def report_progress(progress: Callable[[str], None] | None, msg: str) -> None:
    """Pass ``msg`` to the caller's progress callback, if any."""
    if progress is not None:
        progress(msg)


def warn(msg: str, progress: Callable[[str], None] | None) -> None:
    """A warning for the user: through the progress callback when there is one, else the log."""
    if progress is not None:
        progress(f"warning: {msg}")
    else:
        logging.getLogger("engage.policy").warning(msg)


def logged_action_ids(outreach: pd.DataFrame) -> np.ndarray:
    """The action id ``channel:offer`` of every outreach row (holdout rows are ``no_contact``)."""
    hold = outreach["holdout"].fillna(False).to_numpy(bool) if "holdout" in outreach else np.zeros(len(outreach), bool)
    offer = outreach["offer"].astype(object).where(outreach["offer"].notna(), "none").astype(str)
    ids = (outreach["channel"].astype(str) + ":" + offer).to_numpy(dtype=object)
    ids[hold] = NO_CONTACT
    return ids


def logged_actions(outreach: pd.DataFrame, catalogue: Catalogue) -> np.ndarray:
    """The catalogue action id of every outreach row (holdout rows are ``no_contact``)."""
    ids = logged_action_ids(outreach)
    bad = pd.Index(catalogue.ids).get_indexer(ids) < 0
    if bad.any():
        ex = pd.unique(ids[bad])[:5].tolist()
        raise ValueError(
            f"outreach: {int(bad.sum())} rows have a channel/offer not in the action catalogue "
            f"(e.g. {ex}); give a catalogue that lists them (--catalogue FILE)"
        )
    return ids


def logged_propensities(outreach: pd.DataFrame, actions: np.ndarray) -> np.ndarray:
    """The logged propensity of every outreach row; where missing, its campaign's empirical action frequency."""
    prop = outreach["propensity"].to_numpy(float) if "propensity" in outreach else np.full(len(outreach), np.nan)
    if np.isnan(prop).any():
        # Imported logs may lack propensities: use each campaign's empirical action frequencies.
        n = len(outreach)
        camp = outreach["campaign_id"].astype(str).to_numpy() if "campaign_id" in outreach else np.zeros(n)
        freq = pd.Series(1.0, index=range(n)).groupby([camp, actions]).transform("sum")
        size = pd.Series(1.0, index=range(n)).groupby(camp).transform("sum")
        prop = np.where(np.isnan(prop), (freq / size).to_numpy(), prop)
    return prop


def decision_days(outreach: pd.DataFrame) -> pd.Series:
    """The decision day of every outreach row: its campaign's first send day (each row's own day when some
    rows lack a campaign id)."""
    day = outreach["ts"].dt.floor("D")
    if "campaign_id" in outreach and outreach["campaign_id"].notna().all():
        return day.groupby(outreach["campaign_id"].astype(str).to_numpy()).transform("min")
    return day


def campaign_cutoffs(
    outreach: pd.DataFrame, *, horizon_days: int, until: pd.Timestamp, max_campaigns: int | None = None
) -> list[pd.Timestamp]:
    """Campaign decision dates (day of first send) whose outcome window ends by ``until``; latest last."""
    days = sorted(pd.unique(decision_days(outreach)))
    days = [pd.Timestamp(d) for d in days if pd.Timestamp(d) + pd.Timedelta(days=horizon_days) <= until]
    return days[-max_campaigns:] if max_campaigns else days


def features_at(tables: Tables, cutoff: pd.Timestamp, pipeline) -> pd.DataFrame:
    """Every customer's features at ``cutoff``, indexed by customer id as text."""
    from features.builders.pipeline import build_features

    F = build_features(tables, cutoff, pipeline)
    F.index = F.index.astype(str)
    return F


@dataclass(frozen=True)
class LoggedDecisions:
    """The training rows: features ``X`` and ``rows`` (``customer_id, cutoff, action, propensity, outcome,
    label, spend_per_day``; ``label`` is the outcome, its historical name), and the decisions left out by
    reason."""

    X: pd.DataFrame
    rows: pd.DataFrame
    dropped: dict[str, int]

    @property
    def logged(self) -> int:
        """Logged decisions in the outreach log."""
        return len(self.rows) + sum(self.dropped.values())


def _outside_reasons(days: pd.Series, cutoffs: list[pd.Timestamp], horizon_days: int, until) -> Counter:
    """Why rows of decision days that are not training cutoffs were left out."""
    outside = ~days.isin(cutoffs)
    late = days[outside] + pd.Timedelta(days=horizon_days) > until
    return Counter({WINDOW_INCOMPLETE: int(late.sum()), NOT_IN_LATEST: int((~late).sum())})


def training_rows(
    tables: Tables,
    cutoffs: list[pd.Timestamp],
    catalogue: Catalogue,
    *,
    config: PolicyConfig,
    until: pd.Timestamp,
    pipeline=None,
    progress: Callable[[str], None] | None = None,
    order: Callable[[pd.DataFrame], np.ndarray] | None = None,
) -> LoggedDecisions:
    """Feature rows and outcomes of every logged decision at the given campaign cutoffs (see the module
    docstring); decisions without an outcome, or outside the cutoffs, are counted in ``dropped``.

    ``order`` (optional): given the rows (campaign by campaign, before any feature is built), the order to
    return them in, a permutation; the feature rows are written straight to their places (no reordering copy).
    The features ``X`` are one float64 block (integer features as exact floats: see ``RowTable.frame``).
    """
    if tables.outreach is None or len(tables.outreach) == 0:
        raise ValueError("outreach: the table is missing or empty; the policy learns from logged outreach")
    data = tables.without_truth()
    out = data.outreach
    actions = logged_actions(out, catalogue)
    prop = logged_propensities(out, actions)
    touch = TouchArrays.of(data)
    codes = touch.ids.get_indexer(out["customer_id"].astype(str))
    days = decision_days(out)
    dropped = _outside_reasons(days, cutoffs, config.horizon_days, until)
    labels = retention_labels(data, cutoffs, config) if config.objective == "retention" else None
    # First the outcomes (cheap): they say which rows each campaign keeps, so the feature rows of every
    # campaign go straight into one table of the final size, not into a list of frames concatenated at the end
    # (which held every row twice).
    kept: list[tuple[int, pd.Timestamp, np.ndarray, np.ndarray]] = []
    metas = []
    for s in cutoffs:
        sel = (days == s).to_numpy()
        if not sel.any():
            continue
        res = outcomes_at(touch, s, config, labels)
        code = codes[sel]
        keep = ~np.isnan(res.outcome[code])
        dropped.update(Counter(res.reason[code[~keep]].tolist()))
        code = code[keep]
        outcome = res.outcome[code]
        metas.append(
            pd.DataFrame(
                {
                    "customer_id": touch.ids[code],
                    "cutoff": s,
                    "action": actions[sel][keep],
                    "propensity": prop[sel][keep],
                    "outcome": outcome,
                    "label": outcome.astype(int) if config.objective_spec.binary else outcome,
                    "spend_per_day": res.spend_per_day[code],
                }
            )
        )
        kept.append((int(sel.sum()), s, code, keep))
    del labels
    if not metas or not sum(len(m) for m in metas):
        raise ValueError(
            f"outreach: no logged decision has an outcome at the campaign cutoffs {[str(c.date()) for c in cutoffs]} "
            f"(left out: {dict(dropped)})"
        )
    rows = pd.concat(metas, ignore_index=True)
    ids = touch.ids
    del metas, touch  # the touchpoint arrays: only the customer ids are needed from here on
    release_freed_memory()
    perm = None if order is None else np.asarray(order(rows), dtype=np.intp)
    table = RowTable(len(rows), perm)
    for i, (n_logged, s, code, keep) in enumerate(kept, 1):
        t0 = time.time()
        F = features_at(data, s, pipeline)
        table.append(F, F.index.get_indexer(ids[code]))
        del F
        # A campaign's features are thousands of arrays below glibc's mmap threshold: freed into its heap, they
        # stay resident unless trimmed (at 100,000 customers, about 1 GB beside the training rows).
        release_freed_memory()
        report_progress(
            progress, f"  campaign {s.date()}: {int(keep.sum()):,} of {n_logged:,} logged decisions kept "
            f"({time.time() - t0:.1f}s)"
        )  # fmt: skip
        # a bar with an ETA on a terminal (the line above says the same in words)
        log.debug("campaign %s", s.date(), extra={"step": ("policy training rows, campaign by campaign", i,
                                                              len(cutoffs))})
    dropped = {k: v for k, v in sorted(dropped.items()) if v}
    if perm is not None:
        rows = rows.iloc[perm].reset_index(drop=True)
    return LoggedDecisions(table.frame(as_float=True), rows, dropped)


def split_customers(customer_ids: pd.Series, share: float, rng: np.random.Generator) -> np.ndarray:
    """Held-out customer ids (a random ``share`` of all customers)."""
    ids = np.asarray(pd.unique(customer_ids.astype(str)))
    return ids[rng.random(len(ids)) < share]
