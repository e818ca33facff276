"""The service's own Prometheus series, beside BentoML's request counters on ``/metrics``.

What an operator watches besides latency: which model version each worker serves, how the churn scores are
distributed (a shift after a reload or in the traffic shows here first), which actions the policy chooses by
channel and offer, why customers are not contacted, how many customers arrive without any history (cold starts)
and how many customers a request carries. Reloads are counted by outcome.

BentoML runs the service in several worker processes and serves ``/metrics`` through prometheus_client's
multiprocess collector: the series are created in the worker, after BentoML has set ``PROMETHEUS_MULTIPROC_DIR``
(importing prometheus_client earlier would keep them in one process's memory, invisible to ``/metrics``), once
per process (:func:`service_metrics`). Counters and histograms are summed over workers; the model-info gauge
shows, per version, whether any live worker serves it (1) or none does any more (0).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

CHURN_BUCKETS = (*(round(0.05 * i, 2) for i in range(1, 20)), 1.0)
CUSTOMER_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)
MAX_LABEL_CHARS = 80  # a label value longer than this is cut: labels are names, not data


def _label(value: Any, default: str = "none") -> str:
    return default if value is None else str(value)[:MAX_LABEL_CHARS]


class ServiceMetrics:
    """The engage series (see the module docstring); one instance per process."""

    def __init__(self) -> None:
        import prometheus_client as prom  # here, in the worker: see the module docstring

        self.model_info = prom.Gauge(
            "engage_model_info", "Model version served: 1 while a live worker serves it, 0 once none does",
            ["model_version"], multiprocess_mode="livemax",
        )
        self.churn = prom.Histogram(
            "engage_churn_probability", "Churn probability of each scored customer, by model version",
            ["model_version"], buckets=CHURN_BUCKETS,
        )
        self.actions = prom.Counter(
            "engage_actions", "Contact actions chosen, by channel and offer", ["channel", "offer"],
        )
        self.no_contact = prom.Counter(
            "engage_no_contact", "Customers the policy chose not to contact, by reason", ["reason"],
        )
        self.cold_starts = prom.Counter(
            "engage_cold_starts", "Customers scored without any touchpoint before the cutoff",
        )
        self.customers = prom.Histogram(
            "engage_customers_per_request", "Customers in one scoring request, by endpoint", ["endpoint"],
            buckets=CUSTOMER_BUCKETS,
        )
        self.reloads = prom.Counter(
            "engage_model_reloads", "Model reloads by outcome (swapped, unchanged, failed)", ["outcome"],
        )

    def serving(self, version: str, previous: str | None = None) -> None:
        """Record that this worker serves ``version`` (and no longer ``previous``)."""
        if previous is not None and previous != version:
            self.model_info.labels(previous).set(0)
        self.model_info.labels(version).set(1)

    def reloaded(self, outcome: str) -> None:
        self.reloads.labels(outcome).inc()

    def scored(self, results: Sequence[Mapping[str, Any]], version: str, endpoint: str) -> None:
        """Count one answered request's customers (response rows, ``CustomerScore`` dicts)."""
        self.customers.labels(endpoint).observe(len(results))
        if not results:
            return
        churn = np.fromiter(
            (r["churn_probability"] for r in results if r.get("churn_probability") is not None), dtype=float
        )
        observe_many(self.churn.labels(version), churn[np.isfinite(churn)])
        cold = sum(1 for r in results if r.get("cold_start"))
        if cold:
            self.cold_starts.inc(cold)
        actions: Counter[tuple[str, str]] = Counter()
        reasons: Counter[str] = Counter()
        for r in results:
            nba = r.get("next_best_action")
            if nba is not None and nba.get("channel") is not None:
                actions[(_label(nba["channel"]), _label(nba.get("offer")))] += 1
            elif nba is not None or r.get("no_contact_reason") is not None:
                reasons[_label(r.get("no_contact_reason"), "unspecified")] += 1
        for (channel, offer), n in actions.items():
            self.actions.labels(channel, offer).inc(n)
        for reason, n in reasons.items():
            self.no_contact.labels(reason).inc(n)


def observe_many(child: Any, values: Iterable[float] | np.ndarray) -> None:
    """Observe many values in a histogram child at once: one update per bucket, not per value.

    Uses the child's buckets as prometheus_client 0.2x keeps them (one count per bucket, not cumulative); a
    child without them gets one :meth:`observe` per value.
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return
    bounds, buckets, total = getattr(child, "_upper_bounds", None), getattr(child, "_buckets", None), None
    if bounds is None or buckets is None or len(bounds) != len(buckets) or not hasattr(child, "_sum"):
        for value in values.tolist():
            child.observe(value)
        return
    # prometheus_client puts a value in the first bucket whose upper bound is >= it: searchsorted 'left'.
    counts = np.bincount(np.searchsorted(np.asarray(bounds, dtype=float), values, side="left"),
                         minlength=len(bounds))
    total = float(values.sum())
    child._sum.inc(total)
    for i, n in enumerate(counts.tolist()):
        if n:
            buckets[i].inc(n)


_METRICS: ServiceMetrics | None = None
_LOCK = threading.Lock()


def service_metrics() -> ServiceMetrics:
    """This process's :class:`ServiceMetrics` (created on first use: series can be registered only once)."""
    global _METRICS
    with _LOCK:
        if _METRICS is None:
            _METRICS = ServiceMetrics()
        return _METRICS
