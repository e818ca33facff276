"""Train the next-best-action policy from the outreach log and evaluate it (against the truth, when simulated).

Customers are split once: a held-out share never used for fitting is where the off-policy estimates are
computed; the rest is split again into fitting and validation customers, and the validation rows choose the
effect model (its final stage: ``plugin``, ``dr``, and ``reach`` when opens are tracked) by DR value, and the
contact threshold. The gate (:mod:`training.policy.gate`) then decides on the held-out estimates whether the
learned policy beats its baselines; if not, the policy falls back to the best baseline and the report says
so in its first line. Evaluation at the evaluation cutoff ``T``: decisions for every customer under the
configured consent, caps and limits and, on simulated data, the truth check (:mod:`training.policy.truth`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from features.contract.catalogue import Catalogue
from features.contract.cutoffs import evaluation_cutoff
from features.contract.schema import Tables
from features.decision.config import PolicyConfig
from features.decision.nba import NextBestAction
from features.models.ltv import PolicyValue
from features.sources.io import release_freed_memory
from training.policy.config import PolicyTrainConfig
from training.policy.evaluate import evaluate_at_cutoff
from training.policy.fit import fit_policy, out_of_fold_gain, select_threshold, uplift_curve
from training.policy.gate import policy_gate
from training.policy.inputs import require_outreach
from training.policy.offline import ChampionPolicy, best_single_action, offline_estimates
from training.policy.qini import qini_summary
from training.policy.rows import (
    LoggedDecisions,
    campaign_cutoffs,
    report_progress,
    split_customers,
    training_rows,
    warn,
)
from training.policy.source import TablesSource

Progress = Callable[[str], None] | None
# Warn when more than this share of the logged decisions is left out of training.
DROPPED_WARNING_SHARE = 0.10
FINAL_STAGES: tuple[str, ...] = ("plugin", "dr", "reach")
VALUE_METHODS: dict[str, str] = {
    "regression": "value = margin x predicted spend/day x horizon",
    "ltv": "value = the customer-value model's expected margin, scaled to the policy horizon",
}


def value_source(model: NextBestAction) -> str:
    """Which value the policy decides with: ``ltv`` (the customer-value model) or ``regression``."""
    return "ltv" if isinstance(model.value_model, PolicyValue) else "regression"


def customer_value_model(tables: Tables, cutoff: pd.Timestamp, config: PolicyConfig, pipeline, seed: int,
                         progress: Progress = None):
    """The customer-value model for ``value.source: ltv`` and the retention objective (fitted on the history
    before ``cutoff``); None for ``regression``, another objective, or when the history is too short for a
    temporal value model (the regression is used)."""
    if getattr(config.value, "source", "regression") != "ltv" or config.objective_spec.name != "retention":
        return None
    from training.value.evaluate import ValueSettings, value_at

    try:
        return value_at(tables, cutoff, pipeline, ValueSettings(margin=config.value.margin, seed=seed))
    except ValueError as exc:
        report_progress(progress, f"policy: value.source ltv not possible here, using the regression ({exc})")
        return None


@dataclass(frozen=True)
class LoggedRows:
    """Every logged decision's features ``X`` and ``rows``, and which customers fit, validate or are held out."""

    X: pd.DataFrame
    rows: pd.DataFrame
    is_fit: np.ndarray
    is_val: np.ndarray
    is_held: np.ndarray

    def part(self, mask: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The rows of ``mask``, in order: a view when they are one run of rows (see :class:`RowSplit`)."""
        idx = np.flatnonzero(mask)
        if len(idx) and idx[-1] - idx[0] + 1 == len(idx):
            run = slice(int(idx[0]), int(idx[-1]) + 1)
            return self.X.iloc[run].reset_index(drop=True), self.rows.iloc[run].reset_index(drop=True)
        return self.X[mask].reset_index(drop=True), self.rows[mask].reset_index(drop=True)


@dataclass
class Selection:
    """The final stage and contact threshold chosen on validation rows, every candidate fitted, and the
    stages that were not candidates with the reason."""

    final: str
    threshold: float = float("inf")
    gain: float = -np.inf
    by_final: dict[str, dict] = field(default_factory=dict)
    candidates: dict[str, NextBestAction] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def report(self) -> dict:
        """``chosen_effect_model`` of the report: the choice, why, and every candidate's validation figures."""
        scores = ", ".join(f"{k} {v['out_of_fold_dr_gain_per_row']:.4g}" for k, v in self.by_final.items())
        if len(self.by_final) > 1:
            why = (
                "highest DR gain over no contact per held-out validation decision, each half valued with the "
                f"threshold chosen on the other ({scores})"
            )
        else:
            why = f"the only candidate ({scores})"
        return {"name": self.final, "reason": why, "candidates": self.by_final, "not_candidates": self.skipped}


def opens_tracked(tables: Tables) -> bool:
    """Whether the log has message opens, the input of the ``reach`` stage's open rates."""
    return bool((tables.touchpoints["kind"].astype(str) == "message_open").any())


def effect_candidates(tables: Tables, train: PolicyTrainConfig) -> tuple[list[str], dict[str, str]]:
    """The final stages to fit and choose from, and those left out with the reason."""
    no_opens = "no message_open touchpoints: open rates are unknown, so every reach-weighted effect would be 0"
    if train.final != "auto":
        if train.final == "reach" and not opens_tracked(tables):
            raise ValueError(f"policy training: final stage 'reach' needs tracked opens ({no_opens})")
        return [train.final], {}
    if opens_tracked(tables):
        return list(FINAL_STAGES), {}
    return [f for f in FINAL_STAGES if f != "reach"], {"reach": no_opens}


def split_masks(rows: pd.DataFrame, train: PolicyTrainConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Held-out customers first, then validation customers among the rest: ``is_fit``, ``is_val``, ``is_held``."""
    held = split_customers(rows["customer_id"], train.holdout_share, rng)
    is_held = rows["customer_id"].isin(held).to_numpy()
    train_ids = np.setdiff1d(pd.unique(rows["customer_id"]), held)
    val_ids = train_ids[rng.random(len(train_ids)) < train.validation_share]
    is_val = rows["customer_id"].isin(val_ids).to_numpy() & ~is_held
    return {"is_fit": ~is_held & ~is_val, "is_val": is_val, "is_held": is_held}


class RowSplit:
    """The split of the logged rows (:func:`split_masks`), as the row order :func:`training_rows` writes them in:
    the fitting rows, then the validation rows, then the held-out rows, so that the fitting, validation, refit
    (fitting + validation) and held-out rows are all views of the one table, never copies (at 100,000
    customers a copy of the fitting rows is 1.5 GB). Within each group the rows keep their logged order."""

    def __init__(self, train: PolicyTrainConfig, rng: np.random.Generator) -> None:
        self.train, self.rng = train, rng
        self.masks: dict[str, np.ndarray] | None = None

    def __call__(self, rows: pd.DataFrame) -> np.ndarray:
        masks = split_masks(rows, self.train, self.rng)
        order = np.concatenate([np.flatnonzero(masks[k]) for k in ("is_fit", "is_val", "is_held")])
        self.masks = {k: v[order] for k, v in masks.items()}
        return order

    def rows(self, decisions: LoggedDecisions) -> LoggedRows:
        """The ordered training rows with their split."""
        if self.masks is None:
            raise RuntimeError("RowSplit: the training rows were built without this split")
        return LoggedRows(decisions.X, decisions.rows, **self.masks)


def select_final(
    logged: LoggedRows,
    catalogue: Catalogue,
    config: PolicyConfig,
    train: PolicyTrainConfig,
    candidates: tuple[list[str], dict[str, str]],
    progress: Progress,
    customer_value=None,
) -> Selection:
    """Fit each candidate final stage on the fitting rows; keep the one with the best out-of-fold DR gain on the
    validation rows (:func:`training.policy.fit.out_of_fold_gain`), with its threshold chosen on all of them."""
    Xf, rf = logged.part(logged.is_fit)
    Xv, rv = logged.part(logged.is_val)
    finals, skipped = candidates
    sel = Selection(final=finals[0], skipped=skipped)
    for final in finals:
        cand = sel.candidates[final] = fit_policy(
            Xf, rf, catalogue, config, replace(train, final=final), customer_value=customer_value
        )
        thr, gain = select_threshold(cand, Xv, rv, z=train.threshold_z)
        # The same halves of the validation customers for every candidate: a paired comparison.
        oof = out_of_fold_gain(cand, Xv, rv, train.threshold_z, np.random.default_rng(train.seed))
        sel.by_final[final] = {"threshold": thr, "validation_dr_gain_per_row": gain, "out_of_fold_dr_gain_per_row": oof}
        report_progress(progress, f"  {final}: threshold {thr:.2f}, validation DR gain per decision {gain:.3f}, "
                        f"with the threshold chosen on the other half {oof:.3f}")  # fmt: skip
        if oof > sel.gain:
            sel.gain, sel.final, sel.threshold = oof, final, thr
    return sel


def deciding_model(
    logged: LoggedRows,
    sel: Selection,
    catalogue: Catalogue,
    config: PolicyConfig,
    train: PolicyTrainConfig,
    progress: Progress,
    customer_value=None,
) -> NextBestAction:
    """The chosen candidate (refitted on fit + validation rows when asked) with the chosen threshold."""
    if train.refit:
        # The final stage and threshold are chosen; the model that decides is refitted on every training
        # customer (fit + validation): with effects this small, a third more rows is worth the refit.
        keep = logged.is_fit | logged.is_val
        report_progress(progress, f"  refitting {sel.final!r} on {int(keep.sum()):,} rows")
        Xk, rk = logged.part(keep)
        cand = fit_policy(Xk, rk, catalogue, config, replace(train, final=sel.final), customer_value=customer_value)
    else:
        cand = sel.candidates[sel.final]
    return NextBestAction(
        cand.uplift,
        cand.value_model,
        catalogue,
        replace(config, min_incremental_value=max(config.min_incremental_value, sel.threshold)),
        defense_min_value=cand.defense_min_value,
    )


def _report(
    model: NextBestAction,
    logged: LoggedRows,
    sel: Selection,
    cutoffs: list[pd.Timestamp],
    config: PolicyConfig,
    train: PolicyTrainConfig,
    fit_seconds: float,
    rng: np.random.Generator,
    champion: ChampionPolicy | None,
) -> dict:
    """The training summary and the off-policy estimates on the held-out rows."""
    Xh, rh = logged.part(logged.is_held)
    p0_h = model.expected_values(Xh)["p0"]
    single = best_single_action(model, *logged.part(logged.is_val))  # chosen, like the policy, off the held-out rows
    objective = config.objective_spec
    return {
        "objective": objective.name,
        "horizon_days": config.horizon_days,
        "outcome": objective.outcome_name,
        "chosen_effect_model": sel.report(),
        "train_config": asdict(train),
        "policy_config": asdict(config),
        "method": f"effect model final stage {model.uplift.final!r} (S-learner outcome model on LightGBM); "
        + (VALUE_METHODS[value_source(model)] if objective.name == "retention" else
           f"objective {objective.name}: {objective.outcome_name}"),
        "value_source": value_source(model),
        "campaign_cutoffs": [str(c.date()) for c in cutoffs],
        "training_rows": int((~logged.is_held).sum()),
        "heldout_rows": int(logged.is_held.sum()),
        "fit_seconds": fit_seconds,
        "model_selection": sel.by_final,
        "selected_threshold": model.config.min_incremental_value,
        "effect_features": getattr(model.uplift, "effect_feature_names_", None),
        "effect_screen_loss": {str(k): v for k, v in getattr(model.uplift, "screen_loss_", {}).items()},
        "off_policy": offline_estimates(model, Xh, rh, p0_h, rng, train.n_boot, champion, single=single),
        "uplift_curve": uplift_curve(model, Xh, rh),
        "qini": qini_summary(model, Xh, rh),
        "scenarios": {},
    }


def _campaign_cutoffs(tables: Tables, cutoff: pd.Timestamp, config: PolicyConfig, train) -> list[pd.Timestamp]:
    cutoffs = campaign_cutoffs(
        tables.outreach, horizon_days=config.horizon_days, until=cutoff, max_campaigns=train.max_campaigns
    )
    if not cutoffs:
        raise ValueError(
            f"outreach: no campaign has a complete {config.horizon_days}-day outcome window before {cutoff.date()} "
            "(a shorter window: --horizon-days N, or horizon_days in the policy config)"
        )
    return cutoffs


def dropped_summary(decisions: LoggedDecisions, progress: Progress) -> dict:
    """The report's ``dropped_decisions`` and ``logged_decisions``, and a warning above 10 % left out."""
    total, dropped = decisions.logged, decisions.dropped
    share = sum(dropped.values()) / total if total else 0.0
    out: dict = {"dropped_decisions": dropped, "logged_decisions": total, "warnings": []}
    if share > DROPPED_WARNING_SHARE:
        msg = (
            f"{sum(dropped.values()):,} of {total:,} logged decisions ({share:.0%}) have no outcome and are left "
            f"out of training: {', '.join(f'{k} {v:,}' for k, v in dropped.items())} (see labels and horizon_days "
            "in the policy config)"
        )
        out["warnings"].append(msg)
        warn(msg, progress)
    return out


def _headline_first(report: dict, gate, sel: Selection, dropped: dict) -> dict:
    """The report with the gate's verdict first: ``headline``, ``beats_baselines``, ``fallback``, ..."""
    return {
        "headline": gate.headline,
        "beats_baselines": gate.beats_baselines,
        "fallback": gate.fallback,
        "fallback_action": gate.fallback_action,
        "chosen_policy": gate.chosen,
        "gate": gate.as_dict(),
        **dropped,
        **report,
    }


def _decide_scenarios(
    model: NextBestAction,
    gate,
    tables: Tables,
    cutoff: pd.Timestamp,
    scenarios: dict[str, PolicyConfig],
    pipeline,
    train: PolicyTrainConfig,
    rng: np.random.Generator,
    progress: Progress,
) -> dict:
    """The system's decisions at the cutoff under each scenario's settings (and, on simulated data, the truth
    of the learned policy the gate refused)."""
    out: dict = {}
    for name, cfg in scenarios.items():
        report_progress(progress, f"policy: deciding at {cutoff.date()} ({name})")
        cfg = replace(cfg, min_incremental_value=max(cfg.min_incremental_value, model.config.min_incremental_value))
        out[name] = evaluate_at_cutoff(model, tables, cutoff, cfg, pipeline=pipeline, rng=rng, n_boot=train.n_boot,
                                       customer_ids=train.report_customer_ids)
        if gate.fallback_action is not None and tables.truth is not None:
            # On simulated data, what the learned policy the gate refused would truly have been worth.
            learned = evaluate_at_cutoff(
                model.with_fallback(None), tables, cutoff, cfg, pipeline=pipeline, rng=rng, n_boot=train.n_boot
            )
            keep = ("policy_value", "oracle_value", "captured_uplift_ratio", "share_harmed_true")
            out[name]["refused_learned_policy"] = {
                "contacts": learned["contacts"],
                "truth": {k: learned["truth"][k] for k in keep},
            }
    return out


def train_and_evaluate(
    tables: Tables | TablesSource,
    catalogue: Catalogue,
    config: PolicyConfig,
    train: PolicyTrainConfig,
    *,
    cutoff: pd.Timestamp | None = None,
    pipeline=None,
    scenarios: dict[str, PolicyConfig] | None = None,
    champion: ChampionPolicy | None = None,
    progress: Progress = None,
) -> tuple[NextBestAction, dict]:
    """Train the policy on logged outreach before ``cutoff`` and evaluate it; returns ``(model, report)``.

    ``cutoff`` defaults to the data's evaluation cutoff (:func:`features.contract.cutoffs.evaluation_cutoff`).
    ``scenarios`` maps names to decision settings evaluated at the cutoff (default: ``config`` as given under
    the name ``"configured"``). ``champion``: the registered champion's policy, valued on the same held-out
    rows for the gate. The returned model carries the gate's fallback when the learned policy loses.
    ``tables``: the tables, or a :class:`training.policy.source.TablesSource` that can read them again: the
    tables are then let go while the models fit (they are needed only to build the rows and to decide at the
    cutoff), which at 100,000 customers is 2.4 GB less at the trainer's peak.
    """
    source = TablesSource.of(tables)
    tables = source.get()
    require_outreach(tables, "policy training")
    rng = np.random.default_rng(train.seed)
    cutoff = evaluation_cutoff(tables, cutoff)
    if cutoff is None:
        raise ValueError("touchpoints: the log is empty, so there is no cutoff to train the policy at")
    t0 = time.time()
    candidates = effect_candidates(tables.without_truth(), train)
    if pipeline is None:
        from features.builders.pipeline import FeaturePipeline

        pipeline = FeaturePipeline().fit(tables.without_truth(), cutoff=cutoff)
    cutoffs = _campaign_cutoffs(tables, cutoff, config, train)
    # Before the rows: its features at several cutoffs are not held beside every training row (at 100,000
    # customers the two together were the trainer's peak).
    ltv = customer_value_model(tables, cutoff, config, pipeline, train.seed, progress)
    release_freed_memory()  # what the value model's fitting freed, before the rows take their place
    report_progress(progress, f"policy ({config.objective}, {config.horizon_days}-day window): building training "
                    f"rows at {len(cutoffs)} campaign cutoffs")  # fmt: skip
    split = RowSplit(train, rng)
    decisions = training_rows(tables, cutoffs, catalogue, config=config, until=cutoff, pipeline=pipeline,
                              progress=progress, order=split)  # fmt: skip
    dropped = dropped_summary(decisions, progress)
    logged = split.rows(decisions)
    report_progress(
        progress,
        f"policy: fitting on {int(logged.is_fit.sum()):,} rows, validating on {int(logged.is_val.sum()):,}, "
        f"holding out {int(logged.is_held.sum()):,}",
    )
    t1 = time.time()
    del tables
    if source.release():
        report_progress(progress, "policy: the data folder's tables are let go while the models fit (read again "
                        "for the decisions at the cutoff)")  # fmt: skip
    sel = select_final(logged, catalogue, config, train, candidates, progress, customer_value=ltv)
    model = deciding_model(logged, sel, catalogue, config, train, progress, customer_value=ltv)
    fit_s = time.time() - t1
    report_progress(progress, "policy: off-policy evaluation on held-out logged decisions")
    report = _report(model, logged, sel, cutoffs, config, train, fit_s, rng, champion)
    del logged, decisions  # every training row: not needed for the decisions at the cutoff
    gate = policy_gate(report)
    report_progress(progress, gate.headline)
    model = model.with_fallback(gate.fallback_action)
    report["scenarios"] = _decide_scenarios(
        model, gate, source.get(), cutoff, scenarios or {"configured": config}, pipeline, train, rng, progress
    )
    report["seconds"] = time.time() - t0
    return model, _headline_first(report, gate, sel, dropped)
