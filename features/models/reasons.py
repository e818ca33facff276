"""Reason codes: the features that push a customer's churn score up, each stated with the customer's own value.

Contributions are the model's per-feature log-odds contributions (SHAP values for LightGBM), largest first,
positive ones only. A behavioural feature is one reason: the feature, its readable label, the customer's
value and the contribution. A customer attribute is one reason however many columns encode it: its one-hot
columns (or a numeric attribute's value and missing flag) are summed, which the contributions' additivity
allows, and the label states the customer's own value, ``PaymentMethod = Electronic check``. A reason about
a one-hot *column* would describe the column instead: a customer on an international plan got "attribute
international_plan is 'no'" because the 0 of that column pushed the score.

:class:`ReasonLayout` is fitted with the churn model and pickled inside it; :func:`top_contributions` is the
ranking both it and models fitted before it use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

# Category names the attribute encoder gives to missing and rare values (features.builders.static).
MISSING_CATEGORY = "missing"
RARE_CATEGORY = "rare"


def top_contributions(U: np.ndarray, top: int) -> tuple[list[list[int]], list[list[float]]]:
    """Per row of ``U`` (rows × units), the ``top`` largest units and their values, largest first
    (ties: lower unit first). Values may be ≤ 0: callers stop at the first one that is."""
    k = min(top, U.shape[1])
    # Only the k largest per row are needed: partition, then order those k.
    if k < U.shape[1]:
        cand = np.argpartition(-U, k - 1, axis=1)[:, :k]
    else:
        cand = np.broadcast_to(np.arange(U.shape[1]), U.shape)
    vals = np.take_along_axis(U, cand, axis=1)
    order = np.lexsort((cand, -vals), axis=1)
    cand = np.take_along_axis(cand, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    return cand.tolist(), vals.tolist()


def _number(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


class ReasonLayout:
    """How a model's feature columns become reasons.

    Parameters
    ----------
    names : the model's feature columns, in its column order.
    labels : readable label per column.
    origins : columns made from a customer attribute -> ``(attribute, role, detail)`` as
        :meth:`features.builders.static.StaticAttributesBuilder.origins` gives them; other columns are
        behavioural features.
    """

    def __init__(
        self, names: Sequence[str], labels: Mapping[str, str], origins: Mapping[str, tuple[str, str, object]]
    ):
        self.names = [str(n) for n in names]
        self.labels = {n: str(labels.get(n) or n.replace("_", " ")) for n in self.names}
        self.units: list[tuple[int, ...]] = []  # column positions of each reason, in order of first column
        self.attributes: list[str | None] = []
        self.roles: list[tuple[tuple[str, object], ...]] = []  # (role, detail) per column of an attribute unit
        unit_of: dict[str, int] = {}
        for j, name in enumerate(self.names):
            origin = origins.get(name)
            if origin is None:
                self.units.append((j,))
                self.attributes.append(None)
                self.roles.append(())
                continue
            attribute, role, detail = origin
            u = unit_of.setdefault(str(attribute), len(self.units))
            if u == len(self.units):
                self.units.append(())
                self.attributes.append(str(attribute))
                self.roles.append(())
            self.units[u] += (j,)
            self.roles[u] += ((str(role), detail),)

    def unit_contributions(self, contrib: np.ndarray) -> np.ndarray:
        """Per row, the contribution of every reason unit (an attribute's columns summed)."""
        U = contrib[:, [cols[0] for cols in self.units]]
        for u, cols in enumerate(self.units):
            if len(cols) > 1:
                U[:, u] += contrib[:, list(cols[1:])].sum(axis=1)
        return U

    def codes(self, X: np.ndarray, contrib: np.ndarray, top: int) -> list[list[dict]]:
        """Reason codes of the rows of ``X`` (the model's feature matrix) from their ``contrib`` (rows × columns)."""
        if top <= 0 or not len(X) or not self.units:
            return [[] for _ in range(len(X))]
        cand, vals = top_contributions(self.unit_contributions(contrib), top)
        out = []
        for i, (us, vs) in enumerate(zip(cand, vals, strict=True)):
            row = []
            for u, v in zip(us, vs, strict=True):
                if v <= 0:
                    break
                feature, label, value, attribute = self._describe(X[i], u)
                row.append(
                    {"feature": feature, "label": label, "contribution": v, "value": value, "attribute": attribute}
                )
            out.append(row)
        return out

    def _describe(self, x: np.ndarray, u: int) -> tuple[str, str, object, str | None]:
        """``feature, label, value, attribute`` of reason unit ``u`` for the customer whose features are ``x``."""
        attribute = self.attributes[u]
        if attribute is None:
            j = self.units[u][0]
            return self.names[j], self.labels[self.names[j]], _number(x[j]), None
        feature, value, label = self._attribute_value(x, u)
        return feature, f"{attribute}{label}", value, attribute

    def _attribute_value(self, x: np.ndarray, u: int) -> tuple[str, object, str]:
        """The column that carries the customer's value, the value, and the label's text after the attribute."""
        cols, roles = self.units[u], self.roles[u]
        missing = any(role == "missing" and x[j] == 1 for j, (role, _) in zip(cols, roles, strict=True))
        for j, (role, detail) in zip(cols, roles, strict=True):
            if role == "category" and x[j] == 1:
                if detail == MISSING_CATEGORY:
                    return self.names[j], None, " is missing"
                if detail == RARE_CATEGORY:
                    return self.names[j], None, ": a rare value"
                return self.names[j], str(detail), f" = {detail}"
            if role == "value":
                if missing or math.isnan(x[j]):
                    return self.names[j], None, " is missing"
                return (self.names[j], *_attribute_number(float(x[j]), str(detail)))
        if missing:
            return self.names[cols[0]], None, " is missing"
        if any(role == "missing" for role, _ in roles):  # only the missing flag is left in the model
            return self.names[cols[0]], None, " is not missing"
        return self.names[cols[0]], None, ": another value"


def _attribute_number(v: float, kind: str) -> tuple[object, str]:
    """A numeric, boolean or date attribute's value and label text."""
    if kind == "bool":
        return bool(v), f" = {'true' if v else 'false'}"
    if kind == "datetime":
        return v, f" = {v:.6g} days before the cutoff"
    return v, f" = {v:.6g}"
