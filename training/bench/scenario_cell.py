"""One cell of the policy scenario matrix: simulate a scenario, train churn and the policy, judge both by the truth.

The training is the one ``engage train policy`` runs, without MLflow: a churn model (and its feature pipeline)
fitted in-process as ``engage train churn`` fits it, then :func:`training.policy.train.train_and_evaluate`
on the same pipeline. The learned policy decides at the truth's cutoff (the churn model's scores rank the
top-churn baseline) and is judged on the scenario's truth: its true value against the oracle, the
observable ceiling (:func:`training.policy.ceiling.observable_ceiling`) and the baselines at its own contact
volume, constraint violations, and whether the DR interval of a randomised campaign drawn from the truth holds
the true value. The churn model is reported beside its ceiling and the oracle.

Every scenario's policy is trained for that scenario's own objective (retention, or a visit or spend campaign
with its outcome window), as ``engage train policy --objective`` trains it. The ``policy`` figures value it
on the retention truth; for a campaign scenario it is also valued under its own objective, beside that
objective's oracle and ceiling.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from features.contract.catalogue import Catalogue, load_catalogue
from features.contract.cutoffs import evaluation_cutoff
from features.contract.schema import Tables
from features.decision.config import PolicyConfig, load_policy_config
from features.decision.rule import total_value
from features.sources.simulation.config import SimConfig
from features.sources.simulation.scenarios import scenario, scenario_config
from features.sources.simulation.world import simulate_world
from training.churn.ceiling import side_by_side
from training.churn.split import ChurnSettings
from training.churn.train import train_churn
from training.policy.baselines import baseline_choices
from training.policy.ceiling import observable_ceiling
from training.policy.config import PolicyTrainConfig
from training.policy.evaluate import CutoffDecisions, decide_at_cutoff, decisions_report
from training.policy.train import train_and_evaluate
from training.policy.truth import truth_comparison, truth_ev, value_comparison

# The baselines the learned policy must match at its own contact volume (random is reported, not a bar).
BAR_BASELINES: tuple[str, ...] = ("no_contact", "best_single_action", "top_churn_most_opened")


@dataclass(frozen=True)
class CellSetup:
    """How one cell trains: the world, and the churn and policy settings its history allows."""

    name: str
    seed: int
    world: SimConfig
    churn: ChurnSettings
    train: PolicyTrainConfig
    policy: PolicyConfig

    @classmethod
    def of(cls, name: str, customers: int, seed: int, *, n_boot: int) -> CellSetup:
        """Horizons follow the world's label horizon; a short history trains churn on shorter, denser cutoffs."""
        world = scenario_config(name, n_customers=customers, seed=seed)
        churn = {"horizon_days": world.horizon_days, "seed": seed}
        if world.days < 2 * world.horizon_days + 90:
            churn.update(min_history_days=14, cutoff_step_days=7)
        train = PolicyTrainConfig(seed=seed, n_boot=n_boot)
        sc = scenario(name)
        horizon = world.horizon_days if sc.objective == "retention" else sc.objective_days
        policy = load_policy_config(overrides={"objective": sc.objective, "horizon_days": horizon})
        return cls(name, seed, world, ChurnSettings(**churn), train, policy)


class Stopwatch:
    """Seconds spent in each named step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] = round(now - self._t, 1)
        self._t = now


def _churn_figures(report: dict) -> dict:
    """Model / ceiling / oracle of the churn run, with the issue's bar (AUC ≥ ceiling − 0.01, ECE ≤ 0.02)."""
    out = side_by_side(report)
    gap = out["model_minus_ceiling_auc"]
    out["meets_auc_target"] = bool(gap is not None and gap >= -0.01)
    out["meets_ece_target"] = bool(out["model"]["ece"] <= 0.02)
    out["meets_target"] = out["meets_auc_target"] and out["meets_ece_target"]
    return out


def _bar(values: dict) -> dict:
    """The learned value against the best bar baseline (no contact counts as 0)."""
    bars = {"no_contact": 0.0, **{k: v for k, v in values["baselines"].items() if k in BAR_BASELINES}}
    best = max(bars, key=bars.get)
    return {
        "best_baseline": best,
        "best_baseline_value": bars[best],
        "beats_best_baseline": bool(values["policy_value"] >= bars[best]),
        # beside the bar: the single action to everyone, at its own (larger) volume
        "beats_best_single_action_to_all": bool(
            values["policy_value"] >= values["baselines"].get("best_single_action_to_all", -np.inf)
        ),
    }


def _ceiling_ratio(captured: float | None, ceiling: dict) -> float | None:
    """Captured uplift as a share of what the observable ceiling captures (active customers, as the policy)."""
    reach = ceiling["active_only"]["captured_uplift_ratio"]
    return None if captured is None or reach is None or reach <= 0 else captured / reach


def _single_action_to_all(d: CutoffDecisions, ev: np.ndarray, cat: Catalogue, rng: np.random.Generator) -> float:
    """True value of the hindsight-best single action given to every eligible customer (within the limits):
    the campaign a marketer runs without a model, whatever the learned policy's volume."""
    dd = d.decided
    every = baseline_choices(dd.F, dd.eligible, cat, dd.churn, len(dd.choice), dd.A, dd.b, rng, ev_single=ev)
    return total_value(ev, every["best_single_action"])


