"""Candidate offer policies learned from DR pseudo-outcomes, all anchored on the best single offer.

Each candidate is an estimator with ``fit(X, G)`` (``G``: the ``(n, K)`` pseudo-outcomes of every offer)
and ``predict(X)`` (an offer index per row). A plain argmax of the outcome model does not beat the best
single offer, so every candidate starts from it and must *earn* each deviation: a policy tree only splits
where the summed value rises, a shrunk gain model deviates only above a threshold.
:func:`candidate_policies` lists what cross-validation (:mod:`training.starbucks.selection`) chooses from.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

# A side's second split: (covariate index, threshold bin), or None for a leaf.
Split = tuple[int, int] | None


def quantile_edges(v: np.ndarray, n_bins: int) -> np.ndarray:
    """The distinct inner quantiles of ``v``'s finite values that cut it into ``n_bins`` bins."""
    ok = v[np.isfinite(v)]
    return np.unique(np.quantile(ok, np.linspace(0, 1, n_bins + 1)[1:-1])) if ok.size else np.zeros(0)


def _best_split(B: np.ndarray, G: np.ndarray, depth: int, nb: int, min_leaf: int,
                floor: float) -> tuple[int, int, Split, Split] | None:
    """The first split (covariate, threshold bin) and each side's second split that maximise the summed value.

    ``B`` holds each covariate's bin codes; only a tree whose value exceeds ``floor`` is returned. Every
    cell's per-offer sums come from 2-D cumulative sums of a (first covariate, second covariate) histogram.
    """
    K = G.shape[1]

    def leaf(S, cnt):  # value of the best offer in each cell, -inf where too small
        return np.where(cnt >= min_leaf, S.max(axis=-1), -np.inf)

    best_value, best_tree = floor, None
    for j in range(B.shape[1]):
        # Per first threshold t: each side's best value as a leaf, or split once more on any covariate k.
        side_value = {"low": np.full(nb, -np.inf), "high": np.full(nb, -np.inf)}
        side_split: dict[str, list] = {"low": [None] * nb, "high": [None] * nb}
        for k in range(B.shape[1]) if depth == 2 else [j]:
            idx = B[:, j] * nb + B[:, k]
            S = np.bincount((idx[:, None] * K + np.arange(K)).ravel(), weights=G.ravel(), minlength=nb * nb * K)
            S, N = S.reshape(nb, nb, K), np.bincount(idx, minlength=nb * nb).reshape(nb, nb).astype(float)
            L, Ln = S.cumsum(0).cumsum(1), N.cumsum(0).cumsum(1)  # [t, s]: bin_j <= t and bin_k <= s
            tot, totn = S.sum(0).cumsum(0), N.sum(0).cumsum(0)  # [s]: bin_k <= s
            R, Rn = tot[None] - L, totn[None] - Ln  # bin_j > t and bin_k <= s
            for name, C, Cn in (("low", L, Ln), ("high", R, Rn)):
                Call, Cnall = C[:, -1:], Cn[:, -1:]
                if k == j or depth == 1:  # the side as one leaf (the same for every k)
                    as_leaf = leaf(Call, Cnall)[:, 0]
                    better = as_leaf > side_value[name]
                    side_value[name] = np.where(better, as_leaf, side_value[name])
                    for t in np.nonzero(better)[0]:
                        side_split[name][t] = None
                if depth == 2:
                    split = (leaf(C, Cn) + leaf(Call - C, Cnall - Cn))[:, :-1]
                    better = split.max(axis=1) > side_value[name]
                    side_value[name] = np.where(better, split.max(axis=1), side_value[name])
                    for t in np.nonzero(better)[0]:
                        side_split[name][t] = (k, int(split[t].argmax()))
        value = (side_value["low"] + side_value["high"])[:-1]
        if value.size and value.max() > best_value:
            t = int(value.argmax())
            best_value, best_tree = float(value[t]), (j, t, side_split["low"][t], side_split["high"][t])
    return best_tree


