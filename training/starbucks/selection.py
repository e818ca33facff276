"""Splitting persons, and choosing a policy by cross-validation over person folds.

Rows of one person are not independent (the same member receives several offers), so every split keeps a
person's rows together and every standard error is clustered by person. Everything is chosen on train
persons; held-out persons only estimate values.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from training.starbucks.policies import candidate_policies


def split_persons(persons: np.ndarray, heldout_share: float, rng: np.random.Generator) -> np.ndarray:
    """Held-out person ids: the last ``heldout_share`` of a seeded permutation of the sorted unique ids."""
    ids = np.sort(pd.unique(np.asarray(persons, dtype=object)).astype(str))
    n_train = len(ids) - round(heldout_share * len(ids))
    return ids[rng.permutation(len(ids))[n_train:]]


def person_folds(persons: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """A fold number per row such that all rows of a person share a fold (balanced, seeded)."""
    ids, inverse = np.unique(np.asarray(persons).astype(str), return_inverse=True)
    fold = rng.permutation(len(ids)) % n_folds
    return fold[inverse]


def clustered_se(d: np.ndarray, persons: np.ndarray) -> float:
    """Standard error of ``mean(d)`` with rows of one person as a cluster (rows of a person are not independent)."""
    n = len(d)
    if n < 2:
        return float("nan")
    _, inv = np.unique(persons, return_inverse=True)
    s = np.bincount(inv, weights=d - d.mean())
    return float(np.sqrt((s**2).sum()) / n)


def select_policy(
    X: pd.DataFrame, G: np.ndarray, folds: np.ndarray, persons: np.ndarray, *, z: float = 1.0,
    candidates: dict[str, Callable[[], object]] | None = None,
) -> tuple[str, pd.DataFrame]:
    """The candidate with the highest cross-validated ``mean - z se`` of its DR gain over the best single offer.

    Each fold's rows are decided by the candidate fitted on the other folds and compared with the other
    folds' best single offer, both valued with the fold's own pseudo-outcomes; ``se`` is clustered by
    person. The best single offer scores 0 by definition, so a personalised candidate wins only when its
    lower bound is above zero. Returns ``(name, table)``.
    """
    candidates = candidates or candidate_policies()
    gains = {name: np.zeros(len(G)) for name in candidates}
    deviate = {name: 0 for name in candidates}
    for f in np.unique(folds):
        test = folds == f
        Gt = G[test]
        base = int(G[~test].mean(axis=0).argmax())
        for name, make in candidates.items():
            choice = make().fit(X[~test], G[~test]).predict(X[test])
            gains[name][test] = Gt[np.arange(len(Gt)), choice] - Gt[:, base]
            deviate[name] += int((choice != base).sum())
    recs = []
    for name, d in gains.items():
        se = clustered_se(d, persons)
        recs.append({"candidate": name, "cv_gain": float(d.mean()), "se": se,
                     "lower_bound": float(d.mean() - z * se) if name != "best_single_offer" else 0.0,
                     "deviation_share": deviate[name] / len(G)})
    table = pd.DataFrame.from_records(recs)
    k = int(table["lower_bound"].to_numpy().argmax())
    chosen = table["candidate"].iloc[k] if table["lower_bound"].iloc[k] > 0 else "best_single_offer"
    return str(chosen), table
