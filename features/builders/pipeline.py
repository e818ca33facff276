"""All feature families composed: one event pass, customer partitions in threads, one table.

``FeaturePipeline`` is the single entry point used for training (many cutoffs), batch scoring and the
live service. It extracts the shared :class:`~features.builders.events.EventArrays` once, splits it into
blocks of whole customers and lets threads compute every family on each block (numpy releases the
GIL inside its kernels, so two threads use both cores); aggregates families share are computed once
per block. Small inputs (the service's one customer) take the same code path without threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from features.builders.base import FeatureBuilder, concat_stats, map_blocks, to_frame
from features.builders.channels import ChannelBuilder
from features.builders.dynamics import DynamicsBuilder
from features.builders.engagement import EngagementBuilder
from features.builders.event_source import DEFAULT_BLOCK_EVENTS, EventSource, to_cutoff_ns
from features.builders.intent import IntentBuilder
from features.builders.ladders import LadderBuilder
from features.builders.service_social import ServiceSocialBuilder
from features.builders.static import StaticAttributesBuilder
from features.builders.value import ValueBuilder
from features.contract.schema import Tables

FAMILIES: tuple[tuple[str, type], ...] = (
    ("engagement", EngagementBuilder),
    ("service_social", ServiceSocialBuilder),
    ("intent", IntentBuilder),
    ("ladders", LadderBuilder),
    ("value", ValueBuilder),
    ("channel", ChannelBuilder),
    ("dynamics", DynamicsBuilder),  # event families first: transform fills their columns before static
    ("static", StaticAttributesBuilder),
)


@dataclass(frozen=True)
class FitStats:
    """One partition's share of a pipeline fit: the per-customer statistics of each event family (in the
    partition's customer order) and its customers table (the static attributes are fitted on every row)."""

    events: list[dict[str, np.ndarray]]
    customers: pd.DataFrame


