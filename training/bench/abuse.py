"""Abuse probes of the real scoring server: ``engage bench abuse [--report FILE]``.

Starts ``bentoml serve`` on a free loopback port (as ``engage bench serve`` does) and measures what the request
limits and the metrics labels are for:

- ``refuse_413``: how fast a body over ``ENGAGE_MAX_BODY_MB`` is refused (the client declares the size and
  sends only the first part; the answer must not wait for the rest), and a request over the touchpoint limit;
- ``starvation``: latency of small requests from ``concurrency`` clients before and while one maximal request
  (exactly at both limits) is read, validated and scored;
- ``metrics_cardinality``: ``/metrics`` size and series, and each worker's resident memory, before and after
  ``n`` requests to random paths without a token.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np

from training.bench.serve import _Connection, default_workers, running_server, synthetic_customers

END = datetime(2026, 1, 1, tzinfo=UTC)


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _ms(values: Sequence[float]) -> dict[str, float]:
    lat = np.array(values, dtype=float) * 1000 if len(values) else np.array([np.nan])
    return {"n": len(values), "p50_ms": round(float(np.percentile(lat, 50)), 1),
            "p99_ms": round(float(np.percentile(lat, 99)), 1), "max_ms": round(float(np.max(lat)), 1)}


def _declared_too_large(url: str, declared: int, headers: Mapping[str, str]) -> tuple[int, float]:
    """Declare a ``declared``-byte body, send 64 KB of it, read the status: (status, seconds)."""
    host, port = _host_port(url)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head = (f"POST /score HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{extra}"
            f"Content-Length: {declared}\r\n\r\n").encode()
    t0 = time.perf_counter()
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(head + b'{"customers": [' + b" " * 65_536)
        status = int(conn.makefile("rb").readline().split()[1])
    return status, time.perf_counter() - t0


def refuse_413(url: str, max_body_bytes: int, over_touchpoints: bytes, headers: Mapping[str, str],
               repeats: int = 20) -> dict[str, Any]:
    """Latency of the 413 for a declared body over the limit, and for a request over the touchpoint limit."""
    body_times, statuses = [], set()
    for _ in range(repeats):
        status, seconds = _declared_too_large(url, 2 * max_body_bytes, headers)
        statuses.add(status)
        body_times.append(seconds)
    tp_times = []
    with httpx.Client(base_url=url, timeout=120, headers={"content-type": "application/json", **headers}) as c:
        for _ in range(max(3, repeats // 5)):
            t0 = time.perf_counter()
            r = c.post("/score", content=over_touchpoints)
            tp_times.append(time.perf_counter() - t0)
            statuses.add(r.status_code)
    return {"statuses": sorted(statuses), "body_over_limit": _ms(body_times),
            "touchpoints_over_limit": {**_ms(tp_times), "request_mb": round(len(over_touchpoints) / 1e6, 1)}}


async def _small_load(url: str, bodies: list[bytes], concurrency: int, headers: Mapping[str, str],
                      stop: asyncio.Event) -> list[tuple[float, float, int]]:
    """Small requests from ``concurrency`` keep-alive clients until ``stop``: (start, seconds, status) each."""
    host, port = _host_port(url)
    out: list[tuple[float, float, int]] = []

    async def client(k: int) -> None:
        conn = _Connection(host, port, headers)
        i = k
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    status = await asyncio.wait_for(conn.post(bodies[i % len(bodies)]), 60)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                    status = 0
                    await conn.close()
                out.append((t0, time.perf_counter() - t0, status))
                i += concurrency
        finally:
            await conn.close()

    await asyncio.gather(*(client(k) for k in range(concurrency)))
    return out


async def _starve(url: str, big: bytes, bodies: list[bytes], concurrency: int, headers: Mapping[str, str],
                  baseline_s: float) -> dict[str, Any]:
    stop = asyncio.Event()
    load = asyncio.ensure_future(_small_load(url, bodies, concurrency, headers, stop))
    await asyncio.sleep(baseline_s)
    t_big = time.perf_counter()
    async with httpx.AsyncClient(timeout=300) as c:
        r = await c.post(f"{url}/score", content=big, headers={"content-type": "application/json", **headers})
    t_end = time.perf_counter()
    await asyncio.sleep(0.5)
    stop.set()
    samples = await load
    before = [s for t, s, _ in samples if t + s < t_big]
    during = [s for t, s, _ in samples if t + s > t_big and t < t_end]
    return {"big_status": r.status_code, "big_ms": round(1000 * (t_end - t_big), 1),
            "big_mb": round(len(big) / 1e6, 1), "concurrency": concurrency,
            "small_before": _ms(before), "small_during": _ms(during),
            "small_errors": sum(1 for *_, status in samples if status != 200)}


def starvation(url: str, max_touchpoints: int, headers: Mapping[str, str], *, concurrency: int = 8,
               touchpoints: int = 500, small_touchpoints: int = 100, seed: int = 7) -> dict[str, Any]:
    """Small requests' latency before and while one maximal request (``max_touchpoints`` in customers of
    ``touchpoints`` each, columns shape) is scored."""
    rng = np.random.default_rng(seed)
    n_big = max(1, max_touchpoints // touchpoints)
    big = json.dumps({"customers": synthetic_customers(n_big, touchpoints, rng, end=END, prefix="big"),
                      "cutoff": END.isoformat()}).encode()
    bodies = [json.dumps({"customers": [c], "cutoff": END.isoformat()}).encode()
              for c in synthetic_customers(32, small_touchpoints, rng, end=END, prefix="small")]
    return asyncio.run(_starve(url, big, bodies, concurrency, headers, baseline_s=3.0))


def worker_pids(server_pid: int) -> list[int]:
    """The BentoML worker processes of a server (the supervisor's children with a worker id)."""
    import psutil

    return sorted(p.pid for p in psutil.Process(server_pid).children(recursive=True)
                  if "--worker-id" in " ".join(p.cmdline()))


def _state(url: str, pids: Sequence[int]) -> dict[str, Any]:
    import psutil

    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {"metrics_bytes": len(text.encode()),
            "metrics_series": sum(1 for line in text.splitlines() if line and not line.startswith("#")),
            "worker_rss_mb": [round(psutil.Process(pid).memory_info().rss / 2**20, 1) for pid in pids]}


async def _random_paths(url: str, n: int, concurrency: int) -> dict[int, int]:
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as c:
        async def one(k: int) -> None:
            r = await c.get(f"/{secrets.token_hex(8)}/{k}-{secrets.token_urlsafe(12)}")
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        for start in range(0, n, 200):
            await asyncio.gather(*(one(k) for k in range(start, min(n, start + 200))))
    return statuses


def metrics_cardinality(url: str, pids: Sequence[int], n: int = 5_000, concurrency: int = 16) -> dict[str, Any]:
    """``/metrics`` and worker memory before and after ``n`` random-path requests (no token)."""
    asyncio.run(_random_paths(url, 10, concurrency))  # the one "unknown path" series exists from here on
    before = _state(url, pids)
    statuses = asyncio.run(_random_paths(url, n, concurrency))
    after = _state(url, pids)
    return {"requests": n, "statuses": statuses, "before": before, "after": after,
            "metrics_growth_pct": round(100 * (after["metrics_bytes"] / before["metrics_bytes"] - 1), 2),
            "series_growth_pct": round(100 * (after["metrics_series"] / before["metrics_series"] - 1), 2),
            "rss_growth_pct": [round(100 * (a / b - 1), 2)
                               for a, b in zip(after["worker_rss_mb"], before["worker_rss_mb"], strict=True)]}


def bench_abuse(*, workers: int | None = None, model_path: str | None = None, mlflow_config: str | None = None,
                settings: Mapping[str, str] | None = None, n_paths: int = 5_000,
                log_path: Path | None = None) -> dict[str, Any]:
    """Start the real server, run the three probes, stop it; returns the figures."""
    workers = workers or default_workers()
    env = {"ENGAGE_MODEL_PATH": model_path, "ENGAGE_MLFLOW_CONFIG": mlflow_config, "ENGAGE_DECISION_LOG": None,
           "ENGAGE_API_TOKEN": None, "ENGAGE_API_TOKEN_FILE": None, **(settings or {})}
    with running_server(workers=workers, settings=env, log_path=log_path) as url:
        limits = httpx.post(f"{url}/metadata", json={}, timeout=30).json()["limits"]
        max_touchpoints = int(limits["max_request_touchpoints"])
        over = json.dumps({"customers": synthetic_customers(
            max_touchpoints // 500 + 1, 500, np.random.default_rng(1), end=END, prefix="over")}).encode()
        pids = worker_pids(url.pid)
        out = {"refuse_413": refuse_413(url, int(limits["max_body_bytes"]), over, {}),
               "starvation": starvation(url, max_touchpoints, {}),
               "metrics_cardinality": metrics_cardinality(url, pids, n_paths)}
    out["server"] = {"workers": workers, **limits}
    return out
