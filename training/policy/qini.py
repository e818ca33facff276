"""The learned ranking's Qini curve, AUUC and Qini coefficient on held-out logged decisions.

The held-out log is a randomised experiment: each logged row's action was drawn with a known propensity.
Rows are ranked by the policy's best estimated incremental value of a contact; a row counts as treated when
it was contacted (any action but no contact), its outcome is retention (1 - churned; a campaign objective's
own outcome, e.g. visited, :mod:`features.decision.objective`), and each row weighs
1 / propensity so that treated and control rows each stand for the whole population
(:func:`features.decision.ope.qini_curve`). Both areas are per logged decision (incremental retained customers):
``auuc`` is the area under the Qini curve over the share treated, ``qini_coefficient`` the area between it
and the random-targeting line (positive: the ranking beats random).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract.catalogue import NO_CONTACT
from features.decision.nba import NextBestAction
from features.decision.ope import qini_coefficient, qini_curve


def qini_summary(model: NextBestAction, X: pd.DataFrame, rows: pd.DataFrame, n_points: int = 41) -> dict:
    """Qini curve (share treated, incremental retained per decision, random line), AUUC and Qini coefficient."""
    n = len(rows)
    if n == 0:
        return {"fraction": [], "qini": [], "random": [], "auuc": float("nan"), "qini_coefficient": float("nan"),
                "rows": 0}
    ev = np.array(model.expected_values(X)["ev"], dtype=float, copy=True)
    ev[:, 0] = -np.inf  # column 0 is no contact: rank by the best contact
    treated = rows["action"].astype(str).to_numpy() != NO_CONTACT
    outcome = (rows["outcome"] if "outcome" in rows else rows["label"]).to_numpy(float)
    retained = outcome if model.objective.campaign else 1.0 - outcome  # the desirable outcome
    curve = qini_curve(ev.max(axis=1), treated, retained, 1.0 / rows["propensity"].to_numpy(float), n_points)
    per = curve.assign(qini=curve["qini"] / n)
    x = np.concatenate([[0.0], per["fraction"].to_numpy()])
    y = np.concatenate([[0.0], per["qini"].to_numpy()])
    return {
        "fraction": per["fraction"].tolist(),
        "qini": per["qini"].tolist(),
        "random": (per["fraction"] * y[-1]).tolist(),
        "auuc": float(np.trapezoid(y, x)),
        "qini_coefficient": qini_coefficient(per),
        "rows": n,
    }
