"""``engage bench policy-scenarios``: the next-best-action policy over the simulator's scenario matrix.

Each scenario × seed is one cell (:func:`training.bench.scenario_cell.run_cell`). Per scenario the figures
are averaged over seeds; the summary checks the issue's targets across the matrix:

- in every scenario the learned policy's true value ≥ the best of no contact, the best single action and
  the top churn scores on their most-opened channel, at the policy's own contact volume, with no constraint
  violation (a policy that contacts nobody ties them all at 0, so the summary lists such cells, and also
  compares the policy with the best single action sent to every eligible customer);
- mean captured uplift ≥ 0.85 of the observable ceiling (the mean captured share of the oracle over the
  ceiling's mean share: a single cell's ratio explodes where its ceiling is near 0);
- the DR interval holds the true value in ≥ 90 % of the cells;
- churn AUC ≥ the churn ceiling − 0.01 with ECE ≤ 0.02.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from features.sources.simulation.scenarios import SCENARIOS, scenario
from training.bench.scenario_cell import run_cell

log = logging.getLogger("engage.bench")

TARGETS = {
    "captured_vs_ceiling": 0.85,
    "dr_coverage": 0.90,
    "churn_auc_below_ceiling": 0.01,
    "churn_ece": 0.02,
}


def parse_list(text: str | None, what: str, parse: Callable = str) -> list | None:
    """A comma-separated option as a list (``None`` when not given); a clear error naming the bad item."""
    if text is None:
        return None
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise ValueError(f"--{what}: give at least one value")
    try:
        return [parse(x) for x in items]
    except ValueError as exc:
        raise ValueError(f"--{what} {text!r}: {exc}") from None


def _mean(values: list) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _median(values: list) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.median(kept)) if kept else None


def scenario_summary(cells: list[dict]) -> dict:
    """One scenario's cells (its seeds) averaged, with how many cells met each bar."""
    pol = [c["policy"] for c in cells]
    churn = [c["churn"] for c in cells]
    out = {
        "description": scenario(cells[0]["scenario"]).description,
        "seeds": [c["seed"] for c in cells],
        "contacts": _mean([p["contacts"] for p in pol]),
        "true_value": _mean([p["true_value"] for p in pol]),
        "oracle_value": _mean([p["oracle_value"] for p in pol]),
        "best_baseline_value": _mean([p["best_baseline_value"] for p in pol]),
        "best_baselines": sorted({p["best_baseline"] for p in pol}),
        "beats_best_baseline_in": sum(p["beats_best_baseline"] for p in pol),
        "beats_best_single_action_to_all_in": sum(p["beats_best_single_action_to_all"] for p in pol),
        "violations_total": sum(p["violations_total"] for p in pol),
        "captured_uplift_ratio": _mean([p["captured_uplift_ratio"] for p in pol]),
        "ceiling_captured_uplift_ratio": _mean([p["ceiling_captured_uplift_ratio"] for p in pol]),
        "captured_vs_ceiling": _mean([p["captured_vs_ceiling"] for p in pol]),
        "dr_contains_truth_in": sum(p["dr_contains_truth"] for p in pol),
        "churn_auc": {k: _mean([c[k]["auc"] for c in churn]) for k in ("model", "ceiling", "oracle")},
        "churn_ece": _mean([c["model"]["ece"] for c in churn]),
        "churn_meets_target_in": sum(c["meets_target"] for c in churn),
        "cells": len(cells),
        "seconds_per_cell": _mean([c["seconds"]["total"] for c in cells]),
    }
    objectives = [c["scenario_objective"] for c in cells if c["scenario_objective"]]
    if objectives:
        out["scenario_objective"] = {
            "objective": objectives[0]["objective"],
            "trained_for": objectives[0]["trained_for"],
            "captured_uplift_ratio": _mean([o["captured_uplift_ratio"] for o in objectives]),
            "ceiling_captured_uplift_ratio": _mean([o["ceiling_captured_uplift_ratio"] for o in objectives]),
            "beats_best_baseline_in": sum(o["beats_best_baseline"] for o in objectives),
            "beats_best_single_action_to_all_in": sum(o["beats_best_single_action_to_all"] for o in objectives),
        }
    return out