def _chosen_final(selection: dict) -> str:
    """The effect model's final stage that training kept: the best validation DR gain."""
    return max(selection, key=lambda k: selection[k]["validation_dr_gain_per_row"])


def _policy_figures(
    d: CutoffDecisions, truth: dict, ceiling: dict, report: dict, decided_report: dict
) -> dict:
    """The learned policy's figures against the truth, the ceiling and the baselines."""
    violations = decided_report["constraint_violations"]
    check = truth["ope_check"]
    return {
        "contacts": decided_report["contacts"],
        "chosen_final": _chosen_final(report["model_selection"]),
        "threshold": report["selected_threshold"],
        "training_rows": report["training_rows"],
        "true_value": truth["policy_value"],
        "oracle_value": truth["oracle_value"],
        "baselines": {"no_contact": 0.0, **truth["baselines"]},
        "best_single_action": truth["best_single_action"],
        **_bar(truth),
        "constraint_violations": violations,
        "violations_total": int(sum(violations.values())),
        "captured_uplift_ratio": truth["captured_uplift_ratio"],
        "ceiling_captured_uplift_ratio": ceiling["active_only"]["captured_uplift_ratio"],
        "ceiling_all_eligible_captured_uplift_ratio": ceiling["all_eligible"]["captured_uplift_ratio"],
        "captured_vs_ceiling": _ceiling_ratio(truth["captured_uplift_ratio"], ceiling),
        "dr_interval": check["dr_incremental_per_customer"],
        "true_incremental_per_customer": check["true_incremental_per_customer"],
        "dr_contains_truth": bool(check["contains_true_value"]),
        "share_harmed_true": truth["share_harmed_true"],
    }


def _scenario_objective(
    name: str,
    tables: Tables,
    d: CutoffDecisions,
    cat: Catalogue,
    config: PolicyConfig,
    cutoff: pd.Timestamp,
    rng: np.random.Generator,
) -> dict | None:
    """The learned policy valued under a campaign scenario's own objective; ``None`` for retention."""
    sc = scenario(name)
    if sc.objective == "retention":
        return None
    ev = truth_ev(tables.truth, d.decided.customers, cat, sc.objective, margin=config.value.margin)
    values, _ = value_comparison(d.decided, ev, cat, rng)
    values["baselines"]["best_single_action_to_all"] = _single_action_to_all(d, ev, cat, rng)
    ceiling = observable_ceiling(tables, cutoff, cat, config, rng, objective=sc.objective)
    return {
        "objective": sc.objective,
        "objective_days": sc.objective_days,
        "trained_for": config.objective,
        **{k: values[k] for k in ("policy_value", "oracle_value", "captured_uplift_ratio", "best_single_action")},
        "baselines": {"no_contact": 0.0, **values["baselines"]},
        **_bar(values),
        "ceiling_captured_uplift_ratio": ceiling["active_only"]["captured_uplift_ratio"],
        "captured_vs_ceiling": _ceiling_ratio(values["captured_uplift_ratio"], ceiling),
    }


def run_cell(name: str, customers: int, seed: int, *, n_boot: int = 200, progress=None) -> dict:
    """Simulate scenario ``name`` with ``customers`` and ``seed``, train churn and the policy, judge both."""
    setup = CellSetup.of(name, customers, seed, n_boot=n_boot)
    cat, pconfig = load_catalogue(), setup.policy
    rng = np.random.default_rng(seed)
    watch = Stopwatch()
    tables = simulate_world(setup.world, np.random.default_rng(seed))
    watch.lap("simulate")
    churn = train_churn(tables, setup.churn, np.random.default_rng(seed), dataset=name)
    watch.lap("churn")
    model, report = train_and_evaluate(
        tables, cat, pconfig, setup.train, pipeline=churn.system.pipeline, scenarios={"configured": pconfig},
        progress=progress,
    )
    watch.lap("policy")
    cutoff = evaluation_cutoff(tables)
    F = churn.system.features(tables, cutoff).loc[tables.customers["customer_id"].astype(str)]
    churn_p = churn.system.churn_model.predict_proba(F)
    config = replace(pconfig, min_incremental_value=max(pconfig.min_incremental_value,
                                                        model.config.min_incremental_value))
    d = decide_at_cutoff(model, tables, cutoff, config, pipeline=churn.system.pipeline, churn_probability=churn_p)
    truth = truth_comparison(d.decided, tables.truth, cat, rng, n_boot)
    truth["baselines"]["best_single_action_to_all"] = _single_action_to_all(
        d, truth_ev(tables.truth, d.decided.customers, cat), cat, rng
    )
    decided_report = decisions_report(d, model, config, cutoff)
    watch.lap("evaluate")
    # the ceiling chooses its own threshold (the configured one), not the learned policy's
    ceiling = observable_ceiling(tables, cutoff, cat, pconfig, rng)
    watch.lap("ceiling")
    objective = _scenario_objective(name, tables, d, cat, pconfig, cutoff, rng)
    watch.lap("scenario_objective")
    return {
        "scenario": name,
        "seed": seed,
        "customers": customers,
        "trained_objective": pconfig.objective,
        "horizon_days": pconfig.horizon_days,
        "churn": _churn_figures(churn.report),
        "policy": _policy_figures(d, truth, ceiling, report, decided_report),
        "scenario_objective": objective,
        "seconds": {**watch.seconds, "total": round(sum(watch.seconds.values()), 1)},
    }
