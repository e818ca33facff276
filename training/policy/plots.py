"""Charts of a policy run: the off-policy value of each policy, the held-out uplift curve and the Qini curve.

Each ``draw_*`` draws on a given axis (a notebook's, or an off-screen figure's for the run's PNG files, see
:func:`training.plots.write_chart`).
"""

from __future__ import annotations

from pathlib import Path

from training.plots import write_chart


def draw_policy_value(ax, report: dict) -> None:
    """Bars of the off-policy DR incremental value per decision of each policy, with 95 % intervals."""
    off = report["off_policy"]["policies"]
    names = list(off)
    vals = [off[n]["dr_incremental"]["value"] for n in names]
    err = [
        [v - off[n]["dr_incremental"]["low"] for n, v in zip(names, vals, strict=True)],
        [off[n]["dr_incremental"]["high"] - v for n, v in zip(names, vals, strict=True)],
    ]
    ax.bar(names, vals, yerr=err, capsize=4)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("DR incremental value per decision")
    ax.set_title("Policy value vs no contact (held-out log, 95 % bootstrap)")
    ax.tick_params(axis="x", labelrotation=20)


def draw_uplift(ax, report: dict) -> None:
    """The held-out uplift curve: DR gain per decision vs share contacted, and random contact."""
    cur = report["uplift_curve"]
    ax.plot(cur["share"], cur["gain"], marker="o", ms=3, label="learned ranking, best action")
    ax.plot(cur["share"], cur["random"], ls="--", label="random contact")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="share of held-out decisions contacted", ylabel="DR gain per decision",
           title="Uplift curve (held-out log)")
    ax.legend()


def draw_qini(ax, report: dict) -> None:
    """The held-out Qini curve: incremental retained customers per decision vs share treated, and random."""
    q = report["qini"]
    ax.plot(q["fraction"], q["qini"], label=f"learned ranking (AUUC {q['auuc']:.4f}, Qini {q['qini_coefficient']:.4f})")
    ax.plot(q["fraction"], q["random"], ls="--", label="random targeting")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="share of held-out decisions treated (best estimated contact first)",
           ylabel="incremental retained per decision", title="Qini curve (held-out log)")
    ax.legend(fontsize="small")


def policy_plot(report: dict, path: str | Path) -> None:
    """:func:`draw_policy_value` as a PNG file."""
    write_chart(path, draw_policy_value, report, size=(7, 3.5))


def uplift_plot(report: dict, path: str | Path) -> None:
    """:func:`draw_uplift` as a PNG file."""
    write_chart(path, draw_uplift, report, size=(5, 3.5))


def qini_plot(report: dict, path: str | Path) -> None:
    """:func:`draw_qini` as a PNG file."""
    write_chart(path, draw_qini, report, size=(6, 4))