def matrix_summary(cells: list[dict]) -> dict:
    """The issue's targets across every cell, each with its measured figure and whether it holds."""
    pol = [c["policy"] for c in cells]
    captured = _mean([p["captured_uplift_ratio"] for p in pol])
    reach = _mean([p["ceiling_captured_uplift_ratio"] for p in pol])
    # mean captured uplift over the mean ceiling: a cell's own ratio explodes where its ceiling is near 0
    ratio = None if captured is None or reach is None or reach <= 0 else captured / reach
    coverage = float(np.mean([p["dr_contains_truth"] for p in pol]))
    # with no contact the policy's value and its DR estimate are both exactly 0: such a cell proves nothing
    acting = [p["dr_contains_truth"] for p in pol if p["contacts"] > 0]
    return {
        "cells": len(cells),
        "learned_ge_best_baseline": {
            "cells_met": sum(p["beats_best_baseline"] for p in pol),
            "failed": [f"{c['scenario']}/{c['seed']}" for c in cells if not c["policy"]["beats_best_baseline"]],
            "holds": all(p["beats_best_baseline"] for p in pol),
        },
        # at the policy's own volume: a policy that contacts nobody ties every baseline at 0
        "cells_with_no_contacts": [f"{c['scenario']}/{c['seed']}" for c in cells if c["policy"]["contacts"] == 0],
        "learned_ge_best_single_action_to_all": {
            "cells_met": sum(p["beats_best_single_action_to_all"] for p in pol),
            "failed": [f"{c['scenario']}/{c['seed']}" for c in cells
                       if not c["policy"]["beats_best_single_action_to_all"]],
        },
        "constraint_violations": {"total": sum(p["violations_total"] for p in pol),
                                  "holds": all(p["violations_total"] == 0 for p in pol)},
        "captured_vs_ceiling": {
            "mean_captured_over_mean_ceiling": ratio,
            "median_of_cells": _median([p["captured_vs_ceiling"] for p in pol]),
            "target": TARGETS["captured_vs_ceiling"],
            "holds": ratio is not None and ratio >= TARGETS["captured_vs_ceiling"],
        },
        "captured_uplift_ratio_mean": captured,
        "ceiling_captured_uplift_ratio_mean": reach,
        "dr_coverage": {"share": coverage, "target": TARGETS["dr_coverage"],
                        "share_among_cells_with_contacts": float(np.mean(acting)) if acting else None,
                        "holds": coverage >= TARGETS["dr_coverage"]},
        "churn": {
            "cells_met": sum(c["churn"]["meets_target"] for c in cells),
            "cells_met_auc": sum(c["churn"].get("meets_auc_target", False) for c in cells),
            "cells_met_ece": sum(c["churn"].get("meets_ece_target", False) for c in cells),
            "mean_model_minus_ceiling_auc": _mean([c["churn"]["model_minus_ceiling_auc"] for c in cells]),
            "max_ece": max(c["churn"]["model"]["ece"] for c in cells),
            "target": f"AUC >= ceiling - {TARGETS['churn_auc_below_ceiling']}, ECE <= {TARGETS['churn_ece']}",
            "holds": all(c["churn"]["meets_target"] for c in cells),
        },
        "seconds_per_cell_mean": _mean([c["seconds"]["total"] for c in cells]),
    }


def _log_cell(cell: dict) -> None:
    """One line of a finished cell's headline figures (a long run's log keeps them if it is stopped)."""
    p = cell["policy"]
    log.info(
        "scenario %s, seed %d: done in %.0f s; learned %.1f vs best baseline %s %.1f (oracle %.1f), %d contacts, "
        "captured %s of the oracle (ceiling %s), DR holds the truth: %s, violations %d; churn AUC %.3f "
        "(ceiling %s, oracle %s), ECE %.3f",
        cell["scenario"], cell["seed"], cell["seconds"]["total"], p["true_value"], p["best_baseline"],
        p["best_baseline_value"], p["oracle_value"], p["contacts"], _fmt(p["captured_uplift_ratio"]),
        _fmt(p["ceiling_captured_uplift_ratio"]), p["dr_contains_truth"], p["violations_total"],
        cell["churn"]["model"]["auc"], _fmt(cell["churn"]["ceiling"]["auc"]), _fmt(cell["churn"]["oracle"]["auc"]),
        cell["churn"]["model"]["ece"],
    )


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def bench_policy_scenarios(
    customers: int,
    seeds: list[int],
    scenarios: list[str] | None = None,
    *,
    n_boot: int = 200,
    on_cell: Callable[[list[dict]], None] | None = None,
) -> dict:
    """Run every scenario × seed cell; per-scenario figures, the matrix summary and every cell.

    ``on_cell`` is called with the cells so far after each one (e.g. to save a long run as it goes).
    """
    names = scenarios or list(SCENARIOS)
    for name in names:
        scenario(name)  # an unknown name fails before any cell runs
    t0 = time.perf_counter()
    cells = []
    for name in names:
        for seed in seeds:
            log.info("scenario %s, seed %d: %d customers", name, seed, customers)
            cells.append(run_cell(name, customers, seed, n_boot=n_boot, progress=lambda msg: log.info("  %s", msg)))
            _log_cell(cells[-1])
            if on_cell is not None:
                on_cell(cells)
    by_scenario = {n: scenario_summary([c for c in cells if c["scenario"] == n]) for n in names}
    return {
        "customers": customers,
        "seeds": seeds,
        "trained_objective": {n: scenario(n).objective for n in names},  # each scenario trains for its own
        "summary": matrix_summary(cells),
        "scenarios": by_scenario,
        "cells": cells,
        "seconds": round(time.perf_counter() - t0, 1),
    }
