"""The "reach" final stage of the uplift model: one pooled ridge regression on every action's DR pseudo-outcomes.

The effect of action ``k = (channel c, offer o)`` on churn is ``reach_c(x) * g_o(x)``:

* ``reach_c`` is the customer's smoothed open rate on the channel (feature ``chan_{c}_open_rate``; the
  training mean where missing, 1 without the feature): a message that is not opened changes nothing;
* ``g_o(x) = b_o + (gamma + delta_o)'z(x)`` is the effect of an opened contact, linear in standardised
  features ``z``, with slopes ``gamma`` shared by all offers (who is persuadable at all), optional
  harder-shrunk deviations ``delta_o`` per offer (who responds to a discount rather than to content),
  and unpenalised offer intercepts ``b_o``.

It is one ridge least-squares fit on the doubly robust pseudo-outcomes of *all* actions, so every logged
decision informs the shared slopes; each action alone has too few rows for effects this small. Only the
features that matter most for the effect enter ``z``: each standardised feature is scored by its inner
product with the reach-weighted pseudo-outcomes (sure independence screening, Fan & Lv 2008), and how
many to keep is chosen by held-out pseudo-outcome error (unbiased for the effect's error up to a
constant) over two halves of the customers. With many features and small effects, a dozen slopes
estimated well beat every slope estimated poorly. Served in closed form: a matrix product per batch.

Parameters sit in one vector, in blocks (see :class:`Blocks`): offer intercepts, shared slopes, then one
block of slope deviations per offer when they are fitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Candidate numbers of features in the slopes (``effect_features="auto"``; all features too).
SCREEN_SIZES: tuple[int, ...] = (8, 16, 32, 64)
_REACH_ROWS = 2_048  # rows per chunk when serving: the standardised chunk stays in the CPU cache
_GRAM_ROWS = 65_536  # rows per chunk of a weighted Gram matrix (a chunk of 200 features: about 100 MB)
_Z_CLIP = 4.0  # standardised features are clipped to +-4 (a few extreme values must not drive the slopes)


@dataclass(frozen=True)
class Blocks:
    """Where the parameters sit: ``n_offers`` intercepts, ``n_features`` shared slopes, then ``n_dev``
    blocks of per-offer slope deviations (0 = none fitted)."""

    n_offers: int
    n_features: int
    n_dev: int

    @property
    def size(self) -> int:
        return self.n_offers + self.n_features * (1 + self.n_dev)


@dataclass(frozen=True)
class Term:
    """One contact action's part of the regression: its offer's index, its channel's reach per row, and
    its DR pseudo-outcome per row (whose expectation given ``x`` is the action's effect on churn)."""

    offer: int
    reach: np.ndarray
    pseudo_outcome: np.ndarray


@dataclass(frozen=True)
class Ridge:
    """Ridge penalty per logged row on the shared slopes; deviations get ``offer_ratio`` times it."""

    effect: float
    offer_ratio: float | None


@dataclass(frozen=True)
class ReachFit:
    """The fitted stage: coefficients ``beta`` (zero outside the kept features), the number of features
    kept, and the held-out loss of each candidate number."""

    beta: np.ndarray
    kept: np.ndarray
    size: int
    loss: dict[int, float]


def standardisation(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale of each column of ``X`` (missing values ignored; constant columns keep scale ~0)."""
    if not len(X):
        return np.zeros(X.shape[1]), np.ones(X.shape[1])
    return np.nan_to_num(np.nanmean(X, axis=0)), np.nan_to_num(np.nanstd(X, axis=0)) + 1e-9


def standardised(X: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``z(x)``: standardised features, missing as 0 (the mean), clipped to ``+-4``."""
    Z = (X - mean) / scale
    np.nan_to_num(Z, copy=False)
    np.clip(Z, -_Z_CLIP, _Z_CLIP, out=Z)
    return Z


def standardised_columns(
    X: pd.DataFrame, names: Sequence[str], chunk: int = 16
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(Z, mean, scale)`` of the frame's ``names`` columns: :func:`standardisation` and :func:`standardised`
    of their float matrix, a few columns at a time. The same numbers (column by column, the same sums) without
    the whole matrix's float copy and the full-size temporaries of ``nanmean``/``nanstd``: with them the
    policy trainer's ``reach`` stage held about three copies of the fitting rows at once."""
    n, d = len(X), len(names)
    Z = np.empty((n, d), order="F")  # the layout the whole matrix's arithmetic gives (same sums, same bits)
    mean, scale = np.empty(d), np.empty(d)
    for start in range(0, d, chunk):
        part = X[list(names[start : start + chunk])].to_numpy(dtype=float)
        cols = slice(start, start + part.shape[1])
        mean[cols], scale[cols] = standardisation(part)
        Z[:, cols] = standardised(part, mean[cols], scale[cols])
    return Z, mean, scale


def reach_columns(X: pd.DataFrame, channels: Sequence[str]) -> tuple[dict[str, str], dict[str, float]]:
    """Per channel, its open-rate feature and the rate assumed where it is missing (the training mean)."""
    features, fill = {}, {}
    for c in channels:
        col = f"chan_{c}_open_rate"
        if c != "none" and col in X.columns:
            v = X[col].to_numpy(dtype=float)
            features[c] = col
            fill[c] = float(np.nanmean(v)) if np.isfinite(v).any() else 1.0
    return features, fill


def channel_reach(
    Xf: np.ndarray, names: Sequence[str], channels: Sequence[str], features: dict[str, str], fill: dict[str, float]
) -> dict[str, np.ndarray]:
    """Per channel: each customer's open rate (missing → ``fill``; no feature → 1), in [0, 1]."""
    col = {c: i for i, c in enumerate(names)}
    out = {}
    for c in channels:
        if c in features:
            v = Xf[:, col[features[c]]]
            out[c] = np.clip(np.where(np.isnan(v), fill[c], v), 0.0, 1.0)
        else:
            out[c] = np.ones(len(Xf))
    return out


def ridge_baseline(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A ridge fit of the outcome, the baseline of the pseudo-outcomes' residuals (any baseline keeps DR
    unbiased; a better one only lowers variance)."""
    # The normal equations of [1, Z] from Z itself: stacking the column of ones copied every fitting row.
    n, d = Z.shape
    G = np.empty((d + 1, d + 1))
    G[0, 0] = n
    G[0, 1:] = G[1:, 0] = Z.sum(axis=0)
    G[1:, 1:] = Z.T @ Z
    beta = np.linalg.solve(G + np.eye(d + 1), np.concatenate([[np.sum(y)], Z.T @ y]))
    return beta[0] + Z @ beta[1:]


def equations(Z: np.ndarray, terms: list[Term], blocks: Blocks, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normal equations ``(A, b)`` of the pooled reach regression on the rows with ``weight`` 1."""
    n, d = Z.shape
    no, n_dev = blocks.n_offers, blocks.n_dev
    A = np.zeros((blocks.size, blocks.size))
    b = np.zeros(blocks.size)
    w = np.zeros((no, n))
    for t in terms:
        j, r = t.offer, t.reach
        rp = r * t.pseudo_outcome * weight
        w[j] += r * r * weight
        b[j] += rp.sum()
        rz = rp @ Z
        b[no : no + d] += rz
        if n_dev:
            b[no + d * (1 + j) : no + d * (2 + j)] += rz
    for j in range(no):
        dj = slice(no + d * (1 + j), no + d * (2 + j))
        wz = w[j] @ Z
        zz = _weighted_gram(Z, w[j])
        A[j, j] = w[j].sum()
        A[j, no : no + d] = A[no : no + d, j] = wz
        A[no : no + d, no : no + d] += zz
        if n_dev:
            A[j, dj] = A[dj, j] = wz
            A[no : no + d, dj] = A[dj, no : no + d] = zz
            A[dj, dj] = zz
    return A, b


def _weighted_gram(Z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``(Z * w[:, None]).T @ Z`` in row chunks: the weighted copy of ``Z`` is never whole."""
    out = np.zeros((Z.shape[1], Z.shape[1]))
    for start in range(0, len(Z), _GRAM_ROWS):
        part = Z[start : start + _GRAM_ROWS]
        out += (part * w[start : start + _GRAM_ROWS, None]).T @ part
    return out


def penalty(blocks: Blocks, ridge: Ridge, rows: int) -> np.ndarray:
    """The diagonal ridge penalty for ``rows`` logged rows: intercepts free, deviations shrunk hardest."""
    no, d = blocks.n_offers, blocks.n_features
    pen = np.full(blocks.size, (ridge.offer_ratio or 1.0) * ridge.effect * rows)
    pen[no : no + d] = ridge.effect * rows  # shared slopes
    pen[:no] = 1e-9 * rows  # offer intercepts: unpenalised
    return pen


def screen_sizes(effect_features: int | str | None, d: int) -> list[int]:
    """The candidate numbers of features: every feature (``None``), the ``"auto"`` ladder, or one number."""
    if effect_features is None:
        return [d]
    if effect_features == "auto":
        return sorted({min(k, d) for k in (*SCREEN_SIZES, d)})
    k = effect_features
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"UpliftModel: effect_features must be None, 'auto' or >= 1, got {k!r}")
    return [min(int(k), d)]


def kept(b: np.ndarray, blocks: Blocks, size: int) -> np.ndarray:
    """Parameter indices kept when the ``size`` features with the largest pooled score are used.

    The score is each standardised feature's inner product with the reach-weighted pseudo-outcomes
    (the slopes' part of ``b``): sure independence screening on the effect, not on churn.
    """
    no, d = blocks.n_offers, blocks.n_features
    order = np.sort(np.argsort(-np.abs(b[no : no + d]), kind="stable")[:size])
    parts = [np.arange(no), no + order] + [no + d * (1 + j) + order for j in range(no if blocks.n_dev else 0)]
    return np.concatenate(parts)


def fit_reach(
    Z: np.ndarray, terms: list[Term], blocks: Blocks, ridge: Ridge, half: np.ndarray, sizes: list[int]
) -> ReachFit:
    """Screen, choose how many features to keep by held-out error over the two ``half``s (0/1 per row),
    and solve the full problem with them."""
    # Normal equations per half: their sums are the full problem's, and a half's (A, b) also scores the
    # other half's fit (held-out squared error = beta'A beta - 2 beta'b + const).
    halves = [equations(Z, terms, blocks, (half == f).astype(float)) for f in (0, 1)]
    A, b = halves[0][0] + halves[1][0], halves[0][1] + halves[1][1]
    n_half = [int((half == f).sum()) for f in (0, 1)]
    loss = {}
    for size in sizes:
        total = 0.0
        for f in (0, 1):
            (At, bt), (Av, bv) = halves[1 - f], halves[f]
            idx = kept(bt, blocks, size)
            pen = penalty(blocks, ridge, n_half[1 - f])[idx]
            beta = np.linalg.solve(At[np.ix_(idx, idx)] + np.diag(pen), bt[idx])
            total += float(beta @ Av[np.ix_(idx, idx)] @ beta - 2.0 * beta @ bv[idx])
        loss[size] = total
    size = min(sizes, key=lambda k: (loss[k], k)) if len(sizes) > 1 else sizes[0]
    idx = kept(b, blocks, size)
    beta = np.zeros(len(b))
    beta[idx] = np.linalg.solve(A[np.ix_(idx, idx)] + np.diag(penalty(blocks, ridge, len(Z))[idx]), b[idx])
    return ReachFit(beta=beta, kept=idx, size=int(size), loss=loss)


def opened_effects(
    Xf: np.ndarray, mean: np.ndarray, scale: np.ndarray, slopes: np.ndarray, base: np.ndarray
) -> np.ndarray:
    """``(n, offers)`` effect of an opened contact per offer, ``b_o + slopes_o'z(x)``, in row chunks."""
    G = np.empty((len(Xf), len(base)))
    for start in range(0, len(Xf), _REACH_ROWS):
        part = Xf[start : start + _REACH_ROWS]
        G[start : start + len(part)] = standardised(part, mean, scale) @ slopes + base
    return G
