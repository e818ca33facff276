"""Running one ``engage`` command as a subprocess and measuring it: wall seconds and peak memory over its whole
process tree (the command plus any Dask scheduler and workers it starts), polled every ``POLL_SECONDS``.

Two peaks are kept: the tree's total resident memory (what the machine had to hold at once) and the largest
single process (each worker must stay under its limit, and no process may pass 12 GB).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

POLL_SECONDS = 0.2
MB = 1e6


@dataclass
class TreePeak:
    """The largest total and single-process resident memory seen so far (bytes)."""

    total: int = 0
    process: int = 0
    processes: int = 0
    samples: int = 0
    largest: dict[str, int] = field(default_factory=dict)


def tree_rss(pid: int) -> tuple[int, int, int, dict[str, int]]:
    """``(total RSS, largest single RSS, process count, RSS by process name)`` of ``pid`` and its descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0, 0, {}
    sizes: dict[str, int] = {}
    total = largest = 0
    for p in procs:
        try:
            rss = p.memory_info().rss
            name = " ".join(p.cmdline()[1:4])[:80] or p.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += rss
        largest = max(largest, rss)
        sizes[name] = max(sizes.get(name, 0), rss)
    return total, largest, len(procs), sizes


def _watch(pid: int, peak: TreePeak, done: threading.Event) -> None:
    while not done.is_set():
        total, largest, count, sizes = tree_rss(pid)
        peak.samples += 1
        peak.total = max(peak.total, total)
        peak.processes = max(peak.processes, count)
        if largest > peak.process:
            peak.process = largest
        for name, rss in sizes.items():
            peak.largest[name] = max(peak.largest.get(name, 0), rss)
        done.wait(POLL_SECONDS)


def run_measured(command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
                 log: Path | None = None) -> dict:
    """Run ``command`` to its end; its seconds, peak memory (tree total and largest process, MB), exit status,
    stdout (the command's JSON line, when it printed one) and the tail of stderr (also written to ``log``)."""
    import json

    peak, done = TreePeak(), threading.Event()
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    watcher = threading.Thread(target=_watch, args=(proc.pid, peak, done), daemon=True)
    watcher.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    done.set()
    watcher.join()
    if log is not None:
        log.write_text(err)
    result = {
        "seconds": round(seconds, 2),
        "peak_memory_mb": round(peak.total / MB, 1),
        "peak_process_mb": round(peak.process / MB, 1),
        "processes": peak.processes,
        "returncode": proc.returncode,
        "ok": proc.returncode == 0,
    }
    for text in (out.strip(), out.strip().rsplit("\n", 1)[-1]):  # the whole output is JSON, or its last line
        try:
            result["output"] = json.loads(text)
            break
        except json.JSONDecodeError:
            continue
    if proc.returncode != 0:
        result["error"] = err.strip()[-800:]
    return result
