"""Score concurrent requests together, and large requests in slices between them.

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

A request with more than ``slice_touchpoints`` touchpoints and outreach contacts is scored in slices of
consecutive customers of about that size. Between two slices the worker first scores every smaller request
that arrived meanwhile, so one maximal request delays the others by one slice, not by its whole scoring time.
While no other request is waiting, consecutive slices are scored together, twice as many each time up to
:data:`MAX_SLICE_SPAN`: each scoring call has a fixed cost, which 25 single slices of a 1,000-customer request
paid 25 times (700 ms against 400 ms scored whole, in process). A request arriving then waits for at most one
such piece; the first request seen waiting brings the pieces back to one slice.
Its slices share one cutoff (fixed when it was submitted) and their rows are joined in request order.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import pandas as pd

from serving.engine import ScoringEngine
from serving.requests import as_cutoff, tables_from_request
from serving.responses import columns_to_results
from serving.schemas import CustomerIn

logger = logging.getLogger("engage.serving")

# At most this many consecutive slices of a large request are scored in one call (while nothing else waits).
MAX_SLICE_SPAN = 4


def customer_weight(customer: CustomerIn) -> int:
    """What scoring one customer costs, roughly: its touchpoints and outreach contacts (at least 1)."""
    return max(1, len(customer.touchpoints) + len(customer.outreach))


def slice_bounds(customers: Sequence[CustomerIn], slice_touchpoints: int) -> list[tuple[int, int]]:
    """Consecutive customer ranges of about ``slice_touchpoints`` weight each (one customer at least)."""
    bounds: list[tuple[int, int]] = []
    start, weight = 0, 0
    for i, customer in enumerate(customers):
        weight += customer_weight(customer)
        if weight >= slice_touchpoints:
            bounds.append((start, i + 1))
            start, weight = i + 1, 0
    if start < len(customers):
        bounds.append((start, len(customers)))
    return bounds


@dataclass
class _Job:
    customers: Sequence[CustomerIn]
    cutoff: pd.Timestamp | None
    future: Future = field(default_factory=Future)
    slices: list[tuple[int, int]] = field(default_factory=list)  # empty: scored whole, maybe merged
    next_slice: int = 0
    done: list[dict] = field(default_factory=list)  # rows of the slices scored so far
    engine: ScoringEngine | None = None  # a sliced request is scored by one model from its first slice to its last


class CoalescingScorer:
    """Queue of ``/score`` requests served by one worker thread in merged batches and slices."""

    def __init__(
        self,
        engine: Callable[[], ScoringEngine | None],
        max_customers: int = 2_000,
        linger_s: float = 0.0015,
        slice_touchpoints: int = 20_000,
    ):
        self._engine = engine
        self.max_customers = max_customers
        self.linger_s = max(0.0, float(linger_s))
        self.slice_touchpoints = max(1, int(slice_touchpoints))
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.requests = 0
        self.slices = 0
        self.slice_calls = 0  # scoring calls of large requests (fewer than slices while nothing else waits)

    def submit(self, customers: Sequence[CustomerIn], cutoff: pd.Timestamp | None) -> Future:
        """Queue a request; the future gives ``(cutoff, results, engine)`` (response rows in request order and the
        engine that scored them all, whose version they carry) or raises."""
        job = _Job(customers, cutoff)
        if sum(customer_weight(c) for c in customers) > self.slice_touchpoints and len(customers) > 1:
            job.slices = slice_bounds(customers, self.slice_touchpoints)
            job.cutoff = as_cutoff(cutoff)  # every slice scores at the same "now"
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="engage-scorer", daemon=True)
                self._thread.start()
        self._queue.put(job)
        return job.future

    def _run(self) -> None:
        merged_last = False
        large: deque[_Job] = deque()
        span = 1  # slices per scoring call of a large request
        while True:
            jobs = self._take(block=not large, merged_last=merged_last)
            small = [j for j in jobs if not j.slices]
            large.extend(j for j in jobs if j.slices)
            if small:
                merged_last = len(small) > 1
                span = 1  # others are arriving: one slice at a time between them
                for batch in self._batches(small):
                    self._process(batch)
            elif large:
                job = large.popleft()
                if not self._score_slice(job, span):
                    large.append(job)  # more slices to go: after the other large requests' next slice
                span = min(2 * span, MAX_SLICE_SPAN)

    def _take(self, *, block: bool, merged_last: bool) -> list[_Job]:
        """Every queued job (waiting for the first one when ``block``)."""
        jobs: list[_Job] = []
        if block:
            jobs.append(self._queue.get())
            if merged_last and self.linger_s:
                # Requests are arriving concurrently: the event loop is still reading and validating some.
                # Waiting for them (the GIL is free meanwhile) makes the batch larger and each customer cheaper.
                # A lone request (concurrency 1) never waits.
                time.sleep(self.linger_s)
        while True:
            try:
                jobs.append(self._queue.get_nowait())
            except queue.Empty:
                return jobs

    def _batches(self, jobs: list[_Job]) -> list[list[_Job]]:
        """Small jobs in groups of at most ``max_customers`` customers and about one slice of touchpoints."""
        out: list[list[_Job]] = [[]]
        n = weight = 0
        for job in jobs:
            w = sum(customer_weight(c) for c in job.customers)
            if out[-1] and (n + len(job.customers) > self.max_customers or weight + w > self.slice_touchpoints):
                out.append([])
                n = weight = 0
            out[-1].append(job)
            n += len(job.customers)
            weight += w
        return out

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

    def _current(self) -> ScoringEngine:
        engine = self._engine()  # read once per batch: a model swapped in meanwhile serves the next batch
        if engine is None:
            raise RuntimeError("model not loaded")
        return engine

    @staticmethod
    def _rows(engine: ScoringEngine, customers: Sequence[CustomerIn], at: pd.Timestamp) -> list[dict]:
        # One conversion to response rows for the whole batch: the conversion has a fixed cost per call.
        tables = tables_from_request(customers, attributes=engine.attributes)
        return columns_to_results(engine.score_columns(tables, at), len(customers))

    def _score(self, batch: list[_Job], cutoff: pd.Timestamp | None) -> None:
        at = as_cutoff(cutoff)  # requests without a cutoff share "now" of their batch
        try:
            engine = self._current()
            results = self._rows(engine, [c for job in batch for c in job.customers], at)
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
            job.future.set_result((at, results[start:stop], engine))
            start = stop

    def _score_slice(self, job: _Job, span: int = 1) -> bool:
        """Score the job's next ``span`` slices in one call; returns whether the job is finished (answered or
        failed)."""
        last = min(job.next_slice + span, len(job.slices)) - 1
        start, stop = job.slices[job.next_slice][0], job.slices[last][1]
        pieces = last + 1 - job.next_slice
        job.next_slice = last + 1
        at = job.cutoff
        assert at is not None
        try:
            if job.engine is None:
                job.engine = self._current()
            job.done.extend(self._rows(job.engine, job.customers[start:stop], at))
        except Exception as exc:
            job.future.set_exception(exc)
            return True
        self.slices += pieces
        self.slice_calls += 1
        if stop < len(job.customers):
            return False
        self.batches += 1
        self.requests += 1
        job.future.set_result((at, job.done, job.engine))
        return True

