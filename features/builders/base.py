"""Common machinery of the feature builders: the estimator contract on top of :mod:`features.builders.events`.

A builder is a scikit-learn estimator whose input is a :class:`~features.contract.schema.Tables` bundle and an
explicit ``cutoff``. It declares its columns up front (``describe``), so the output columns never
depend on which categories happen to occur, and it computes them from one :class:`EventArrays`
block with numpy only. :class:`~features.builders.pipeline.FeaturePipeline` calls the same block-level methods
on contiguous customer partitions in threads; ``transform`` on a single builder does the same on the
whole block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from features.builders.event_source import DEFAULT_BLOCK_EVENTS, EventSource
from features.builders.events import EventArrays
from features.contract.schema import DAY_NS, Tables

INT_MIN = np.iinfo(np.int64).min
INT_MAX = np.iinfo(np.int64).max


def days_since(ev: EventArrays, last_ns: np.ndarray, cap: float) -> np.ndarray:
    """Days from ``last_ns`` to the cutoff, ``cap`` where there is none (and never above ``cap``)."""
    out = np.full(ev.n, float(cap))
    ok = last_ns != INT_MIN
    out[ok] = np.minimum((ev.cutoff_ns - last_ns[ok]) / DAY_NS, cap)
    return out


def safe_div(a: np.ndarray, b: np.ndarray, default: float = 0.0) -> np.ndarray:
    """``a / b`` with ``default`` where ``b == 0``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    out = np.full(np.broadcast(a, b).shape, float(default))
    np.divide(a, b, out=out, where=b != 0)
    return out


def smoothed_rate(hits: np.ndarray, trials: np.ndarray, prior: float, strength: float) -> np.ndarray:
    """Empirical-Bayes rate ``(hits + strength·prior) / (trials + strength)``, capped at 1.

    Customers with little history fall back on the population rate learned in ``fit`` instead of an
    undefined 0/0 or a noisy 1/1.
    """
    hits = np.minimum(np.asarray(hits, dtype=np.float64), trials)
    return (hits + strength * prior) / (np.asarray(trials, dtype=np.float64) + strength)


def per_member(members: Iterable[str], columns: Callable[[str], list[tuple[str, str]]]) -> list[tuple[str, str]]:
    """``describe`` entries that repeat for every member of a vocabulary: ``columns(m)`` for each member in turn."""
    return [entry for m in members for entry in columns(m)]


# Inputs with fewer events per thread than this stay one block: below it a thread costs more than it saves.
MIN_THREADED_BLOCK_EVENTS = 8_192


def map_blocks(source: EventSource, fn, *, n_jobs: int = 1, block_events: int = DEFAULT_BLOCK_EVENTS,
               progress: Callable[[int, int], None] | None = None) -> list:
    """``fn(block)`` for every block of whole customers, in customer order, on ``n_jobs`` threads.

    ``progress(done, total)`` is called as blocks finish (in order), for a caller that shows progress.
    """
    events = len(source.cust_pos)
    if n_jobs > 1 and events >= n_jobs * MIN_THREADED_BLOCK_EVENTS:
        # A mid-sized input (a request's slice of 20,000 touchpoints) is one block at the default size: cut it
        # so every thread has a share (outputs do not depend on the cut; tested byte for byte).
        block_events = min(block_events, -(-events // n_jobs))
    bounds = source.blocks(block_events)
    report = progress or (lambda done, total: None)

    def run(b):
        return fn(source.block(*b))

    if n_jobs <= 1 or len(bounds) == 1:
        results = []
        for b in bounds:
            results.append(run(b))
            report(len(results), len(bounds))
        return results
    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        results = []
        for result in pool.map(run, bounds):
            results.append(result)
            report(len(results), len(bounds))
        return results


def concat_stats(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-customer fit statistics of consecutive blocks joined into whole-population arrays."""
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class FeatureBuilder(BaseEstimator):
    """Base class: ``fit(X, y=None, *, cutoff)`` / ``transform(X, *, cutoff)`` on :class:`Tables`.

    Subclasses set ``family`` and ``seed_idea`` and implement ``describe`` (names and meanings, fixed
    before fitting), ``_block`` (an (n, k) float array for one block) and optionally ``_fit_stats``
    (per-customer arrays the fit needs) with ``_fit_from``.
    """

    family: ClassVar[str] = ""
    seed_idea: ClassVar[str] = ""
    # Columns returned as integers (ordinal ladders, flags).
    int_columns: ClassVar[frozenset[str]] = frozenset()

    # ---- to implement --------------------------------------------------------------------------
    def describe(self) -> list[tuple[str, str]]:  # pragma: no cover - abstract
        """``(column, meaning)`` for every output column, in output order."""
        raise NotImplementedError

    def _block(self, ev: EventArrays) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fit_stats(self, ev: EventArrays) -> dict[str, np.ndarray]:
        """Per-customer arrays the fit needs, computed on one block (concatenated over blocks)."""
        return {}

    def _fit_from(self, stats: dict[str, np.ndarray]) -> None:
        """Set the fitted attributes (ending in ``_``) from the concatenated per-customer arrays."""

    def _check_params(self) -> None:
        """Validate parameters (in ``fit``, never in ``__init__``)."""

    # ---- contract -------------------------------------------------------------------------------
    def fit(self, X: Tables, y=None, *, cutoff) -> FeatureBuilder:
        """Learn population-level scales from the customers in ``X`` at ``cutoff``; returns ``self``."""
        self._check_params()
        self._fit_from(concat_stats(map_blocks(EventSource(X, cutoff), self._fit_stats)))
        self.feature_names_out_ = np.array([n for n, _ in self.describe()], dtype=object)
        self.n_features_out_ = len(self.feature_names_out_)
        return self

    def transform(self, X: Tables, *, cutoff) -> pd.DataFrame:
        """One row per customer of ``X.customers`` (index ``customer_id``), events before ``cutoff`` only."""
        check_is_fitted(self, "feature_names_out_")
        blocks = map_blocks(EventSource(X, cutoff), self._block)
        return to_frame(np.vstack(blocks), X.customers["customer_id"], list(self.feature_names_out_), self.int_columns)

    def fit_transform(self, X: Tables, y=None, *, cutoff) -> pd.DataFrame:
        """``fit`` then ``transform`` at the same cutoff."""
        return self.fit(X, y, cutoff=cutoff).transform(X, cutoff=cutoff)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Output column names (fixed once fitted)."""
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "feature_names_out_")


def to_frame(block: np.ndarray, ids: pd.Series, names: list[str], int_columns=frozenset()) -> pd.DataFrame:
    """The numeric block as a DataFrame indexed by ``customer_id``; ladders/flags as int64.

    The float block is wrapped without a copy and only the few integer columns are replaced: cheaper
    than building the frame column by column or ``DataFrame.astype`` on a wide frame, both for one
    customer (the service) and for a whole population.
    """
    index = pd.Index(ids.astype(str).to_numpy(), name="customer_id")
    frame = pd.DataFrame(block, index=index, columns=names, copy=False)
    for i, n in enumerate(names):
        if n in int_columns:
            frame.isetitem(i, block[:, i].astype(np.int64))
    return frame