class FeaturePipeline(BaseEstimator):
    """Every feature family at a cutoff; same ``fit``/``transform`` contract as the builders.

    Parameters
    ----------
    engagement, service_social, intent, ladders, value, channel, dynamics, static : a configured builder for that
        family, or ``None`` for the default one (nested parameters: ``engagement__half_life_days``).
    n_jobs : threads working on blocks of customers (1 = no threads).
    block_events : events per block: small enough for the temporaries to stay in cache, large enough
        for numpy's per-call overhead not to matter. An input this small is one block on one thread
        (the live service's single customer).
    """

    def __init__(
        self,
        engagement=None,
        service_social=None,
        intent=None,
        ladders=None,
        value=None,
        channel=None,
        dynamics=None,
        static=None,
        n_jobs: int = 2,
        block_events: int = DEFAULT_BLOCK_EVENTS,
    ):
        self.engagement = engagement
        self.service_social = service_social
        self.intent = intent
        self.ladders = ladders
        self.value = value
        self.channel = channel
        self.dynamics = dynamics
        self.static = static
        self.n_jobs = n_jobs
        self.block_events = block_events

    # ---- helpers ----------------------------------------------------------------------------------
    def _new_builders(self) -> list[tuple[str, object]]:
        out = []
        for name, cls in FAMILIES:
            given = getattr(self, name)
            out.append((name, clone(given) if given is not None else cls()))
        return out

    def _map(self, source: EventSource, fn, progress=None) -> list:
        return map_blocks(source, fn, n_jobs=int(self.n_jobs), block_events=int(self.block_events),
                          progress=progress)

    def _event_builders(self) -> list[FeatureBuilder]:
        return [b for _, b in self.builders_ if isinstance(b, FeatureBuilder)]

    # ---- contract ---------------------------------------------------------------------------------
    def _stats(self, X: Tables, source: EventSource, progress=None) -> FitStats:
        event_b = [b for _, b in self._new_builders() if isinstance(b, FeatureBuilder)]
        for b in event_b:
            b._check_params()
        stats = self._map(source, lambda block: [b._fit_stats(block) for b in event_b], progress)
        return FitStats([concat_stats([s[j] for s in stats]) for j in range(len(event_b))], X.customers)

    def _fit_from_parts(self, parts: Sequence[FitStats], cutoff, X: Tables | None = None) -> None:
        builders = self._new_builders()
        event_b = [b for _, b in builders if isinstance(b, FeatureBuilder)]
        for j, b in enumerate(event_b):
            b._check_params()
            # Parts of consecutive customers joined in order: the very arrays one pass over them all gives.
            b._fit_from(concat_stats([p.events[j] for p in parts]))
            b.feature_names_out_ = np.array([n for n, _ in b.describe()], dtype=object)
            b.n_features_out_ = len(b.feature_names_out_)
        if X is None:  # the other families (static attributes) read the customers table only
            customers = pd.concat([p.customers for p in parts], ignore_index=True) if len(parts) != 1 \
                else parts[0].customers
            X = Tables(customers=customers, touchpoints=pd.DataFrame({"customer_id": [], "ts": []}))
        for _, b in builders:
            if not isinstance(b, FeatureBuilder):
                b.fit(X, cutoff=cutoff)
        self.builders_ = builders
        names = [n for _, b in builders for n in b.get_feature_names_out()]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"feature names collide across families: {dup}")
        self.feature_names_out_ = np.array(names, dtype=object)
        self.int_columns_ = frozenset().union(*(b.int_columns for _, b in builders))

    def _fit_events(self, X: Tables, source: EventSource, cutoff, progress=None) -> None:
        self._fit_from_parts([self._stats(X, source, progress)], cutoff, X)

    def fit_stats(self, X: Tables, *, cutoff, progress=None) -> FitStats:
        """What the customers of ``X`` contribute to a fit at ``cutoff``, for :meth:`fit_from_stats`.

        A partitioned customer base is fitted without ever holding it whole: each partition's statistics
        are computed where the partition is (per-customer arrays, a few numbers per customer, and its
        customers table), and the fit is made from all of them.
        """
        return self._stats(X, EventSource(X, cutoff), progress)

    def fit_from_stats(self, parts: Sequence[FitStats], *, cutoff) -> FeaturePipeline:
        """Fit from :meth:`fit_stats` of partitions of customers, in their order: the same fitted pipeline as
        ``fit`` on the tables of all of them concatenated in that order (bit for bit)."""
        if not parts:
            raise ValueError("fit_from_stats: no partitions to fit on")
        self._fit_from_parts(list(parts), cutoff)
        return self

    def fit(self, X: Tables, y=None, *, cutoff, progress=None) -> FeaturePipeline:
        """Fit every family on the customers of ``X`` at ``cutoff`` (scales, priors, categories).

        ``progress(done, total)``, when given, is called as blocks of customers finish.
        """
        self._fit_events(X, EventSource(X, cutoff), cutoff, progress)
        return self

    def _transform_events(self, X: Tables, source: EventSource, cutoff, progress=None) -> pd.DataFrame:
        event_b = self._event_builders()
        statics = [b for _, b in self.builders_ if isinstance(b, StaticAttributesBuilder)]
        width = sum(b.n_features_out_ for b in event_b)
        # Each block writes its rows of one preallocated table (threads write disjoint slices).
        block = np.empty((source.n, len(self.feature_names_out_)), order="F")  # columns contiguous

        def fill(ev) -> None:
            col = 0
            for b in event_b:  # each family straight into its columns (no stacked copy)
                a = b._block(ev)
                block[ev.lo : ev.lo + ev.n, col : col + a.shape[1]] = a
                col += a.shape[1]

        self._map(source, fill, progress)
        col = width
        for b in statics:
            block[:, col : col + b.n_features_out_] = b._block(X.customers, to_cutoff_ns(cutoff))
            col += b.n_features_out_
        return to_frame(block, X.customers["customer_id"], list(self.feature_names_out_), self.int_columns_)

    def transform(self, X: Tables, *, cutoff, progress=None) -> pd.DataFrame:
        """The feature table: one row per customer of ``X.customers``, index ``customer_id``.

        ``progress(done, total)``, when given, is called as blocks of customers finish.
        """
        check_is_fitted(self, "feature_names_out_")
        return self._transform_events(X, EventSource(X, cutoff), cutoff, progress)

    def fit_transform(self, X: Tables, y=None, *, cutoff, progress=None) -> pd.DataFrame:
        """``fit`` and ``transform`` at one cutoff, sharing the event pass (``progress`` counts both passes)."""
        source = EventSource(X, cutoff)
        fit_done = [0]

        def fit_progress(done: int, total: int) -> None:
            fit_done[0] = total
            progress(done, 2 * total)

        def transform_progress(done: int, total: int) -> None:
            progress(fit_done[0] + done, 2 * total)

        self._fit_events(X, source, cutoff, fit_progress if progress else None)
        return self._transform_events(X, source, cutoff, transform_progress if progress else None)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()

    def families(self) -> dict[str, object]:
        """The fitted builders by family name."""
        check_is_fitted(self, "builders_")
        return dict(self.builders_)


def build_features(tables: Tables, cutoff, pipeline: FeaturePipeline | None = None) -> pd.DataFrame:
    """Feature table of every customer at ``cutoff``; fits a default pipeline on ``tables`` if none given."""
    tables = tables.without_truth()
    if pipeline is None:
        return FeaturePipeline().fit_transform(tables, cutoff=cutoff)
    return pipeline.transform(tables, cutoff=cutoff)
