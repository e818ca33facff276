"""Off-policy evaluation: what a policy would be worth, estimated from a logged, randomised outreach history.

A logged row ``i`` has the action the logging policy took (``a_i``, an index into the catalogue), the
probability it had of taking it (``p_i``), and the reward that followed (``r_i``). A target policy gives a
probability for each action per row, ``pi[i, a]`` (one-hot for a deterministic policy). Estimators of the
mean reward under ``pi``:

* IPS: ``mean(w_i r_i)`` with ``w_i = pi[i, a_i] / p_i`` (unbiased when propensities are right);
* SNIPS: ``sum(w r) / sum(w)`` (self-normalised: a little bias, much less variance);
* DR: ``mean(sum_a pi[i, a] q[i, a] + w_i (r_i - q[i, a_i]))`` with an outcome model ``q`` (unbiased if either
  the propensities or the outcome model are right).

Intervals are percentile bootstrap intervals over logged rows (rows resampled with replacement).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap 95 % interval."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high}

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high


def _check(actions: np.ndarray, propensity: np.ndarray, reward: np.ndarray, pi: np.ndarray) -> None:
    n = len(actions)
    if not (len(propensity) == len(reward) == pi.shape[0] == n):
        raise ValueError(
            f"ope: lengths differ: actions {n}, propensity {len(propensity)}, reward {len(reward)}, "
            f"policy {pi.shape[0]}"
        )
    bad = ~np.isfinite(propensity) | (propensity <= 0) | (propensity > 1)
    if bad.any():
        raise ValueError(
            f"ope: {int(bad.sum())} logged propensities outside (0, 1] or missing (e.g. {propensity[bad][:3].tolist()})"
        )
    if n and (actions.min() < 0 or actions.max() >= pi.shape[1]):
        raise ValueError(f"ope: logged action index outside 0..{pi.shape[1] - 1}")


def policy_matrix(choice: np.ndarray, n_actions: int) -> np.ndarray:
    """One-hot ``(n, K)`` matrix of a deterministic policy's action indices."""
    pi = np.zeros((len(choice), n_actions))
    pi[np.arange(len(choice)), choice] = 1.0
    return pi


