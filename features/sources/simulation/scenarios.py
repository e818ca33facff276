"""Named simulated worlds that look like different CRMs: ``scenario_config(name, **overrides) -> SimConfig``.

The default world is one retention story; a policy tuned to it can overfit it. Each scenario changes what a
real CRM changes (how outreach was assigned, what is tracked, who can be reached, how customers respond,
how much history there is) and keeps the truth exact: the truth table still reports, per customer and
action, what a contact on the cutoff day would do (with ``objective_days`` set, also the campaign outcomes
a visit or spend objective is judged on). Every scenario's ``objective`` names what a CRM would optimise
there and ``objective_days`` its outcome window.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from features.sources.simulation.config import SimConfig


@dataclass(frozen=True)
class Scenario:
    """A named set of simulator parameters, with the objective a CRM would pursue in that world."""

    name: str
    description: str
    objective: str  # retention, visit or spend (the truth holds its values)
    objective_days: int  # that objective's outcome window after a decision
    params: dict = field(default_factory=dict)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "retention",
            "today's retention world: targeted campaigns (open-rate driven), opens and clicks tracked, "
            "contacts change the churn hazard; the default world, unchanged",
            "retention",
            90,
        ),
        Scenario(
            "visit_campaign",
            "a randomised campaign: a third held out, channels and offers drawn uniformly, no open or click "
            "tracking; an opened contact lifts visits for 14 days (sleeping dogs visit less); judged on a "
            "visit within 14 days",
            "visit",
            14,
            {
                "holdout_share": 1 / 3,
                "dormant_extra_holdout": 0.0,
                "open_boost": 0.0,
                "channel_weights": (1.0, 1.0, 1.0, 1.0),
                "track_opens": False,
                "track_clicks": False,
                "response_lift": 0.8,
                "response_days": 14,
                "objective_days": 14,
            },
        ),
        Scenario(
            "spend_offers",
            "a spend objective with offers whose cost is real: an opened contact lifts visits for 14 days and "
            "an opened discount is taken off the next purchase in that time; judged on spend within 30 days",
            "spend",
            30,
            {"response_lift": 0.8, "response_days": 14, "real_discounts": True, "objective_days": 30},
        ),
        Scenario(
            "low_consent",
            "low consent: besides their primary channel customers rarely consent, so most reachable "
            "customers can be contacted on one channel only",
            "retention",
            90,
            {"secondary_consent_scale": 0.1},
        ),
        Scenario(
            "sleeping_dogs",
            "many sleeping dogs: every contact hurts about 30 % of the customers alive at the cutoff (raises "
            "their churn probability), against about 17 % in the default world",
            "retention",
            90,
            {"segment_shift": (0.0, 0.0, 0.0, 0.8)},
        ),
        Scenario(
            "short_history",
            "a short history: 90 days of touchpoints and outreach (a new CRM), a 30-day churn horizon "
            "(a 90-day one would leave no campaign with a complete outcome window)",
            "retention",
            30,
            {"days": 90, "horizon_days": 30},
        ),
    )
}


def scenario(name: str) -> Scenario:
    """The scenario called ``name``; a clear error naming the known ones otherwise."""
    if name not in SCENARIOS:
        raise ValueError(f"scenario {name!r} is unknown; known scenarios: {', '.join(SCENARIOS)}")
    return SCENARIOS[name]


def scenario_config(name: str, **overrides) -> SimConfig:
    """The simulator configuration of scenario ``name``, with ``overrides`` (any SimConfig field) on top."""
    known = {f.name for f in fields(SimConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"scenario {name!r}: unknown parameter(s) {unknown}; SimConfig has {sorted(known)}")
    return SimConfig(**{**scenario(name).params, "scenario": name, **overrides})
