"""Charts logged with a policy run: the off-policy value of each policy, and the held-out uplift curve."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def policy_plot(report: dict, path: str | Path) -> None:
    """Bar chart of the off-policy DR incremental values with their 95 % intervals."""
    plt = _pyplot()
    off = report["off_policy"]["policies"]
    names = list(off)
    vals = [off[n]["dr_incremental"]["value"] for n in names]
    err = [
        [v - off[n]["dr_incremental"]["low"] for n, v in zip(names, vals, strict=True)],
        [off[n]["dr_incremental"]["high"] - v for n, v in zip(names, vals, strict=True)],
    ]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(names, vals, yerr=err, capsize=4)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("DR incremental value per decision")
    ax.set_title("Policy value vs no contact (held-out log, 95 % bootstrap)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def uplift_plot(report: dict, path: str | Path) -> None:
    """The held-out uplift (Qini-style) curve: DR gain per decision vs share contacted, and random."""
    plt = _pyplot()
    cur = report["uplift_curve"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(cur["share"], cur["gain"], marker="o", ms=3, label="learned ranking, best action")
    ax.plot(cur["share"], cur["random"], ls="--", label="random contact")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("share of held-out decisions contacted")
    ax.set_ylabel("DR gain per decision")
    ax.set_title("Uplift curve (held-out log)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
