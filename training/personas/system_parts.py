"""The value model and personas that join the churn model and the policy in a registered decision system,
and the policy's figures by persona."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.contract.schema import Tables
from features.decision.config import PolicyConfig
from features.decision.nba import NextBestAction
from features.models.ltv import CustomerValueModel, PolicyValue
from features.models.personas import PersonaModel
from training.personas.commands import fit_personas
from training.personas.report import by_persona

log = logging.getLogger("engage.personas")


@dataclass
class SystemParts:
    """The optional parts of a decision system, and why one is missing."""

    value_model: CustomerValueModel | None = None
    personas: PersonaModel | None = None
    notes: dict[str, str] = field(default_factory=dict)


def system_parts(tables: Tables, cutoff: pd.Timestamp, F: pd.DataFrame, pipeline, policy: NextBestAction,
                 config: PolicyConfig, previous: PersonaModel | None, seed: int = 0) -> SystemParts:
    """The policy's own customer-value model (or one fitted for the scores), and personas fitted on ``F``
    (the features at ``cutoff``) with names kept from ``previous``. Data too thin for a part leaves it out."""
    from training.value.evaluate import ValueSettings, value_at

    parts = SystemParts()
    if isinstance(policy.value_model, PolicyValue):
        parts.value_model = policy.value_model.model
    else:
        try:
            parts.value_model = value_at(tables, cutoff, pipeline, ValueSettings(margin=config.value.margin, seed=seed))
        except ValueError as exc:
            parts.notes["value_model"] = str(exc)
    try:
        parts.personas = fit_personas(F, previous, seed)
    except ValueError as exc:
        parts.notes["personas"] = str(exc)
    for part, why in parts.notes.items():
        log.warning("decision system without %s: %s", part, why)
    return parts


def policy_by_persona(parts: SystemParts, policy: NextBestAction, tables: Tables, F: pd.DataFrame,
                      cutoff: pd.Timestamp, config: PolicyConfig) -> dict:
    """Churn, value, the policy's incremental value and actions per persona at ``cutoff`` (truth when simulated)."""
    if parts.personas is None:
        return {}
    data = tables.without_truth()
    ids = data.customers["customer_id"].astype(str)
    Fc = F.loc[ids]
    decisions = policy.decide(Fc, customers=data.customers, outreach=data.outreach, cutoff=cutoff, config=config)
    est = policy.expected_values(Fc)
    true_uplift = true_churn = None
    truth = tables.truth
    if truth is not None:
        t = truth.set_index(truth["customer_id"].astype(str)).reindex(ids)
        cols = [f"ev__{a}" for a in policy.catalogue.ids]
        if all(c in t for c in cols):
            k = pd.Index(policy.catalogue.ids).get_indexer(decisions["nba_action"].astype(str))
            true_uplift = t[cols].to_numpy(float)[np.arange(len(k)), k]
        if "churned" in t:
            true_churn = t["churned"].to_numpy(float)
    value = parts.value_model.predict(Fc) if parts.value_model is not None else None
    return by_persona(parts.personas.predict(Fc), churn=est["p0"], value=value, decisions=decisions,
                      true_uplift=true_uplift, true_churn=true_churn)
