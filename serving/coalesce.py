"""Score concurrent requests together: one feature-pipeline call for everything waiting.

The decision system has a fixed cost per call (pandas and LightGBM call overheads: a few ms for one
customer, little more for sixteen), so scoring concurrent one-customer requests one by one wastes CPU.
A single worker thread takes every request queued while it was busy, merges those with the same cutoff
and disjoint customer ids into one contract table, scores it once, converts it to response rows once
and hands each request its own rows.
At concurrency 1 nothing waits, so latency is unchanged. Under concurrency (the previous batch merged
several requests) the worker waits ``linger_s`` before taking a batch, for the requests the event
loop is still reading: larger batches, fewer fixed costs. Answers do not depend on which requests were
merged: a fitted pipeline transforms each customer from that customer's rows only (the integration
test checks service answers against batch scoring).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import pandas as pd

from serving.engine import ScoringEngine
from serving.requests import as_cutoff, tables_from_request
from serving.responses import columns_to_results
from serving.schemas import CustomerIn

logger = logging.getLogger("engage.serving")


@dataclass
class _Job:
    customers: Sequence[CustomerIn]
    cutoff: pd.Timestamp | None
    future: Future = field(default_factory=Future)


class CoalescingScorer:
    """Queue of ``/score`` requests served by one worker thread in merged batches."""

    def __init__(
        self, engine: Callable[[], ScoringEngine | None], max_customers: int = 2_000, linger_s: float = 0.0015
    ):
        self._engine = engine
        self.max_customers = max_customers
        self.linger_s = max(0.0, float(linger_s))
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.requests = 0

    def submit(self, customers: Sequence[CustomerIn], cutoff: pd.Timestamp | None) -> Future:
        """Queue a request; the future gives ``(cutoff, results)`` (response rows in request order) or raises."""
        job = _Job(customers, cutoff)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="engage-scorer", daemon=True)
                self._thread.start()
        self._queue.put(job)
        return job.future

    def _run(self) -> None:
        merged_last = False
        while True:
            jobs = [self._queue.get()]
            if merged_last and self.linger_s:
                # Requests are arriving concurrently: the event loop is still reading and validating some.
                # Waiting for them (the GIL is free meanwhile) makes the batch larger and each customer cheaper.
                # A lone request (concurrency 1) never waits.
                time.sleep(self.linger_s)
            n = len(jobs[0].customers)
            while n < self.max_customers:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                jobs.append(job)
                n += len(job.customers)
            merged_last = len(jobs) > 1
            self._process(jobs)

    def _process(self, jobs: list[_Job]) -> None:
        groups: dict[pd.Timestamp | None, list[list[_Job]]] = {}
        for job in jobs:
            ids = {c.customer_id for c in job.customers}
            batches = groups.setdefault(job.cutoff, [])
            for batch in batches:  # first batch whose customers do not clash with this request's
                if not any(ids & {c.customer_id for c in other.customers} for other in batch):
                    batch.append(job)
                    break
            else:
                batches.append([job])
        for cutoff, batches in groups.items():
            for batch in batches:
                self._score(batch, cutoff)

    def _score(self, batch: list[_Job], cutoff: pd.Timestamp | None) -> None:
        engine = self._engine()
        at = as_cutoff(cutoff)  # requests without a cutoff share "now" of their batch
        try:
            if engine is None:
                raise RuntimeError("model not loaded")
            merged = [c for job in batch for c in job.customers]
            # One conversion to response rows for the whole batch: the conversion has a fixed cost per call.
            tables = tables_from_request(merged, attributes=engine.attributes)
            results = columns_to_results(engine.score_columns(tables, at), len(merged))
        except Exception as exc:
            if len(batch) > 1:  # one request's problem must not fail the others: score them alone
                for job in batch:
                    self._score([job], cutoff)
            else:
                batch[0].future.set_exception(exc)
            return
        self.batches += 1
        self.requests += len(batch)
        start = 0
        for job in batch:
            stop = start + len(job.customers)
            job.future.set_result((at, results[start:stop]))
            start = stop
