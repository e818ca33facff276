"""The backtest: challenger and champion scored in this run on the same labelled customers.

Churn: both registered systems score the customers labelled at the latest fully labelled cutoff of the data
the job sees (the churn test cutoff: as-of minus the horizon), giving AUC, Brier and ECE on the same rows. A
metric recorded as a tag on another dataset never stands in for this measurement. The policy side is measured
by the policy training itself on held-out logged decisions (:mod:`training.retrain.decision`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from features.contract.schema import Tables
from training.retrain.decision import PolicyFigures


@dataclass(frozen=True)
class Backtest:
    """Challenger and champion measured in this run: churn metrics on the same labelled ``rows`` at ``cutoff``
    (``champion`` is ``None`` without one), and the policy figures of the same held-out decisions."""

    cutoff: pd.Timestamp
    rows: pd.DataFrame
    challenger: dict[str, float]
    champion: dict[str, float] | None
    policy: PolicyFigures

    def summary(self) -> dict:
        """What the report shows (the rows themselves stay out of it)."""
        return {"cutoff": str(self.cutoff), "customers": len(self.rows), "challenger": self.challenger,
                "champion": self.champion, "policy": asdict(self.policy)}


def labelled_rows(tables: Tables, churn_settings) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The customers labelled at the latest fully labelled cutoff, and that cutoff."""
    from training.churn.experiments import evaluation_labels

    return evaluation_labels(tables, churn_settings)


def churn_backtest(uri: str, tables: Tables, rows: pd.DataFrame, cutoff: pd.Timestamp) -> dict[str, float]:
    """AUC, Brier and ECE of the registered system at ``uri`` on ``rows`` (scored here, on this data)."""
    from training.churn.tracking import score_registered

    metrics = score_registered(uri, tables, rows, cutoff)
    return {k: float(metrics[k]) for k in ("auc", "brier", "ece")}


def system_scores(system, tables: Tables, as_of: pd.Timestamp) -> tuple[pd.DataFrame, pd.Series]:
    """The features of every customer at ``as_of`` through ``system``'s pipeline, and its churn probability."""
    F = system.features(tables, as_of)
    return F, system.churn_probability(F)
