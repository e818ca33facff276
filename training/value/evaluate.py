"""Judging the customer-value model on real spend: fitted before a cutoff, compared with what came after.

At the schedule's evaluation cutoff the chosen model, each of its parts and the textbook BG/NBD +
Gamma-Gamma (fitted with no penalty on the day-level purchase summary, as lifetimes and the papers do) are
compared on the margin realised in the following horizon; on simulated data the prediction is also ranked
against the truth's expected value. The deployable model is then refitted at the end of the data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract.cutoffs import utc_timestamp
from features.contract.schema import Tables
from features.models.bgnbd import BGNBDGammaGamma, summary_from_transactions
from features.models.ltv import CustomerValueModel
from training.value.fit import feature_cache, fit_at, score_at, select_and_fit
from training.value.metrics import paired_difference, value_metrics, verdict
from training.value.schedule import fit_plan, value_schedule

HEADLINE: tuple[str, ...] = ("spearman", "top_decile_capture", "mae")


@dataclass(frozen=True)
class ValueSettings:
    """What a value run is asked for: horizon (None = 365 or 90 days as the data allow), margin, model knobs."""

    horizon_days: int | None = None
    margin: float = 0.35
    step_days: int = 30
    max_cutoffs: int = 6
    seed: int = 0
    model: tuple[tuple[str, object], ...] = ()  # further CustomerValueModel settings, e.g. (("n_estimators", 600),)

    def params(self) -> dict:
        return {"margin": self.margin, "random_state": self.seed, **dict(self.model)}


def textbook_baseline(tables: Tables, cutoff: pd.Timestamp, ids: pd.Index, horizon_days: int,
                      margin: float) -> tuple[np.ndarray, dict]:
    """BG/NBD + Gamma-Gamma, unpenalised, on the day-level summary before ``cutoff``: margin per customer."""
    summary = summary_from_transactions(tables.subset(ids.to_numpy()), cutoff)
    model = BGNBDGammaGamma(penalizer=0.0).fit(summary)
    spend = pd.Series(model.expected_spend(summary, horizon_days), index=summary.index).reindex(ids).to_numpy()
    return margin * spend, {"bgnbd": model.bgnbd_params_, "gamma_gamma": model.gg_params_}


def truth_check(tables: Tables, cutoff: pd.Timestamp, ids: pd.Index, predictions: dict[str, np.ndarray]) -> dict:
    """Simulated data: Spearman of each prediction with the truth's expected value (if judged at its cutoff)."""
    truth, manifest = tables.truth, tables.meta.get("manifest") or {}
    if truth is None or "value" not in truth or not manifest.get("cutoff"):
        return {}
    if utc_timestamp(manifest["cutoff"]) != cutoff:
        return {"note": f"the truth is at {manifest['cutoff']}, the evaluation at {cutoff}: not compared"}
    true_value = truth.set_index(truth["customer_id"].astype(str))["value"].reindex(ids).to_numpy(dtype=float)
    ok = np.isfinite(true_value)
    out = {"customers": int(ok.sum()), "truth_column": "value (margin x expected spend rate x horizon, 0 if gone)"}
    for name, pred in predictions.items():
        out[f"spearman_{name}"] = float(pd.Series(pred[ok]).corr(pd.Series(true_value[ok]), method="spearman"))
    return out


def evaluate_value(tables: Tables, settings: ValueSettings, *,
                   progress: Callable[[str], None] | None = None) -> tuple[CustomerValueModel, dict]:
    """Choose, fit and judge the value model on ``tables``; returns the deployable model and the report."""
    from features.builders.pipeline import FeaturePipeline

    say = progress or (lambda _msg: None)
    data = tables.without_truth()
    opts = {"step_days": settings.step_days, "max_cutoffs": settings.max_cutoffs}
    schedule = value_schedule(data, horizon_days=settings.horizon_days, **opts)
    h, at = schedule.horizon_days, schedule.final.at
    say(f"value: horizon {h} days, validation at {schedule.validation.at.date()}, evaluation at {at.date()}")
    pipeline = FeaturePipeline().fit(data, cutoff=schedule.validation.at)
    features_at = feature_cache(data, pipeline)
    model, choice = select_and_fit(data, schedule, features_at, settings.params())
    say(f"value: chose weight {choice.weight} on LightGBM ({model.candidate})")
    scored = score_at(model, data, at, features_at)
    real = settings.margin * scored.realised
    preds = {name: settings.margin * spend for name, spend in scored.parts.items()}
    chosen = settings.margin * scored.blend(model.blend_weight)
    baseline, fitted = textbook_baseline(data, at, scored.ids, h, settings.margin)
    candidates = {name: value_metrics(p, real) for name, p in preds.items()}
    if model.candidate == "blend":
        candidates["blend"] = value_metrics(chosen, real)
    metrics = candidates[model.candidate]
    report = {
        "horizon_days": h,
        "margin": settings.margin,
        "units": "margin (margin x purchase amount) over the horizon, per customer",
        "schedule": schedule.as_dict(),
        "chosen": model.candidate,
        **{k: metrics[k] for k in HEADLINE},
        "calibration_by_decile": metrics["calibration_by_decile"],
        "customers": metrics["customers"],
        "blend": choice.as_dict(),
        "candidates": candidates,
        "baselines": {"bgnbd_gamma_gamma": {**value_metrics(baseline, real), "params": fitted,
                                            "fit": "lifetimes, unpenalised, day-level summary of purchases"}},
        "truth": truth_check(tables, at, scored.ids, {"chosen": chosen, "bgnbd_gamma_gamma": baseline}),
    }
    # is the gap to the textbook model larger than the noise of one evaluation cutoff? (paired bootstrap)
    diff = paired_difference(chosen, baseline, real, np.random.default_rng(settings.seed))
    report["versus_baseline"] = {"chosen_minus_bgnbd_gamma_gamma": diff, "verdict": verdict(diff)}
    base = report["baselines"]["bgnbd_gamma_gamma"]
    say(f"value: Spearman {metrics['spearman']:.3f} vs BG/NBD+GG {base['spearman']:.3f} "
        f"({report['versus_baseline']['verdict']}: difference {diff['spearman']['value']:+.4f} "
        f"[{diff['spearman']['low']:+.4f}, {diff['spearman']['high']:+.4f}])")
    final_plan = fit_plan(schedule.data_end, h, schedule.data_start, **opts)
    deployable = fit_at(data, final_plan, h, feature_cache(data, pipeline),
                        {**settings.params(), "blend_weight": choice.weight})
    report["deployed_at"] = str(schedule.data_end.date())
    return deployable, report


def value_at(tables: Tables, cutoff: pd.Timestamp, pipeline, settings: ValueSettings) -> CustomerValueModel:
    """A value model for decisions at ``cutoff``: blend chosen and parts fitted on the history before it."""
    data = tables.without_truth()
    opts = {"step_days": settings.step_days, "max_cutoffs": settings.max_cutoffs}
    schedule = value_schedule(data, horizon_days=settings.horizon_days, evaluate_at=cutoff, **opts)
    model, _ = select_and_fit(data, schedule, feature_cache(data, pipeline), settings.params())
    return model

