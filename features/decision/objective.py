"""What the next-best-action policy optimises: the objective, its outcome, and the value of an action under it.

* ``retention`` (the default): the outcome is churn in the horizon (no own activity, or a cancel; see
  :mod:`features.labels`); an action is worth ``value x (P(churn | no contact) - P(churn | action)) - cost``,
  where ``value`` is what keeping the customer is worth.
* ``visit``: the outcome is a visit in the horizon (an inbound touch of a :data:`VISIT_KINDS` kind); an action
  is worth its rise in the visit probability. Costs are in currency and a probability is not, so they do not
  enter; they still count against a budget limit.
* ``conversion``: a purchase in the horizon; worth the rise in the purchase probability.
* ``spend``: the net amount of purchases and returns in the horizon; worth the rise in expected spend.
* ``margin``: spend in the horizon; worth ``margin x (rise in expected spend) - cost``.

The outcome window starts at the campaign's decision day and lasts ``horizon_days``. The campaign objectives
(all but retention) need no churn model. Pickled inside a registered decision system with its policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OBJECTIVES: tuple[str, ...] = ("retention", "visit", "conversion", "spend", "margin")
CAMPAIGN_OBJECTIVES: tuple[str, ...] = ("visit", "conversion", "spend", "margin")
# Touchpoint kinds that make a visit (a purchase implies one), counted only when inbound.
VISIT_KINDS: tuple[str, ...] = ("visit", "page_view", "search", "filter", "product_view", "add_to_cart", "purchase")
CONVERSION_KINDS: tuple[str, ...] = ("purchase",)
# Spend is the net money amount: purchases, less refunds (``return`` rows carry negative amounts).
SPEND_KINDS: tuple[str, ...] = ("purchase", "return")
# The outcome window's default length per objective: a churn horizon, or a campaign's response window.
DEFAULT_HORIZON_DAYS: dict[str, int] = {"retention": 90, "visit": 14, "conversion": 14, "spend": 14, "margin": 14}


def check_objective(name: str) -> str:
    """``name`` if it is a known objective, else a clear error."""
    if name not in OBJECTIVES:
        raise ValueError(f"policy config: objective {name!r} is unknown; known: {', '.join(OBJECTIVES)}")
    return name


@dataclass(frozen=True)
class Objective:
    """An objective (one of :data:`OBJECTIVES`) and the margin the ``margin`` objective applies to spend."""

    name: str = "retention"
    margin: float = 0.35

    @property
    def campaign(self) -> bool:
        """A campaign objective: every logged customer gets an outcome, and no churn model is needed."""
        return self.name != "retention"

    @property
    def binary(self) -> bool:
        """Whether the outcome is an event (churn, visit, purchase) rather than an amount."""
        return self.name in ("retention", "visit", "conversion")

    @property
    def outcome_name(self) -> str:
        """What the outcome of a logged decision is, in words (for reports)."""
        return {
            "retention": "churned in the horizon (1 = churned)",
            "visit": "visited in the horizon (1 = visited)",
            "conversion": "purchased in the horizon (1 = purchased)",
            "spend": "net spend in the horizon",
            "margin": "net spend in the horizon (the reward is margin x spend - contact cost)",
        }[self.name]

    def incremental_value(self, mu0: np.ndarray, mu: np.ndarray, value: np.ndarray, costs: np.ndarray) -> np.ndarray:
        """``(n, K)`` expected incremental value of each action over no contact (column 0 is 0).

        ``mu0`` is the expected outcome without contact ``(n,)``, ``mu`` with each action ``(n, K)``, ``value``
        what keeping each customer is worth (retention only) and ``costs`` the cost of each action.
        """
        ev = self.reward_matrix(mu, value, costs) - self.reward_matrix(mu0[:, None], value, np.zeros(1))
        ev[:, 0] = 0.0
        return ev

    def reward_matrix(self, mu: np.ndarray, value: np.ndarray, costs: np.ndarray) -> np.ndarray:
        """The expected reward of each action given the expected outcomes ``mu`` ``(n, K)``."""
        costs = np.asarray(costs, dtype=float)[None, :]
        if self.name == "retention":
            return -value[:, None] * mu - costs
        if self.name == "margin":
            return self.margin * mu - costs
        return mu + 0.0 * costs

    def reward(self, outcome: np.ndarray, value: np.ndarray, cost: np.ndarray) -> np.ndarray:
        """The realised reward of logged decisions: outcome, value and the logged action's cost per row."""
        outcome = np.asarray(outcome, dtype=float)
        if self.name == "retention":
            return -value * outcome - cost
        if self.name == "margin":
            return self.margin * outcome - cost
        return outcome
