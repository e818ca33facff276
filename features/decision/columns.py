"""The names of a decision's output columns, kept apart from the rule so that scoring code can name them
without importing the solver."""

from __future__ import annotations

# What :func:`features.decision.rule.decide` returns per customer, in its order.
DECISION_COLUMNS: tuple[str, ...] = (
    "nba_action",
    "nba_channel",
    "nba_offer",
    "nba_expected_incremental_value",
    "nba_propensity",
    "alternatives",
    "decision_reason",
    "no_contact_reason",
    "defense_target",
    "defense_reasons",
)
