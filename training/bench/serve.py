"""Load test of the real scoring server: ``engage bench serve [--report FILE]``.

Starts ``bentoml serve`` itself on a free 127.0.0.1 port, sends bounded numbers of requests (each
phase also stops at a time limit), stops the server and returns/prints JSON::

    {"c1": {p50_ms, p90_ms, p99_ms, rps, errors, requests},      one customer per request, 1 client
     "c16": {... , customers_per_s},                              one customer per request, 16 clients
     "batch_1000": {ms, errors, customers_per_s,                  one request with 1,000 customers
                    json_loads_ms, over_json_loads}, ...}         and json.loads of its body, same run
     "floor": {"c1": ..., "c16": ...}, "floor_ratios": {...}}     the trivial BentoML service, same run

The floor (:mod:`training.bench.floor_service`, :mod:`training.bench.floor`) is a LightGBM model on one numpy
row behind the same BentoML, worker count and load generator; engage's figures are reported as ratios to it.

Every customer carries ``touchpoints`` (default 500) synthetic touchpoints drawn over the contract's
vocabularies from a seeded generator, sent in the columnar request shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pandas as pd

from features.contract.schema import OUTREACH_CHANNELS, PASSIVE_KINDS, TOUCHPOINT_OPTIONAL, Tables
from serving.requests import CONSENTS
from serving.server import PROJECT_ROOT, default_workers, free_port, running_server, server_env, stop, wait_ready
from serving.server import ModelLoadError as ModelLoadError  # re-exported: the CLI reports it (exit status 3)
from training.bench.floor import floor_bodies, floor_ratios
from training.bench.floor_service import FLOOR_SERVICE_NAME

# A plausible mix of (channel, kind) for synthetic histories; passive kinds are outbound.
_EVENTS: tuple[tuple[str, str, float], ...] = (
    ("web", "visit", 0.18),
    ("web", "page_view", 0.2),
    ("web", "search", 0.05),
    ("web", "product_view", 0.1),
    ("app", "visit", 0.08),
    ("app", "add_to_cart", 0.04),
    ("web", "purchase", 0.03),
    ("store", "purchase", 0.02),
    ("email", "impression", 0.08),
    ("email", "message_open", 0.06),
    ("email", "message_click", 0.02),
    ("push", "message_open", 0.03),
    ("call_center", "service_contact", 0.02),
    ("social", "social_like", 0.04),
    ("survey", "survey_sent", 0.02),
    ("chat", "complaint", 0.01),
    ("event", "event_invite", 0.02),
)


def synthetic_customers(
    n: int,
    touchpoints: int,
    rng: np.random.Generator,
    *,
    end: datetime,
    days: int = 365,
    prefix: str = "bench",
) -> list[dict[str, Any]]:
    """``n`` request customers with ``touchpoints`` events each over ``days`` before ``end``."""
    probs = np.array([p for *_, p in _EVENTS])
    probs /= probs.sum()
    start = end - timedelta(days=days)
    customers = []
    for i in range(n):
        pick = rng.choice(len(_EVENTS), size=touchpoints, p=probs)
        offsets = np.sort(rng.uniform(0, days * 86400, size=touchpoints))
        channel = [_EVENTS[j][0] for j in pick]
        kind = [_EVENTS[j][1] for j in pick]
        amount = [round(float(rng.gamma(2.0, 30.0)), 2) if k == "purchase" else None for k in kind]
        consents = rng.random(len(OUTREACH_CHANNELS)) < 0.6
        customers.append(
            {
                "customer_id": f"{prefix}-{i:06d}",
                "signup_ts": (start - timedelta(days=int(rng.integers(0, 900)))).isoformat(),
                **{f"consent_{c}": bool(v) for c, v in zip(OUTREACH_CHANNELS, consents, strict=True)},
                "touchpoints": {
                    "ts": [(start + timedelta(seconds=float(s))).isoformat() for s in offsets],
                    "channel": channel,
                    "kind": kind,
                    "direction": ["outbound" if k in PASSIVE_KINDS else "inbound" for k in kind],
                    "amount": amount,
                },
            }
        )
    return customers


def _plain(values) -> list:
    """A column as JSON-ready values (NaN/NA → None)."""
    return [
        None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v
        for v in pd.Series(values).astype(object).tolist()
    ]


def customers_payload(tables: Tables, customer_ids=None) -> list[dict[str, Any]]:
    """Request customers (columnar touchpoints) for customers of validated ``tables``: what a CRM sends."""
    cus = tables.customers
    if customer_ids is not None:
        cus = cus[cus["customer_id"].astype(str).isin([str(i) for i in customer_ids])]
    tp, outreach = tables.touchpoints, tables.outreach
    tp_groups = tp.groupby(tp["customer_id"].astype(str), observed=True).indices if len(tp) else {}
    or_groups = (
        outreach.groupby(outreach["customer_id"].astype(str), observed=True).indices
        if outreach is not None and len(outreach)
        else {}
    )
    extra = [c for c in cus.columns if c not in ("customer_id", "signup_ts", *CONSENTS)]
    out = []
    for row in cus.to_dict(orient="records"):
        cid = str(row["customer_id"])
        item: dict[str, Any] = {
            "customer_id": cid,
            "signup_ts": None if pd.isna(row["signup_ts"]) else row["signup_ts"].isoformat(),
            **{c: bool(row[c]) for c in CONSENTS},
            "attributes": {
                c: (None if pd.isna(row[c]) else (row[c].item() if hasattr(row[c], "item") else row[c]))
                for c in extra
            },
        }
        rows = tp_groups.get(cid)
        if rows is not None:
            part = tp.iloc[rows]
            cols = {"ts": [t.isoformat() for t in part["ts"]]}
            for c in ("channel", "kind", "direction", *TOUCHPOINT_OPTIONAL):
                if c in part.columns:
                    cols[c] = _plain(part[c])
            item["touchpoints"] = cols
        orows = or_groups.get(cid)
        if orows is not None:
            part = outreach.iloc[orows]
            item["outreach"] = [
                {
                    "ts": r["ts"].isoformat(),
                    "channel": _plain([r["channel"]])[0],
                    "offer": str(r["offer"]),
                    "campaign_id": _plain([r.get("campaign_id")])[0],
                    "propensity": _plain([r.get("propensity")])[0],
                    "holdout": bool(r["holdout"]),
                }
                for r in part.to_dict(orient="records")
            ]
        out.append(item)
    return out


def _summary(
    latencies_s: list[float], errors: int, wall_s: float, customers_per_request: int, client_cpu_s: float
) -> dict:
    lat = np.array(latencies_s) * 1000 if latencies_s else np.array([np.nan])
    n = len(latencies_s) + errors
    return {
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p90_ms": round(float(np.percentile(lat, 90)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "max_ms": round(float(np.max(lat)), 2),
        "rps": round(n / wall_s, 1),
        "customers_per_s": round(n * customers_per_request / wall_s, 1),
        "errors": errors,
        "requests": n,
        # The load generator shares the machine's cores with the server: its CPU use per wall second.
        "client_cpu_cores": round(client_cpu_s / wall_s, 2),
    }


class _Connection:
    """One keep-alive HTTP/1.1 connection of the load generator.

    A few lines of asyncio streams instead of a general HTTP client: at a few hundred requests per second
    httpx itself needs a large share of the machine's cores, which the server under test then lacks (the
    phase reports the generator's own CPU use as ``client_cpu_cores``).
    """

    def __init__(self, host: str, port: int, headers: Mapping[str, str]):
        self.host, self.port = host, port
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.head = f"POST /score HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{extra}"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        """Send ``body`` to ``/score``; the response status (the body is read and dropped)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"{self.head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        length, chunked, close = 0, False, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value
            elif name == "connection":
                close = value == "close"
        if chunked:
            while size := int((await self.reader.readline()).split(b";")[0], 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readline()
        else:
            await self.reader.readexactly(length)
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def _phase(
    url: str,
    bodies: list[bytes],
    concurrency: int,
    max_requests: int,
    time_limit_s: float,
    headers: Mapping[str, str],
) -> tuple[list[float], int, float, float]:
    """Send up to ``max_requests`` requests from ``concurrency`` clients, one keep-alive connection each.

    Returns latencies, errors, wall time and this process's CPU time over the phase.
    """
    latencies: list[float] = []
    errors = 0
    sent = 0
    deadline = time.perf_counter() + time_limit_s
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80

    async def worker() -> None:
        nonlocal errors, sent
        conn = _Connection(host, port, headers)
        try:
            while sent < max_requests and time.perf_counter() < deadline:
                body = bodies[sent % len(bodies)]
                sent += 1
                t0 = time.perf_counter()
                try:
                    ok = await asyncio.wait_for(conn.post(body), 60.0) == 200
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                    ok = False
                    await conn.close()
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1
        finally:
            await conn.close()

    t_start, cpu_start = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - t_start, time.process_time() - cpu_start


def _gc_counters(url: str, headers: Mapping[str, str]) -> dict[str, Any]:
    """The server's (one worker's) full-GC counters so far, from /metadata."""
    try:
        meta = httpx.post(f"{url}/metadata", json={}, headers=dict(headers), timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return {k: v for k, v in (meta.get("runtime") or {}).items() if k.startswith("gc_")}


def worker_runtimes(
    url: str, workers: int, headers: Mapping[str, str] | None = None, tries: int = 40
) -> dict[int, dict]:
    """Each worker's ``/metadata`` runtime counters, by process id: every new connection reaches one worker
    (the kernel's choice), so ask on fresh connections until all ``workers`` answered (or ``tries`` ran out)."""
    seen: dict[int, dict] = {}
    for _ in range(tries):
        try:
            runtime = httpx.post(f"{url}/metadata", json={}, headers=dict(headers or {}), timeout=10).json()["runtime"]
        except (httpx.HTTPError, ValueError, KeyError):
            continue
        seen[int(runtime.get("pid", 0))] = runtime
        if len(seen) >= workers:
            break
    return seen


def run_load(
    url: str,
    *,
    touchpoints: int = 500,
    requests_c1: int = 300,
    requests_c16: int = 1600,
    batch_customers: int = 1000,
    batch_repeats: int = 3,
    time_limit_s: float = 45.0,
    seed: int = 7,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The load test against a running server at ``url``."""
    headers = dict(headers or {})
    rng = np.random.default_rng(seed)
    end = datetime(2026, 1, 1, tzinfo=UTC)
    singles = [
        json.dumps({"customers": [c], "cutoff": end.isoformat()}).encode()
        for c in synthetic_customers(64, touchpoints, rng, end=end)
    ]
    batch = json.dumps(
        {
            "customers": synthetic_customers(batch_customers, touchpoints, rng, end=end, prefix="batch"),
            "cutoff": end.isoformat(),
        }
    ).encode()
    asyncio.run(_phase(url, singles, 1, 30, time_limit_s, headers))  # warm-up
    out: dict[str, Any] = {}
    lat, err, wall, cpu = asyncio.run(_phase(url, singles, 1, requests_c1, time_limit_s, headers))
    out["c1"] = _summary(lat, err, wall, 1, cpu)
    lat, err, wall, cpu = asyncio.run(_phase(url, singles, 16, requests_c16, time_limit_s, headers))
    out["c16"] = _summary(lat, err, wall, 1, cpu)
    out["server_gc_after_c16"] = _gc_counters(url, headers)
    times, errors = [], 0
    with httpx.Client(
        base_url=url, timeout=120.0, headers={"content-type": "application/json", **headers}
    ) as c:
        for _ in range(batch_repeats):
            t0 = time.perf_counter()
            r = c.post("/score", content=batch)
            if r.status_code == 200 and r.json()["n_customers"] == batch_customers:
                times.append(time.perf_counter() - t0)
            else:
                errors += 1
    ms = 1000 * float(np.median(times)) if times else float("nan")
    # Same-run yardstick: what the standard library alone takes to decode this body into Python objects, the
    # least any Python service spends on it before validating or scoring anything.
    loads_ms = 1000 * float(np.median([_timed(json.loads, batch) for _ in range(batch_repeats)]))
    out["batch_1000"] = {
        "ms": round(ms, 1),
        "errors": errors,
        "repeats": batch_repeats,
        "customers": batch_customers,
        "request_mb": round(len(batch) / 1e6, 1),
        "customers_per_s": round(batch_customers / (ms / 1000), 1) if times else None,
        "json_loads_ms": round(loads_ms, 1),
        "over_json_loads": round(ms / loads_ms, 2) if times else None,
    }
    out["setup"] = {"touchpoints_per_customer": touchpoints, "request_shape": "columns", "seed": seed}
    return out


def _timed(fn, *args) -> float:
    """Seconds one call of ``fn(*args)`` takes (its result is dropped before the clock stops)."""
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


@contextlib.contextmanager
def running_floor(workers: int, log_path: Path | None = None) -> Iterator[str]:
    """Start the trivial floor service (``bentoml serve``, ``workers`` workers) on a free loopback port."""
    port = free_port()
    env = server_env(workers=workers)
    env["BENTOML_CONFIG_OVERRIDES"] = json.dumps({"services": {FLOOR_SERVICE_NAME: {"workers": int(workers)}}})
    command = [sys.executable, "-m", "bentoml", "serve", "training.bench.floor_service:FloorService",
               "--host", "127.0.0.1", "--port", str(port), "--working-dir", str(PROJECT_ROOT)]
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc, 180.0, None, workers)
        yield url
    finally:
        stop(proc)
        if log_path:
            log.close()


def run_floor_load(url: str, *, requests_c1: int, requests_c16: int, time_limit_s: float, seed: int) -> dict:
    """The same phases as :func:`run_load` (warm-up, c1, c16) against the floor service."""
    bodies = floor_bodies(64, seed)
    asyncio.run(_phase(url, bodies, 1, 30, time_limit_s, {}))  # warm-up
    out: dict[str, Any] = {}
    for name, clients, n in (("c1", 1, requests_c1), ("c16", 16, requests_c16)):
        lat, err, wall, cpu = asyncio.run(_phase(url, bodies, clients, n, time_limit_s, {}))
        out[name] = _summary(lat, err, wall, 1, cpu)
    return out


def bench_floor(workers: int, *, requests_c1: int, requests_c16: int, time_limit_s: float, seed: int) -> dict:
    """Start the floor service, load it like engage's, stop it; its figures with the load average."""
    import bentoml

    t0 = time.perf_counter()
    with running_floor(workers) as url:
        started_s = time.perf_counter() - t0
        out = run_floor_load(url, requests_c1=requests_c1, requests_c16=requests_c16,
                             time_limit_s=time_limit_s, seed=seed)
    out["server"] = {"workers": workers, "bentoml": bentoml.__version__, "start_to_ready_s": round(started_s, 1),
                     "model": "LightGBM classifier, 100 trees, 15 leaves, one row of 20 floats per request"}
    out["load_average"] = list(os.getloadavg())
    return out


def bench_serve(
    *,
    workers: int | None = 1,
    model_path: str | None = None,
    mlflow_config: str | None = None,
    gc_freeze: bool = True,
    touchpoints: int = 500,
    requests_c1: int = 300,
    requests_c16: int = 1600,
    batch_customers: int = 1000,
    time_limit_s: float = 45.0,
    seed: int = 7,
    log_path: Path | None = None,
    floor: bool = True,
) -> dict[str, Any]:
    """Start the real server on a free loopback port, run the load test, stop it; then (``floor``) the same load
    on the trivial BentoML floor service; returns the figures and engage's ratios to the floor.

    The model is the MLflow champion (``mlflow_config``, default ``./mlflow.yaml``) unless
    ``model_path`` names a model folder/file. ``workers=None`` starts one worker per usable CPU core.
    """
    import bentoml

    workers = workers or default_workers()
    settings = {
        "ENGAGE_MODEL_PATH": model_path,
        "ENGAGE_MLFLOW_CONFIG": mlflow_config,
        "ENGAGE_GC_FREEZE": "1" if gc_freeze else "0",
        "ENGAGE_DECISION_LOG": None,
        "ENGAGE_API_TOKEN": None,
        "ENGAGE_API_TOKEN_FILE": None,
    }
    t0 = time.perf_counter()
    with running_server(workers=workers, settings=settings, log_path=log_path) as url:
        started_s = time.perf_counter() - t0
        meta = httpx.post(f"{url}/metadata", json={}, timeout=10).json()
        result = run_load(
            url,
            touchpoints=touchpoints,
            requests_c1=requests_c1,
            requests_c16=requests_c16,
            batch_customers=batch_customers,
            time_limit_s=time_limit_s,
            seed=seed,
        )
        runtimes = worker_runtimes(url, workers)
        runtime = next(iter(runtimes.values()), {})
    result["server"] = {
        "workers": workers,
        "gc_freeze": gc_freeze,
        "bentoml": bentoml.__version__,
        "model_version": meta.get("model_version"),
        "start_to_ready_s": round(started_s, 1),
        **{k: v for k, v in runtime.items() if k.startswith("gc_")},
        # how the kernel spread the load: /score requests (all phases) per worker process
        "score_requests_per_worker": sorted((int(r.get("score_requests", 0)) for r in runtimes.values()), reverse=True),
        "own_listening_sockets": int(sum(r.get("own_listening_socket", 0) for r in runtimes.values())),
    }
    result["load_average"] = list(os.getloadavg())
    if floor:
        result["floor"] = bench_floor(workers, requests_c1=requests_c1, requests_c16=requests_c16,
                                      time_limit_s=time_limit_s, seed=seed)
        result["floor_ratios"] = floor_ratios(result, result["floor"])
    return result
