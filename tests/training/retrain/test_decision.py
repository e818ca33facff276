"""The promotion rule of engage retrain: churn and policy both gate, a tie keeps the champion."""

from __future__ import annotations

from training.registry import Promotion
from training.retrain.decision import PolicyFigures, retrain_decision
from training.retrain.settings import Thresholds

P, T = Promotion(), Thresholds()
CHAMP = {"auc": 0.75, "brier": 0.12, "ece": 0.02}


def _policy(system=1.0, best=0.5, champion=1.0, beats=False, chosen="learned"):
    return PolicyFigures(chosen, chosen == "learned", system, best, champion, beats)


def test_first_champion_needs_calibrated_churn_only():
    ok, why = retrain_decision({"auc": 0.7, "brier": 0.1, "ece": 0.01}, None, _policy(champion=None), P, T)
    assert ok and "no champion yet" in why
    ok, why = retrain_decision({"auc": 0.7, "brier": 0.1, "ece": 0.2}, None, _policy(champion=None), P, T)
    assert not ok and "max_ece" in why


def test_identical_figures_are_a_tie_that_keeps_the_champion():
    ok, why = retrain_decision(dict(CHAMP), CHAMP, _policy(), P, T)
    assert not ok and why.startswith("tie")


def test_better_churn_promotes_and_better_policy_promotes():
    assert retrain_decision({**CHAMP, "auc": 0.77}, CHAMP, _policy(), P, T)[0]
    assert retrain_decision(dict(CHAMP), CHAMP, _policy(system=1.5, beats=True), P, T)[0]


def test_better_churn_does_not_carry_a_worse_policy():
    """The defect: a system promoted on churn alone while its policy lost value."""
    ok, why = retrain_decision({**CHAMP, "auc": 0.80}, CHAMP, _policy(system=0.7, champion=1.0), P, T)
    assert not ok and "policy DR value" in why


def test_a_policy_below_its_best_baseline_is_rejected():
    ok, why = retrain_decision({**CHAMP, "auc": 0.80}, CHAMP, _policy(system=3.05, best=5.91, champion=2.0), P, T)
    assert not ok and "below the best baseline" in why


def test_worse_churn_beyond_the_threshold_is_rejected():
    ok, why = retrain_decision({**CHAMP, "auc": 0.74}, CHAMP, _policy(system=2.0, beats=True), P, T)
    assert not ok and "max_auc_drop" in why


def _report(learned, single, none, gate_chosen, champion=None):
    dr = lambda v: {"dr": {"value": v, "low": v - 1, "high": v + 1}}  # noqa: E731
    off = {"policies": {"learned": dr(learned), "best_single_action": dr(single), "no_contact": dr(none)}}
    if champion is not None:
        off["champion"] = {"comparable": True, "version": "m v1",
                           "learned_minus_champion": {"value": learned - champion[0], "low": champion[1], "high": 9}}
    return {"off_policy": off, "gate": {"chosen": gate_chosen, "beats_baselines": gate_chosen == "learned"}}


def test_policy_figures_follow_the_gate_and_the_champion_comparison():
    """The system's value is the learned policy's when it beats its baselines, else the fallback's."""
    fell_back = PolicyFigures.from_report(_report(3.05, 5.91, 1.0, "best_single_action", champion=(4.0, -2.0)))
    assert fell_back.system_value == 5.91 and fell_back.best_baseline_value == 5.91
    assert fell_back.champion_value == 4.0 and not fell_back.beats_champion
    learned = PolicyFigures.from_report(_report(8.0, 5.0, 1.0, "learned", champion=(6.0, 0.5)))
    assert learned.system_value == 8.0 and learned.beats_champion and learned.champion_value == 6.0
    assert PolicyFigures.from_report(_report(8.0, 5.0, 1.0, "learned")).champion_value is None
