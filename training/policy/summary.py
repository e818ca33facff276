"""A policy report's headline figures: flat MLflow metrics, and the keys the evaluate command puts on top."""

from __future__ import annotations

import numpy as np

# The truth figures of each scenario logged as metrics, and those summarised at the top of the report.
TRUTH_METRICS: tuple[str, ...] = (
    "policy_value",
    "oracle_value",
    "captured_uplift_ratio",
    "ratio_to_top_churn",
    "share_harmed_true",
    "effect_sign_agreement",
    "beats_top_churn_1_2x",
)
TRUTH_SUMMARY: tuple[str, ...] = (
    "policy_value",
    "oracle_value",
    "no_contact_value",
    "captured_uplift_ratio",
    "baselines",
    "ratio_to_top_churn",
    "beats_top_churn_1_2x",
)


def _off_policy_metrics(report: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, res in report["off_policy"]["policies"].items():
        for est in ("ips", "snips", "dr", "dr_incremental"):
            if est in res:
                out[f"ope_{name}_{est}"] = res[est]["value"]
                out[f"ope_{name}_{est}_low"] = res[est]["low"]
                out[f"ope_{name}_{est}_high"] = res[est]["high"]
    out["ope_share_harmed_estimated"] = report["off_policy"]["share_harmed_estimated"]
    for key in ("auuc", "qini_coefficient"):  # the learned ranking on the held-out log
        if key in report.get("qini", {}):
            out[key] = report["qini"][key]
    return out


def _scenario_metrics(sc: str, rep: dict) -> dict[str, float]:
    out: dict[str, float] = {
        f"{sc}_contacts": rep["contacts"],
        f"{sc}_defense_targets": rep["defense_targets"],
        f"{sc}_constraint_violations": float(sum(rep["constraint_violations"].values())),
        f"{sc}_decide_seconds": rep["decide_seconds"],
    }
    truth = rep.get("truth")
    if truth:
        for k in TRUTH_METRICS:
            if truth.get(k) is not None:
                out[f"{sc}_{k}"] = float(truth[k])
        for k, v in truth["baselines"].items():
            out[f"{sc}_baseline_{k}"] = float(v)
        out[f"{sc}_ope_check_contains_true"] = float(truth["ope_check"]["contains_true_value"])
    return out


def flat_metrics(report: dict) -> dict[str, float]:
    """The headline figures of a report as flat MLflow metrics."""
    out = _off_policy_metrics(report)
    for sc, rep in report["scenarios"].items():
        out.update(_scenario_metrics(sc, rep))
    return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}


def summarise(report: dict) -> dict:
    """The issue's headline keys at the top level of the report (from the binding-budget scenario)."""
    sc = report["scenarios"].get("budget") or next(iter(report["scenarios"].values()))
    out = {
        "constraint_violations": int(sum(sc["constraint_violations"].values())),
        "off_policy_estimates": report["off_policy"]["policies"],
    }
    truth = sc.get("truth")
    if truth:
        out.update({k: truth[k] for k in TRUTH_SUMMARY})
    return out
