"""The promotion rule of ``engage retrain``: a pure function of figures measured in the same run.

The served decision system is promoted only when

* its churn metrics pass (ECE at most ``max_ece``; AUC at least the champion's minus ``max_auc_drop``; Brier at
  most the champion's plus ``max_brier_increase``; both scored on the same labelled customers at the latest
  fully labelled cutoff),
* its policy is not below the best single action and no contact (the policy gate, :mod:`training.policy.gate`:
  a learned policy that does not beat them with a DR interval above zero is replaced by the better baseline),
* its policy value is not worse than the champion's beyond ``max_policy_value_drop`` (on the same held-out
  logged decisions), and
* it is strictly better somewhere: churn AUC above the champion's plus ``min_improvement``, or a policy that
  beats the champion's with a DR interval above zero. Anything else is a tie, and a tie keeps the champion.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.registry import Promotion
from training.retrain.settings import Thresholds


@dataclass(frozen=True)
class PolicyFigures:
    """The policy side, from the policy report: what the system uses and how it compares with the champion."""

    chosen: str
    beats_baselines: bool
    system_value: float
    best_baseline_value: float
    champion_value: float | None
    beats_champion: bool

    @classmethod
    def from_report(cls, report: dict) -> PolicyFigures:
        off, gate = report["off_policy"], report["gate"]
        pol = off["policies"]
        learned = pol["learned"]["dr"]["value"]
        chosen = gate["chosen"]
        system = learned if chosen == "learned" else pol[chosen]["dr"]["value"]
        best = max(pol[b]["dr"]["value"] for b in ("best_single_action", "no_contact"))
        champ = off.get("champion") or {}
        comparable = bool(champ.get("comparable"))
        diff = champ.get("learned_minus_champion") or {}
        champion_value = learned - diff["value"] if comparable and "value" in diff else None
        beats = comparable and chosen == "learned" and diff.get("low", -1.0) > 0
        return cls(chosen, bool(gate["beats_baselines"]), system, best, champion_value, bool(beats))


def _churn_checks(ch: dict, champ: dict | None, promo: Promotion, t: Thresholds) -> tuple[list[str], bool]:
    """Why the churn metrics fail (empty: they pass), and whether they are strictly better."""
    fails = []
    auc = ch.get("auc")
    if auc is None or auc != auc:
        fails.append("challenger has no churn AUC on the backtest cutoff")
    if ch.get("ece", 0.0) > promo.max_ece:
        fails.append(f"churn ECE {ch['ece']:.4f} > max_ece {promo.max_ece}")
    if champ is None:
        return fails, True
    if ch.get("auc", 0.0) < champ["auc"] - t.max_auc_drop:
        fails.append(f"churn AUC {ch['auc']:.4f} < champion {champ['auc']:.4f} - max_auc_drop {t.max_auc_drop}")
    if ch.get("brier", 1.0) > champ["brier"] + promo.max_brier_increase:
        fails.append(f"churn Brier {ch['brier']:.4f} > champion {champ['brier']:.4f} + {promo.max_brier_increase}")
    return fails, ch.get("auc", 0.0) > champ["auc"] + promo.min_improvement


def retrain_decision(ch: dict, champ: dict | None, policy: PolicyFigures, promo: Promotion,
                     t: Thresholds) -> tuple[bool, str]:
    """Whether to promote the challenger system, and why (see the module docstring)."""
    fails, churn_better = _churn_checks(ch, champ, promo, t)
    if policy.system_value < policy.best_baseline_value - 1e-12:
        fails.append(f"policy DR value {policy.system_value:.4g} below the best baseline "
                     f"{policy.best_baseline_value:.4g}")
    if policy.champion_value is not None and policy.system_value < policy.champion_value - t.max_policy_value_drop:
        fails.append(f"policy DR value {policy.system_value:.4g} < champion {policy.champion_value:.4g} - "
                     f"max_policy_value_drop {t.max_policy_value_drop}")
    churn_txt = (f"churn AUC {ch.get('auc', float('nan')):.4f}" + (f" vs champion {champ['auc']:.4f}" if champ else "")
                 + f", ECE {ch.get('ece', float('nan')):.4f}")
    policy_txt = f"policy {policy.chosen} DR {policy.system_value:.4g}" + (
        f" vs champion {policy.champion_value:.4g}" if policy.champion_value is not None else "")
    figures = f"{churn_txt}; {policy_txt}"
    if fails:
        return False, f"rejected: {'; '.join(fails)} ({figures})"
    if champ is None:
        return True, f"no champion yet ({figures})"
    if not (churn_better or policy.beats_champion):
        return False, (f"tie: neither churn AUC above the champion's + {promo.min_improvement} nor a policy that "
                       f"beats the champion's with a DR interval above zero; the champion stays ({figures})")
    better = "churn AUC" if churn_better else "policy value"
    return True, f"better {better}, nothing worse beyond the thresholds ({figures})"
