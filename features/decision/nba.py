"""The fitted next-best-action policy carried by a decision system (pickled inside it).

:class:`NextBestAction` turns a feature table into decisions: the effect model's expected outcomes with
and without each action (churn probabilities for retention; a visit or purchase probability or spend for a
campaign objective, :mod:`features.decision.objective`), the value model's value of keeping each customer,
and the decision rule (:mod:`features.decision.rule`) over them, with consent, caps and fatigue from the
tables when given or else from the features themselves. A policy that did not beat its baselines carries a
``fallback_action``: every eligible customer then gets that one action (the best baseline).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from features.contract.catalogue import Catalogue
from features.decision.config import PolicyConfig
from features.decision.eligibility import (
    consent_arrays,
    consent_arrays_from_features,
    contact_history,
    filled,
    history_arrays,
    history_arrays_from_features,
)
from features.decision.objective import Objective
from features.decision.rule import decide_columns, expected_incremental_value
from features.models.lgbm import PREDICT_ROWS, feature_matrix


class NextBestAction:
    """The fitted policy carried by a decision system: effect model, value model, catalogue and settings.

    ``uplift`` is a fitted :class:`features.models.uplift.UpliftModel` over ``catalogue.ids``, ``value_model`` a
    fitted :class:`features.models.value.ValueModel` (``None``: every customer is worth 1, for a campaign
    objective). The objective is ``config.objective``. ``fallback_action`` (an action id, or ``None``): decide
    that action for every eligible customer instead of the learned choice. Feature frames are indexed by
    ``customer_id``.
    """

    def __init__(
        self,
        uplift,
        value_model,
        catalogue: Catalogue,
        config: PolicyConfig,
        *,
        defense_min_value: float | None = None,
        fallback_action: str | None = None,
    ) -> None:
        if list(uplift.actions) != catalogue.ids:
            raise ValueError("NextBestAction: the effect model's actions differ from the catalogue's")
        self.uplift = uplift
        self.value_model = value_model
        self.catalogue = catalogue
        self.config = config
        # The "valuable" bar fixed at training time, so a customer's defense flag does not depend on which
        # other customers share the request (a quantile of the scored batch would).
        self.defense_min_value = defense_min_value
        if fallback_action is not None and fallback_action not in catalogue.ids:
            raise ValueError(f"NextBestAction: fallback action {fallback_action!r} is not in the catalogue")
        self.fallback_action = fallback_action

    @property
    def objective(self) -> Objective:
        """What the policy optimises (retention for policies pickled before objectives existed)."""
        return self.config.objective_spec if hasattr(self.config, "objective_spec") else Objective()

    def with_fallback(self, action: str | None) -> NextBestAction:
        """The same fitted policy deciding ``action`` for every eligible customer (``None``: the learned one)."""
        return NextBestAction(
            self.uplift,
            self.value_model,
            self.catalogue,
            self.config,
            defense_min_value=self.defense_min_value,
            fallback_action=action,
        )

    def expected_values(self, F: pd.DataFrame, *, value_margin: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Per customer: the expected outcome without contact ``p0`` (churn probability for retention), with
        each action ``p``, ``value`` and the EV matrix (expected incremental value in the objective's units).

        Large frames go in row chunks (every figure is per row): the float matrix is never made of all rows.
        ``value_margin``: the value model's wrapped customer-value prediction for ``F``, when the caller has it
        already (the decision system scores it as ``customer_value``): the value is then not predicted again.
        """
        margin = None if value_margin is None else np.asarray(value_margin, dtype=float)
        if len(F) > PREDICT_ROWS:
            parts = [
                self.expected_values(F.iloc[s : s + PREDICT_ROWS],
                                     value_margin=None if margin is None else margin[s : s + PREDICT_ROWS])
                for s in range(0, len(F), PREDICT_ROWS)
            ]
            return {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
        # One float matrix of the features serves both models (each conversion copies every column).
        names = list(self.uplift.feature_names_)
        matrix = feature_matrix(F, names) if len(F) else None
        p0, p = self.uplift.predict_outcome(F, matrix=matrix)
        if self.value_model is None:
            value = np.ones(len(F))
        elif margin is not None:
            value = self.value_model.from_margin(margin)
        else:
            same = list(getattr(self.value_model, "feature_names_", ())) == names
            value = self.value_model.predict(F, matrix=matrix if same else None)
        objective = self.objective
        if objective.name == "retention":
            ev = expected_incremental_value(p0, p, value, self.catalogue)
        else:
            costs = np.array([a.cost for a in self.catalogue.actions])
            ev = objective.incremental_value(p0, p, value, costs)
        return {"p0": p0, "p": p, "value": value, "ev": ev}

    def decide(self, F: pd.DataFrame, churn_probability=None, **options: Any) -> pd.DataFrame:
        """Decisions for the customers of ``F`` (indexed by ``customer_id``), one row each, same order.

        ``options`` are :meth:`decide_columns`'s keywords ``customers``, ``outreach``, ``cutoff``, ``config``
        and ``rng``. Consent comes from ``customers`` when given, else from the features ``chan_{c}_consent``.
        Caps and fatigue count ``outreach`` before ``cutoff`` when both are given, else the features'
        ``chan_{c}_contacts_30d``, ``contacts_30d`` and ``chan_{c}_days_since_contact`` (a 30-day window).
        ``churn_probability`` (e.g. the churn model's) drives the defense targets, defaulting to the effect
        model's own estimate for retention (a campaign objective's effect model estimates no churn: no defense
        targets without a churn model).
        """
        ids = pd.Index(F.index.astype(str), name="customer_id")
        return pd.DataFrame(self.decide_columns(F, churn_probability, ids=ids, **options), index=ids)

    def decide_columns(
        self,
        F: pd.DataFrame,
        churn_probability=None,
        *,
        customers: pd.DataFrame | None = None,
        outreach: pd.DataFrame | None = None,
        cutoff=None,
        config: PolicyConfig | None = None,
        rng: np.random.Generator | None = None,
        ids: pd.Index | None = None,
        value_margin: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """:meth:`decide` as a dict of :data:`~features.decision.columns.DECISION_COLUMNS` arrays in the row
        order of ``F`` (no frame: scoring a few customers pays for little but the models). ``ids``: ``F``'s
        index as strings, if known; ``value_margin`` as in :meth:`expected_values`.
        """
        cfg = config or self.config
        fixed = getattr(self, "defense_min_value", None)  # absent in systems pickled before it existed
        if cfg.defense.min_value is None and fixed is not None:
            cfg = replace(cfg, defense=replace(cfg.defense, min_value=fixed))
        if ids is None:
            ids = pd.Index(F.index.astype(str), name="customer_id")
        if customers is None:
            consent = consent_arrays_from_features(F, self.catalogue)
        else:
            aligned = (
                customers.assign(customer_id=customers["customer_id"].astype(str))
                .set_index("customer_id")
                .reindex(ids)
                .reset_index()
            )
            consent = consent_arrays(aligned, self.catalogue)
        if outreach is not None and cutoff is not None:
            hist = contact_history(outreach, ids, cutoff, cfg.caps.window_days)
            history = history_arrays(hist, ids, self.catalogue, cfg.caps)
        else:
            history = history_arrays_from_features(F)
        est = self.expected_values(F, value_margin=value_margin)
        churn = est["p0"] if churn_probability is None else np.asarray(churn_probability, dtype=float)
        if churn_probability is None and self.objective.campaign:
            churn = None
        fallback = getattr(self, "fallback_action", None)  # absent in systems pickled before it existed
        return decide_columns(
            est["ev"],
            consent,
            self.catalogue,
            cfg,
            history=history,
            churn_probability=churn,
            value=est["value"],
            active=active_customers(F, cfg),
            rng=rng,
            fixed_action=None if fallback is None else self.catalogue.ids.index(fallback),
        )


def active_customers(F: pd.DataFrame, config: PolicyConfig) -> np.ndarray | None:
    """Customers within the effect model's domain: active in the last ``max_days_inactive`` days.

    The effect model learns from customers active before each campaign; a long-lapsed customer is outside
    what it has seen (and most are already gone), so they are not contacted (reason ``inactive``).
    """
    if config.max_days_inactive is None or "days_since_last_active" not in F.columns:
        return None
    return filled(F["days_since_last_active"], np.inf) <= float(config.max_days_inactive)

