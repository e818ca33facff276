"""The log-linear trend of a Poisson rate, fitted per customer by a vectorised bisection.

A customer's events at positions x on [0, 1] (0 = start of the window, 1 = the cutoff) are modelled as
a Poisson process with rate ``A exp(beta x)``; the maximum-likelihood slope solves a monotone equation
in the mean position, so a bisection over every customer at once finds it without per-customer loops.
"""

from __future__ import annotations

import numpy as np


def _mean_position(beta: np.ndarray) -> np.ndarray:
    """Mean of x on [0, 1] under the density proportional to exp(beta x) (increasing in beta)."""
    small = np.abs(beta) < 1e-4
    if not small.any():  # the usual case inside the bisection: one branch, same arithmetic
        return 1.0 / -np.expm1(-beta) - 1.0 / beta
    b = np.where(small, 1.0, beta)
    return np.where(small, 0.5 + beta / 12.0, 1.0 / -np.expm1(-b) - 1.0 / b)


GRID_LEVELS = 16
_GRIDS: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}


def _dyadic_grid(levels: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Points -15 + 30 j / 2^levels (j = 0 .. 2^levels) and ``_mean_position`` at the interior ones, or ``None``
    when the computed values are not monotone there (then the bisection runs every halving itself).

    The points are exact in float64, the same numbers the bisection's midpoints take. Computed once.
    """
    if levels not in _GRIDS:
        points = np.arange(2**levels + 1, dtype=np.float64) * (30.0 / 2**levels) - 15.0
        values = _mean_position(points[1:-1])
        _GRIDS[levels] = (points, values) if bool(np.all(values[1:] >= values[:-1])) else None
    return _GRIDS[levels]


def loglinear_rate(n: np.ndarray, mean_x: np.ndarray, prior: float = 2.0, iters: int = 48) -> np.ndarray:
    """Slope ``beta`` of a Poisson rate ``A exp(beta x)`` on [0, 1] fitted to ``n`` events at mean position
    ``mean_x`` (maximum likelihood after ``prior`` pseudo-events at the middle, which pulls customers
    with few events toward a flat rate). Vectorised bisection: the likelihood equation is monotone."""
    target = (n * mean_x + 0.5 * prior) / (n + prior)
    levels = min(GRID_LEVELS, iters)
    grid = _dyadic_grid(levels) if levels > 0 and not np.isnan(target).any() else None
    if grid is None:
        lo = np.full(n.shape, -15.0)
        hi = np.full(n.shape, 15.0)
    else:
        # The first ``levels`` halvings only ever compare against points of a fixed dyadic grid, so with a
        # monotone function they end in the grid cell a binary search finds: same lo/hi, far fewer passes.
        points, values = grid
        k = np.searchsorted(values, target, side="left")
        lo, hi = points[k], points[k + 1]
        iters -= levels
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        up = _mean_position(mid) < target
        lo = np.where(up, mid, lo)
        hi = np.where(up, hi, mid)
    # A mean position of exactly 1/2 (no events: only the prior's, at the middle) is an exactly flat rate;
    # the bisection would stop a rounding error short of 0, a value trees split on as if it meant something.
    return np.where(target == 0.5, 0.0, 0.5 * (lo + hi))


def end_factor(beta: np.ndarray) -> np.ndarray:
    """Rate at x = 1 relative to the mean rate on [0, 1] for a rate proportional to exp(beta x)."""
    small = np.abs(beta) < 1e-6
    b = np.where(small, 1.0, beta)
    return np.where(small, 1.0 + 0.5 * beta, b / -np.expm1(-b))
