"""The scaling curve of ``engage bench scale --sizes ... --plot FILE``: seconds and peak memory per step against
customers, side by side."""

from __future__ import annotations

from pathlib import Path


def draw_scaling(result: dict, path: str | Path) -> Path:
    """Two panels (log-log): wall seconds and peak memory of the process tree per step, against customers."""
    from matplotlib.figure import Figure

    runs = result.get("sizes") or [result]
    fig = Figure(figsize=(11, 4.5))
    seconds, memory = fig.subplots(1, 2)
    steps = list(runs[-1]["steps"])
    x = [run["customers"] for run in runs]
    for step in steps:
        done = [run["steps"].get(step, {}) for run in runs]
        secs = [s.get("seconds") if s.get("ok") else None for s in done]  # a failed step is no point
        mem = [s.get("peak_memory_mb") if s.get("ok") else None for s in done]
        seconds.plot(x, secs, marker="o", label=step)
        memory.plot(x, [m / 1000 if m is not None else None for m in mem], marker="o", label=step)
    for ax, label in ((seconds, "wall seconds"), (memory, "peak memory of the process tree (GB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("customers")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    seconds.legend(fontsize=8)
    fig.suptitle(f"engage bench scale (Dask engine, {result['machine']['cores']} cores, "
                 f"{result['machine']['memory_gb']} GB)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)
