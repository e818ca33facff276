"""The effect a logged, randomised campaign shows for a group of customers: Hajek-weighted outcome of the
contact actions (averaged over actions) minus that of no contact, with a standard error."""

from __future__ import annotations

import numpy as np

from features.contract.catalogue import NO_CONTACT


def logged_effect(
    y: np.ndarray, p: np.ndarray, action: np.ndarray, group: np.ndarray, contacts: list[str]
) -> tuple[float, float]:
    """(mean effect of the ``contacts`` actions against no contact, its standard error) among ``group`` rows;
    ``y`` outcomes, ``p`` logged propensities, ``action`` logged action ids."""

    def hajek(a: str) -> float:
        r = group & (action == a)
        return float(np.sum(y[r] / p[r]) / np.sum(1 / p[r]))

    held = group & (action == NO_CONTACT)
    se = float(np.sqrt(y[group].var() * (1 / (group & ~held).sum() + 1 / held.sum())))
    return float(np.mean([hajek(a) for a in contacts])) - hajek(NO_CONTACT), se
