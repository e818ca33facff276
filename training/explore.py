"""Summaries the notebooks look at: features against the simulator's truth, ladder funnels, micro-moment intent,
what a policy's constraints did, defense targets, and the CLI run from a notebook.

Notebooks only call these and plot what they return (:mod:`training.plots`), so that nothing a notebook shows
is computed only there.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
MOMENTS: tuple[str, ...] = ("know", "go", "do", "buy")


def shared_datasets() -> Path:
    """Where the real public datasets are read from (``../shared/datasets`` beside the project)."""
    return PROJECT.parent / "shared" / "datasets"


def by_group(values: pd.Series, groups: pd.Series) -> dict[str, np.ndarray]:
    """``values`` split by ``groups`` (aligned on the index), groups in sorted order, missing values dropped."""
    joined = pd.DataFrame({"v": values, "g": groups}).dropna()
    return {str(g): part["v"].to_numpy(float) for g, part in joined.groupby("g", observed=True, sort=True)}


def ladder_funnel(codes: pd.Series, rungs: Sequence[str]) -> pd.Series:
    """Customers who reached each rung of a ladder or a higher one (``codes``: 0 = first rung)."""
    c = pd.to_numeric(codes, errors="coerce").to_numpy(float)
    return pd.Series([int(np.sum(c >= k)) for k in range(len(rungs))], index=list(rungs), name="customers")


def intent_by_stage(F: pd.DataFrame, stage: pd.Series, window: str = "30d") -> pd.DataFrame:
    """Mean number of signals of each micro-moment (know, go, do, buy) per customer in the ``window``
    (``7d``, ``30d``, ``total``), by ``stage`` (e.g. the simulator's true intent stage); rows are stages."""
    cols = {m: f"intent_{m}_{window}" for m in MOMENTS if f"intent_{m}_{window}" in F}
    frame = F[list(cols.values())].rename(columns={v: k for k, v in cols.items()})
    return frame.groupby(stage.reindex(F.index).rename("stage"), observed=True).mean()


def truth_frame(tables) -> pd.DataFrame:
    """The simulator's truth indexed by ``customer_id`` (text), to join with a feature table."""
    truth = tables.truth
    return truth.set_index(truth["customer_id"].astype(str)).drop(columns="customer_id")


def constraint_summary(report: dict) -> pd.DataFrame:
    """Per decision scenario of a policy report: contacts, cost, violations and each no-contact reason's count."""
    rows = {}
    for name, sc in report["scenarios"].items():
        row = {"customers": sc["customers"], "contacts": sc["contacts"], "contact_cost": sc.get("contact_cost"),
               "defense_targets": sc["defense_targets"],
               "violations": int(sum(sc["constraint_violations"].values()))}
        row.update({f"no_contact: {k}": v for k, v in sc["no_contact_reasons"].items()})
        rows[name] = row
    return pd.DataFrame(rows).fillna(0)


def limit_use(report: dict) -> pd.DataFrame:
    """Per scenario and global limit: the amount used and the cap (infinite caps left out)."""
    rows = [
        {"scenario": name, "limit": lim, "used": v["used"], "cap": v["cap"]}
        for name, sc in report["scenarios"].items()
        for lim, v in sc.get("limits", {}).items()
        if np.isfinite(v["cap"])
    ]
    return pd.DataFrame(rows, columns=["scenario", "limit", "used", "cap"])


def truth_values(report: dict, scenario: str = "configured") -> pd.Series:
    """A scenario's true total value over no contact on simulated data: the policy, baselines and the oracle."""
    truth = report["scenarios"][scenario].get("truth") or {}
    if not truth:
        return pd.Series(dtype=float)
    values = {"learned policy": truth["policy_value"], **truth["baselines"],
              "no contact": truth.get("no_contact_value"), "oracle": truth["oracle_value"]}
    return pd.Series({k: v for k, v in values.items() if v is not None}, dtype=float).sort_values()


def defense_targets(decisions: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """The back-door defense targets of a decision table, highest expected incremental value first."""
    ev = "nba_expected_incremental_value" if "nba_expected_incremental_value" in decisions else \
        "expected_incremental_value"
    keep = [c for c in ("customer_id", "churn_probability", "nba_action", "action", ev, "defense_reasons")
            if c in decisions.columns]
    targets = decisions[decisions["defense_target"].astype(bool)]
    return targets.sort_values(ev, ascending=False)[keep].head(top).reset_index(drop=True)


def engage_command(*args: str, cwd: str | Path | None = None, check: bool = True) -> str:
    """Run ``engage ARGS`` (the CLI, with this interpreter) and return what it printed; raise when it fails."""
    done = subprocess.run([sys.executable, "-m", "training.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)
    if check and done.returncode != 0:
        raise RuntimeError(f"engage {' '.join(map(str, args))} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def reason_table(scored: pd.DataFrame, customers: Sequence[str]) -> pd.DataFrame:
    """The churn reason codes of some scored customers, one row per customer and reason."""
    rows = scored.set_index(scored["customer_id"].astype(str)).loc[list(customers)]
    return pd.DataFrame(
        [
            {"customer_id": cid, "churn_probability": row["churn_probability"], **reason}
            for cid, row in rows.iterrows()
            for reason in (row["churn_reasons"] or [])
        ]
    )