def dr_pseudo_outcomes(actions: np.ndarray, propensity: np.ndarray, reward: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-row, per-action doubly robust scores ``G[i, a] = q[i, a] + 1[a_i = a] (r_i - q[i, a]) / p_i``.

    The DR value of any policy is ``mean(sum_a pi[i, a] G[i, a])``; differences between actions of ``G`` are
    DR estimates of per-row effects.
    """
    n = len(actions)
    G = q.astype(float).copy()
    rows = np.arange(n)
    G[rows, actions] += (reward - q[rows, actions]) / propensity
    return G


def _row_terms(actions, propensity, reward, pi, q):
    rows = np.arange(len(actions))
    w = pi[rows, actions] / propensity
    ips = w * reward
    dr = None if q is None else (pi * dr_pseudo_outcomes(actions, propensity, reward, q)).sum(axis=1)
    return w, ips, dr


def _bootstrap_index(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, n, size=(n_boot, n))


def _interval(samples: np.ndarray) -> tuple[float, float]:
    lo, hi = np.nanquantile(samples, [0.025, 0.975])
    return float(lo), float(hi)


def evaluate(
    actions: np.ndarray,
    propensity: np.ndarray,
    reward: np.ndarray,
    pi: np.ndarray,
    *,
    q: np.ndarray | None = None,
    rng: np.random.Generator,
    n_boot: int = 500,
) -> dict[str, Estimate]:
    """IPS, SNIPS and (with an outcome model ``q``) DR estimates of the mean reward under ``pi``."""
    actions = np.asarray(actions, dtype=int)
    propensity = np.asarray(propensity, dtype=float)
    reward = np.asarray(reward, dtype=float)
    _check(actions, propensity, reward, pi)
    n = len(actions)
    w, ips, dr = _row_terms(actions, propensity, reward, pi, q)
    idx = _bootstrap_index(n, n_boot, rng)
    out = {}
    out["ips"] = Estimate(float(ips.mean()), *_interval(ips[idx].mean(axis=1)))
    sw = w[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        snips_b = np.where(sw > 0, ips[idx].sum(axis=1) / sw, np.nan)
    out["snips"] = Estimate(float(ips.sum() / w.sum()) if w.sum() > 0 else float("nan"), *_interval(snips_b))
    if dr is not None:
        out["dr"] = Estimate(float(dr.mean()), *_interval(dr[idx].mean(axis=1)))
    return out


def dr_difference(
    G: np.ndarray, pi_a: np.ndarray, pi_b: np.ndarray, *, rng: np.random.Generator, n_boot: int = 500
) -> Estimate:
    """DR estimate (and bootstrap interval) of ``value(pi_a) - value(pi_b)`` from pseudo-outcomes ``G``."""
    d = (pi_a * G).sum(axis=1) - (pi_b * G).sum(axis=1)
    idx = _bootstrap_index(len(d), n_boot, rng)
    return Estimate(float(d.mean()), *_interval(d[idx].mean(axis=1)))


def by_group(
    G: np.ndarray,
    choice: np.ndarray,
    groups: np.ndarray,
    baseline: int = 0,
    *,
    rng: np.random.Generator,
    n_boot: int = 300,
) -> pd.DataFrame:
    """Each group's share of decisions and its DR contribution to the incremental value per logged row.

    ``choice`` are the deterministic policy's action indices per row, ``groups[a]`` a label per action (e.g.
    its channel or offer). The contribution of group g is ``mean(1[choice_i in g] (G[i, choice_i] -
    G[i, baseline]))``; contributions add up to the policy's incremental value over the baseline action.
    """
    n = len(choice)
    rows = np.arange(n)
    lift = G[rows, choice] - G[rows, baseline]
    label = np.asarray(groups, dtype=object)[choice]
    idx = _bootstrap_index(n, n_boot, rng)
    records = []
    for g in pd.unique(label):
        ind = (label == g).astype(float)
        contrib = ind * lift
        lo, hi = _interval(contrib[idx].mean(axis=1))
        records.append(
            {
                "group": g,
                "share": float(ind.mean()),
                "incremental_value": float(contrib.mean()),
                "low": lo,
                "high": hi,
            }
        )
    return pd.DataFrame.from_records(records).sort_values("share", ascending=False).reset_index(drop=True)


def share_harmed(effect_of_choice: np.ndarray, contacted: np.ndarray) -> float:
    """Share of customers the policy contacts although their estimated effect of that contact is harmful."""
    n = len(effect_of_choice)
    return float(np.mean(contacted & (effect_of_choice < 0))) if n else 0.0


def qini_curve(
    uplift_score: np.ndarray,
    treated: np.ndarray,
    outcome: np.ndarray,
    weight: np.ndarray | None = None,
    n_points: int = 50,
) -> pd.DataFrame:
    """Qini curve: cumulative incremental outcome when treating the top fraction by ``uplift_score``.

    Treated and control outcomes are re-weighted (``weight``, e.g. inverse propensities) and the control
    sum is scaled to the treated count, as in scikit-uplift's ``qini_curve``. ``outcome`` should be the
    desirable event (e.g. retained = 1 - churn).
    """
    order = np.argsort(-uplift_score, kind="stable")
    t = np.asarray(treated, dtype=bool)[order]
    y = np.asarray(outcome, dtype=float)[order]
    w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=float)[order]
    nt = np.cumsum(w * t)
    nc = np.cumsum(w * ~t)
    yt = np.cumsum(w * y * t)
    yc = np.cumsum(w * y * ~t)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = yt - np.where(nc > 0, yc * nt / nc, 0.0)
    pos = np.unique(np.linspace(0, len(y) - 1, n_points).round().astype(int)) if len(y) else np.zeros(0, int)
    return pd.DataFrame({"fraction": (pos + 1) / max(len(y), 1), "qini": q[pos] if len(y) else []})


def qini_coefficient(curve: pd.DataFrame) -> float:
    """Area between the Qini curve and the random-targeting line (normalised by population fraction)."""
    if curve.empty:
        return 0.0
    x = np.concatenate([[0.0], curve["fraction"].to_numpy()])
    y = np.concatenate([[0.0], curve["qini"].to_numpy()])
    random_line = x * y[-1]
    return float(np.trapezoid(y - random_line, x))
