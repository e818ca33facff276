"""Train the next-best-action policy from the outreach log and evaluate it (against the truth, when simulated).

Customers are split once: a held-out share never used for fitting is where the off-policy estimates are
computed; the rest is split again into fitting and validation customers, and the validation rows choose the
effect model's final stage and the contact threshold. Evaluation at the evaluation cutoff ``T``: decisions
for every customer under the configured consent, caps and limits, off-policy IPS / SNIPS / DR estimates on
the held-out log and, on simulated data, the truth check (:mod:`training.policy.truth`).
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
from training.policy.config import PolicyTrainConfig
from training.policy.evaluate import evaluate_at_cutoff
from training.policy.fit import fit_policy, select_threshold, uplift_curve
from training.policy.offline import offline_estimates
from training.policy.qini import qini_summary
from training.policy.rows import campaign_cutoffs, report_progress, split_customers, training_rows

Progress = Callable[[str], None] | None


@dataclass(frozen=True)
class LoggedRows:
    """Every logged decision's features ``X`` and ``rows``, and which customers fit, validate or are held out."""

    X: pd.DataFrame
    rows: pd.DataFrame
    is_fit: np.ndarray
    is_val: np.ndarray
    is_held: np.ndarray

    def part(self, mask: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
        return self.X[mask].reset_index(drop=True), self.rows[mask].reset_index(drop=True)


@dataclass
class Selection:
    """The final stage and contact threshold chosen on validation rows, and every candidate fitted."""

    final: str
    threshold: float = float("inf")
    gain: float = -np.inf
    by_final: dict[str, dict] = field(default_factory=dict)
    candidates: dict[str, NextBestAction] = field(default_factory=dict)


def split_rows(X: pd.DataFrame, rows: pd.DataFrame, train: PolicyTrainConfig, rng: np.random.Generator) -> LoggedRows:
    """Held-out customers first, then validation customers among the rest."""
    held = split_customers(rows["customer_id"], train.holdout_share, rng)
    is_held = rows["customer_id"].isin(held).to_numpy()
    train_ids = np.setdiff1d(pd.unique(rows["customer_id"]), held)
    val_ids = train_ids[rng.random(len(train_ids)) < train.validation_share]
    is_val = rows["customer_id"].isin(val_ids).to_numpy() & ~is_held
    return LoggedRows(X, rows, is_fit=~is_held & ~is_val, is_val=is_val, is_held=is_held)


def select_final(
    logged: LoggedRows, catalogue: Catalogue, config: PolicyConfig, train: PolicyTrainConfig, progress: Progress
) -> Selection:
    """Fit each candidate final stage on the fitting rows; keep the best validation DR gain and its threshold."""
    Xf, rf = logged.part(logged.is_fit)
    Xv, rv = logged.part(logged.is_val)
    finals = ["reach", "plugin"] if train.final == "auto" else [train.final]
    sel = Selection(final=finals[0])
    for final in finals:
        cand = sel.candidates[final] = fit_policy(Xf, rf, catalogue, config, replace(train, final=final))
        thr, gain = select_threshold(cand, Xv, rv, z=train.threshold_z)
        sel.by_final[final] = {"threshold": thr, "validation_dr_gain_per_row": gain}
        report_progress(progress, f"  {final}: threshold {thr:.2f}, validation DR gain per decision {gain:.3f}")
        if gain > sel.gain:
            sel.gain, sel.final, sel.threshold = gain, final, thr
    return sel


def deciding_model(
    logged: LoggedRows,
    sel: Selection,
    catalogue: Catalogue,
    config: PolicyConfig,
    train: PolicyTrainConfig,
    progress: Progress,
) -> NextBestAction:
    """The chosen candidate (refitted on fit + validation rows when asked) with the chosen threshold."""
    if train.refit:
        # The final stage and threshold are chosen; the model that decides is refitted on every training
        # customer (fit + validation): with effects this small, a third more rows is worth the refit.
        keep = logged.is_fit | logged.is_val
        report_progress(progress, f"  refitting {sel.final!r} on {int(keep.sum()):,} rows")
        Xk, rk = logged.part(keep)
        cand = fit_policy(Xk, rk, catalogue, config, replace(train, final=sel.final))
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
) -> dict:
    """The training summary and the off-policy estimates on the held-out rows."""
    Xh, rh = logged.part(logged.is_held)
    p0_h = model.uplift.predict_churn(Xh)[0]
    return {
        "train_config": asdict(train),
        "policy_config": asdict(config),
        "method": f"effect model final stage {model.uplift.final!r} (S-learner outcome model on LightGBM); "
        "value = margin x predicted spend/day x horizon",
        "campaign_cutoffs": [str(c.date()) for c in cutoffs],
        "training_rows": int((~logged.is_held).sum()),
        "heldout_rows": int(logged.is_held.sum()),
        "fit_seconds": fit_seconds,
        "model_selection": sel.by_final,
        "selected_threshold": model.config.min_incremental_value,
        "effect_features": getattr(model.uplift, "effect_feature_names_", None),
        "effect_screen_loss": {str(k): v for k, v in getattr(model.uplift, "screen_loss_", {}).items()},
        "off_policy": offline_estimates(model, Xh, rh, p0_h, rng, train.n_boot),
        "uplift_curve": uplift_curve(model, Xh, rh),
        "qini": qini_summary(model, Xh, rh),
        "scenarios": {},
    }


