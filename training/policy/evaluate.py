"""The learned policy at the evaluation cutoff: decisions for every customer under a scenario's limits.

Reports what was decided (contacts, costs, actions, why not contacted, defense targets, use of each
limit) and an independent count of constraint violations; on simulated data also the comparison with the
truth (:mod:`training.policy.truth`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract.schema import Tables
from features.decision.assignment import limit_matrix
from features.decision.config import PolicyConfig
from features.decision.eligibility import contact_history, eligibility
from features.decision.nba import NextBestAction
from training.policy.baselines import choice_index, constraint_violations
from training.policy.rows import features_at
from training.policy.truth import Decided, truth_comparison


def defense_examples(decisions: pd.DataFrame, customer_ids: bool = False, n: int = 3) -> list[dict]:
    """The first ``n`` defense targets' reasons (which carry their value and churn probability); their customer
    ids only when asked, so that reports, and the registry that keeps them, hold no customer data by default."""
    examples = decisions.loc[decisions["defense_target"], ["defense_reasons"]].head(n)
    return (examples.reset_index() if customer_ids else examples).to_dict("records")


@dataclass(frozen=True)
class CutoffDecisions:
    """The policy's decisions at a cutoff, what judging them needs, and the inputs of the decisions report."""

    decisions: pd.DataFrame
    decided: Decided
    F: pd.DataFrame
    history: pd.DataFrame
    limit_names: list[str]
    decide_seconds: float


def decisions_report(
    d: CutoffDecisions, model: NextBestAction, config: PolicyConfig, cutoff: pd.Timestamp, *, customer_ids: bool = False
) -> dict:
    """What was decided: volumes, costs, reasons, defense targets, limits used, constraint violations."""
    cat, decisions, decided, names = model.catalogue, d.decisions, d.decided, d.limit_names
    choice, A, b = decided.choice, decided.A, decided.b
    contacted = choice != 0
    used = A @ np.bincount(choice, minlength=len(cat.ids))
    return {
        "cutoff": str(cutoff),
        "customers": len(decided.customers),
        "decide_seconds": d.decide_seconds,
        "contacts": int(contacted.sum()),
        "contact_cost": float(A[names.index("budget")] @ np.bincount(choice, minlength=len(cat.ids)))
        if "budget" in names
        else float(sum(cat.actions[k].cost for k in choice)),
        "actions": decisions["nba_action"].value_counts().to_dict(),
        "no_contact_reasons": decisions["no_contact_reason"].value_counts().to_dict(),
        "defense_targets": int(decisions["defense_target"].sum()),
        "defense_examples": defense_examples(decisions, customer_ids),
        "high_engagement_potential": int(d.F["high_engagement_potential"].sum())
        if "high_engagement_potential" in d.F
        else None,
        "estimated_incremental_value": float(decisions["nba_expected_incremental_value"].sum()),
        "constraint_violations": constraint_violations(choice, decided.customers, d.history, cat, config),
        "limits": {nm: {"used": float(u), "cap": float(c)} for nm, u, c in zip(names, used, b, strict=True)},
        "defense_coverage": float(contacted[decisions["defense_target"].to_numpy()].mean())
        if decisions["defense_target"].any()
        else None,
    }


def decide_at_cutoff(
    model: NextBestAction, tables: Tables, cutoff: pd.Timestamp, config: PolicyConfig, *, pipeline=None,
    churn_probability: np.ndarray | None = None,
) -> CutoffDecisions:
    """Decide for every customer at ``cutoff`` under ``config`` (truth never read)."""
    data = tables.without_truth()
    customers = data.customers
    F = features_at(data, cutoff, pipeline)
    Fc = F.loc[customers["customer_id"].astype(str)]
    cat = model.catalogue
    t0 = time.time()
    decisions = model.decide(
        Fc, churn_probability, customers=customers, outreach=data.outreach, cutoff=cutoff, config=config
    )
    decide_s = time.time() - t0
    hist = contact_history(data.outreach, customers["customer_id"], cutoff, config.caps.window_days)
    eligible, _, _ = eligibility(customers, hist, cat, config.caps)
    A, b, names = limit_matrix(cat, config.limits)
    est = model.expected_values(Fc)
    decided = Decided(
        customers=customers,
        F=Fc,
        eligible=eligible,
        choice=choice_index(decisions, cat),
        A=A,
        b=b,
        est=est,
        churn=est["p0"] if churn_probability is None else churn_probability,
    )
    return CutoffDecisions(decisions, decided, F, hist, names, decide_s)


def evaluate_at_cutoff(
    model: NextBestAction,
    tables: Tables,
    cutoff: pd.Timestamp,
    config: PolicyConfig,
    *,
    pipeline=None,
    churn_probability: np.ndarray | None = None,
    rng: np.random.Generator,
    n_boot: int = 300,
    customer_ids: bool = False,
) -> dict:
    """Decide for every customer at ``cutoff`` under ``config``; with truth, vs oracle and baselines.

    ``customer_ids``: name the customers of the defense examples (off by default: a report is shared)."""
    d = decide_at_cutoff(model, tables, cutoff, config, pipeline=pipeline, churn_probability=churn_probability)
    rep = decisions_report(d, model, config, cutoff, customer_ids=customer_ids)
    if tables.truth is not None:
        rep["truth"] = truth_comparison(d.decided, tables.truth, model.catalogue, rng, n_boot)
    return rep