class PolicyTree:
    """A depth-1 or depth-2 policy tree on DR pseudo-outcomes (Athey & Wager 2021), exhaustive over quantile splits.

    Each leaf gives the offer with the highest summed pseudo-outcome of its rows; splits are searched over
    ``n_bins`` quantile thresholds of every covariate (missing values sort below every threshold) and both
    leaves of a split must hold at least ``min_leaf_share`` of the rows. Without a split that raises the
    summed value, the tree is one leaf: the best single offer. Fitted: ``baseline_``, ``root_`` (nested
    dicts), ``columns_``.
    """

    def __init__(self, depth: int = 2, min_leaf_share: float = 0.1, n_bins: int = 8) -> None:
        self.depth = depth
        self.min_leaf_share = min_leaf_share
        self.n_bins = n_bins

    def fit(self, X: pd.DataFrame, G: np.ndarray) -> PolicyTree:
        if self.depth not in (1, 2):
            raise ValueError(f"PolicyTree: depth must be 1 or 2, got {self.depth}")
        self.columns_ = list(X.columns)
        V = X.to_numpy(float)
        n = G.shape[0]
        edges = [quantile_edges(V[:, j], self.n_bins) for j in range(V.shape[1])]
        B = np.column_stack([np.where(np.isnan(V[:, j]), 0, np.searchsorted(e, V[:, j], side="right"))
                             for j, e in enumerate(edges)])
        min_leaf = max(1, int(np.ceil(self.min_leaf_share * n)))
        self.baseline_ = int(G.mean(axis=0).argmax())
        root_value = G.sum(axis=0).max()
        best_tree = _best_split(B, G, self.depth, self.n_bins, min_leaf, root_value + 1e-9)
        if best_tree is None:
            self.root_ = {"offer": self.baseline_}
            return self
        j, t, low_split, high_split = best_tree
        go_low = B[:, j] <= t

        def node(rows: np.ndarray, split: Split) -> dict:
            if split is None:
                return {"offer": int(G[rows].sum(0).argmax())}
            k, s = split
            low = rows & (B[:, k] <= s)
            return {"column": self.columns_[k], "below": float(edges[k][s]),
                    "low": {"offer": int(G[low].sum(0).argmax())},
                    "high": {"offer": int(G[rows & ~low].sum(0).argmax())}}

        self.root_ = {"column": self.columns_[j], "below": float(edges[j][t]),
                      "low": node(go_low, low_split), "high": node(~go_low, high_split)}
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The offer index for every row."""

        def walk(node: dict, rows: np.ndarray, out: np.ndarray) -> None:
            if "offer" in node:
                out[rows] = node["offer"]
                return
            v = X[node["column"]].to_numpy(float)
            low = ~(v >= node["below"])  # missing values sort low
            walk(node["low"], rows & low, out)
            walk(node["high"], rows & ~low, out)

        out = np.full(len(X), self.baseline_, dtype=int)
        walk(self.root_, np.ones(len(X), bool), out)
        return out

    def rules(self, offers: list[str]) -> list[str]:
        """The tree as readable rules (``condition -> offer``)."""
        out: list[str] = []

        def walk(node: dict, cond: list[str]) -> None:
            if "offer" in node:
                out.append(f"{' and '.join(cond) or 'everyone'} -> {offers[node['offer']]}")
                return
            c, b = node["column"], node["below"]
            walk(node["low"], [*cond, f"{c} < {b:.4g} (or missing)"])
            walk(node["high"], [*cond, f"{c} >= {b:.4g}"])

        walk(self.root_, [])
        return out


class ShrunkGainPolicy:
    """Per-offer ridge regressions of the DR gain over the best single offer; deviate only above a threshold.

    ``G[:, a] - G[:, best]`` is regressed on standardised covariates (medians for missing values plus
    missing flags) with an unpenalised intercept and ridge penalty ``ridge x n`` on the slopes, so a strong
    penalty leaves every offer at its (negative) mean gain and the policy at the best single offer. A row
    gets another offer only when its predicted gain exceeds ``threshold`` (reward units). Fitted:
    ``baseline_``, ``center_``, ``scale_``, ``median_``, ``flags_``, ``coef_``.
    """

    def __init__(self, ridge: float = 1.0, threshold: float = 0.5) -> None:
        self.ridge = ridge
        self.threshold = threshold

    def _z(self, X: pd.DataFrame) -> np.ndarray:
        V = X[self.columns_].to_numpy(float)
        miss = np.isnan(V)
        Z = np.column_stack([np.where(miss, self.median_, V), miss[:, self.flags_].astype(float)])
        return np.column_stack([np.ones(len(Z)), (Z - self.center_) / self.scale_])

    def fit(self, X: pd.DataFrame, G: np.ndarray) -> ShrunkGainPolicy:
        self.columns_ = list(X.columns)
        V = X.to_numpy(float)
        miss = np.isnan(V)
        with np.errstate(all="ignore"):
            med = np.nanmedian(np.where(miss.all(0), 0.0, V), axis=0)
        self.median_ = np.nan_to_num(med)
        self.flags_ = miss.any(axis=0)
        Z = np.column_stack([np.where(miss, self.median_, V), miss[:, self.flags_].astype(float)])
        self.center_, sd = Z.mean(axis=0), Z.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        Z1 = self._z(X)
        self.baseline_ = int(G.mean(axis=0).argmax())
        D = G - G[:, [self.baseline_]]
        P = np.eye(Z1.shape[1]) * self.ridge * len(Z1)
        P[0, 0] = 0.0
        self.coef_ = np.linalg.solve(Z1.T @ Z1 + P, Z1.T @ D)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        gain = self._z(X) @ self.coef_
        gain[:, self.baseline_] = -np.inf
        best = gain.argmax(axis=1)
        return np.where(gain[np.arange(len(best)), best] > self.threshold, best, self.baseline_)


class BestSingleOffer:
    """Everyone gets the offer with the highest mean DR pseudo-outcome. Fitted: ``baseline_``."""

    def fit(self, X: pd.DataFrame, G: np.ndarray) -> BestSingleOffer:
        self.baseline_ = int(G.mean(axis=0).argmax())
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.full(len(X), self.baseline_, dtype=int)


def candidate_policies() -> dict[str, Callable[[], object]]:
    """The policies cross-validation chooses from (factories of unfitted estimators)."""
    cands: dict[str, Callable[[], object]] = {"best_single_offer": BestSingleOffer}
    for depth, share in ((1, 0.1), (2, 0.1), (2, 0.2)):
        cands[f"tree_depth{depth}_leaf{share:g}"] = lambda d=depth, s=share: PolicyTree(depth=d, min_leaf_share=s)
    for ridge in (0.1, 1.0):
        for thr in (0.25, 0.5, 1.0):
            cands[f"ridge{ridge:g}_threshold{thr:g}"] = lambda r=ridge, t=thr: ShrunkGainPolicy(ridge=r, threshold=t)
    return cands


def make_candidate(name: str, candidates: dict[str, Callable[[], object]] | None = None) -> object:
    """An unfitted policy estimator by candidate name."""
    return (candidates or candidate_policies())[name]()