def _campaign_cutoffs(tables: Tables, cutoff: pd.Timestamp, train: PolicyTrainConfig) -> list[pd.Timestamp]:
    cutoffs = campaign_cutoffs(
        tables.outreach, horizon_days=train.horizon_days, until=cutoff, max_campaigns=train.max_campaigns
    )
    if not cutoffs:
        raise ValueError(
            f"outreach: no campaign has a complete {train.horizon_days}-day outcome window before {cutoff.date()}"
        )
    return cutoffs


def train_and_evaluate(
    tables: Tables,
    catalogue: Catalogue,
    config: PolicyConfig,
    train: PolicyTrainConfig,
    *,
    cutoff: pd.Timestamp | None = None,
    pipeline=None,
    scenarios: dict[str, PolicyConfig] | None = None,
    labels_fn: Callable | None = None,
    progress: Progress = None,
) -> tuple[NextBestAction, dict]:
    """Train the policy on logged outreach before ``cutoff`` and evaluate it; returns ``(model, report)``.

    ``cutoff`` defaults to the data's evaluation cutoff (:func:`features.contract.cutoffs.evaluation_cutoff`).
    ``scenarios`` maps names to decision settings evaluated at the cutoff (default: ``config`` as given under
    the name ``"configured"``).
    """
    rng = np.random.default_rng(train.seed)
    cutoff = evaluation_cutoff(tables, cutoff)
    if cutoff is None:
        raise ValueError("touchpoints: the log is empty, so there is no cutoff to train the policy at")
    t0 = time.time()
    if pipeline is None:
        from features.builders.pipeline import FeaturePipeline

        pipeline = FeaturePipeline().fit(tables.without_truth(), cutoff=cutoff)
    cutoffs = _campaign_cutoffs(tables, cutoff, train)
    report_progress(progress, f"policy: building training rows at {len(cutoffs)} campaign cutoffs")
    X, rows = training_rows(
        tables,
        cutoffs,
        catalogue,
        horizon_days=train.horizon_days,
        pipeline=pipeline,
        labels_fn=labels_fn,
        progress=progress,
    )
    logged = split_rows(X, rows, train, rng)
    report_progress(
        progress,
        f"policy: fitting on {int(logged.is_fit.sum()):,} rows, validating on {int(logged.is_val.sum()):,}, "
        f"holding out {int(logged.is_held.sum()):,}",
    )
    t1 = time.time()
    sel = select_final(logged, catalogue, config, train, progress)
    model = deciding_model(logged, sel, catalogue, config, train, progress)
    fit_s = time.time() - t1
    report_progress(progress, "policy: off-policy evaluation on held-out logged decisions")
    report = _report(model, logged, sel, cutoffs, config, train, fit_s, rng)
    for name, cfg in (scenarios or {"configured": config}).items():
        report_progress(progress, f"policy: deciding at {cutoff.date()} ({name})")
        cfg = replace(cfg, min_incremental_value=max(cfg.min_incremental_value, model.config.min_incremental_value))
        report["scenarios"][name] = evaluate_at_cutoff(
            model, tables, cutoff, cfg, pipeline=pipeline, rng=rng, n_boot=train.n_boot,
            customer_ids=train.report_customer_ids,
        )
    report["seconds"] = time.time() - t0
    return model, report
