"""The policy gate: does the learned policy beat its baselines, what does the system do if not, is it promoted.

A pure function of a policy report's off-policy section (:func:`training.policy.offline.offline_estimates`),
so that ``engage train policy`` and a retraining job decide the same way from the same figures:

* the learned policy **beats its baselines** when the DR estimate of its value minus the best single action's
  and minus no contact's both have a 95 % interval above zero;
* otherwise the system falls back to the best of those two baselines (by DR value), and the learned policy is
  not promoted;
* a policy that beats its baselines replaces the champion only when it also beats the champion's policy on
  the same held-out decisions with an interval above zero: a tie keeps the champion. A champion that cannot
  be valued on these decisions (another objective, catalogue or feature set) does not block a policy that
  beats its baselines.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

BASELINES: tuple[str, ...] = ("best_single_action", "no_contact")


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided: whether the learned policy beats its baselines, which policy the system uses
    (``chosen``: ``learned`` or a baseline's name), the fallback baseline and its action when the learned
    policy loses, whether to promote, and why, in one line (``headline``) and in full (``reason``)."""

    beats_baselines: bool
    chosen: str
    fallback: str | None
    fallback_action: str | None
    promote: bool
    headline: str
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def _interval(est: dict) -> str:
    return f"{est['value']:.4g} [{est['low']:.4g}, {est['high']:.4g}]"


def _action_of(off: dict, name: str) -> str:
    return off["best_single_action"] if name == "best_single_action" else "no_contact"


def _champion_verdict(off: dict) -> tuple[bool, str]:
    """Whether the learned policy may replace the champion, and why."""
    champ = off.get("champion")
    if not champ:
        return True, "no champion yet"
    if not champ.get("comparable"):
        return True, f"champion {champ.get('version', '?')} cannot be valued here ({champ.get('reason')})"
    diff = champ["learned_minus_champion"]
    if diff["low"] > 0:
        return True, f"beats champion {champ['version']}: DR difference {_interval(diff)}"
    return False, (
        f"does not beat champion {champ['version']} (DR difference {_interval(diff)}): a tie keeps the champion"
    )


def policy_gate(report: dict) -> GateDecision:
    """Decide from a policy report (its ``off_policy`` section and ``objective``) what the system does."""
    off = report["off_policy"]
    pol, diffs = off["policies"], off["differences"]
    objective = report.get("objective", "retention")
    learned = f"learned policy {_interval(pol['learned']['dr'])}"
    versus = "; ".join(
        f"{name} ({_action_of(off, name)}) {_interval(pol[name]['dr'])}, difference {_interval(diffs[name])}"
        for name in BASELINES
    )
    if all(diffs[name]["low"] > 0 for name in BASELINES):
        ok, why = _champion_verdict(off)
        head = (
            f"The learned policy beats its baselines on {objective} (DR value per decision: {learned}; {versus}); "
            + ("promoted: " if ok else "not promoted: ")
            + why
        )
        return GateDecision(True, "learned", None, None, ok, head, why)
    best = max(BASELINES, key=lambda name: pol[name]["dr"]["value"])
    action = _action_of(off, best)
    why = (
        f"the learned policy does not beat both the best single action and no contact with a DR interval above "
        f"zero; the system falls back to {best} ({action})"
    )
    head = (
        f"NOT BETTER THAN ITS BASELINES: the learned policy does not beat them on {objective} (DR value per "
        f"decision: {learned}; {versus}). The system uses the fallback {best} ({action}); the learned policy is "
        "not promoted."
    )
    return GateDecision(False, best, best, action, False, head, why)
