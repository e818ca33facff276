"""The settings of the next-best-action rule, and how they are read from YAML.

Defaults are documented in the packaged ``features/decision/policy.yaml``; a user file overrides any key
and keeps the rest. Unknown keys and channels are errors, so a typo never silently means "no limit".
The configs are frozen dataclasses: they are pickled inside a registered decision system.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path

import yaml

from features.contract.schema import OUTREACH_CHANNELS


@dataclass(frozen=True)
class CapConfig:
    """Frequency caps and fatigue, counted over ``window_days`` before the cutoff."""

    window_days: int = 30
    per_channel: dict = field(default_factory=lambda: {"email": 4, "sms": 2, "push": 4, "call": 1})
    total: int | None = 4
    min_days_between_contacts: float | None = 7.0


@dataclass(frozen=True)
class LimitConfig:
    """Global limits for one decision round (``None`` / missing key = unlimited)."""

    budget: float | None = None
    max_contacts: int | None = None
    per_channel: dict = field(default_factory=dict)
    per_offer: dict = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return (
            self.budget is not None
            or self.max_contacts is not None
            or any(v is not None for v in self.per_channel.values())
            or any(v is not None for v in self.per_offer.values())
        )


@dataclass(frozen=True)
class DefenseConfig:
    """Back-door defense: valuable, at real risk, persuadable."""

    min_value_quantile: float = 0.5
    min_value: float | None = None
    min_churn_probability: float = 0.2
    min_incremental_value: float = 0.0


VALUE_SOURCES: tuple[str, ...] = ("regression", "ltv")


@dataclass(frozen=True)
class ValueConfig:
    """What keeping a customer is worth: margin on spend, over how many days of future spend, and from which
    model (``regression``: the policy's own spend-rate regression; ``ltv``: the validated customer-value
    model, scaled from its horizon to ``horizon_days``)."""

    margin: float = 0.35
    horizon_days: float = 730.0
    source: str = "ltv"


@dataclass(frozen=True)
class PolicyConfig:
    """All settings of the decision rule (see ``features/decision/policy.yaml`` for the documented defaults)."""

    min_incremental_value: float = 0.0
    max_days_inactive: float | None = 90.0
    caps: CapConfig = field(default_factory=CapConfig)
    limits: LimitConfig = field(default_factory=LimitConfig)
    epsilon: float = 0.0
    n_alternatives: int = 3
    defense: DefenseConfig = field(default_factory=DefenseConfig)
    value: ValueConfig = field(default_factory=ValueConfig)

    def with_limits(self, **changes) -> PolicyConfig:
        """A copy with some global limits replaced."""
        return replace(self, limits=replace(self.limits, **changes))


def _sub(cls, spec: dict | None, where: str):
    spec = dict(spec or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(f"policy config: unknown key(s) {unknown} in {where!r}; known: {sorted(known)}")
    return cls(**{**{f.name: getattr(cls(), f.name) for f in fields(cls)}, **spec})


def policy_config_from_dict(spec: dict | None) -> PolicyConfig:
    """Build and check a :class:`PolicyConfig` from its YAML structure (missing keys keep defaults)."""
    spec = dict(spec or {})
    known = {f.name for f in fields(PolicyConfig)}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(f"policy config: unknown key(s) {unknown}; known: {sorted(known)}")
    cfg = PolicyConfig(
        min_incremental_value=float(spec.get("min_incremental_value", 0.0)),
        max_days_inactive=spec.get("max_days_inactive", 90.0),
        caps=_sub(CapConfig, spec.get("caps"), "caps"),
        limits=_sub(LimitConfig, spec.get("limits"), "limits"),
        epsilon=float(spec.get("epsilon", 0.0)),
        n_alternatives=int(spec.get("n_alternatives", 3)),
        defense=_sub(DefenseConfig, spec.get("defense"), "defense"),
        value=_sub(ValueConfig, spec.get("value"), "value"),
    )
    if cfg.value.source not in VALUE_SOURCES:
        raise ValueError(f"policy config: value.source must be one of {list(VALUE_SOURCES)}, got {cfg.value.source!r}")
    if not 0.0 <= cfg.epsilon < 1.0:
        raise ValueError(f"policy config: epsilon must be in [0, 1), got {cfg.epsilon}")
    for name, table in (
        ("caps.per_channel", cfg.caps.per_channel),
        ("limits.per_channel", cfg.limits.per_channel),
    ):
        bad = sorted(set(table) - set(OUTREACH_CHANNELS))
        if bad:
            raise ValueError(f"policy config: {name} names unknown channel(s) {bad}; known: {OUTREACH_CHANNELS}")
    for name, value in (
        ("limits.budget", cfg.limits.budget),
        ("limits.max_contacts", cfg.limits.max_contacts),
        *((f"limits.per_channel.{k}", v) for k, v in cfg.limits.per_channel.items()),
        *((f"limits.per_offer.{k}", v) for k, v in cfg.limits.per_offer.items()),
    ):
        if value is not None and float(value) < 0:
            raise ValueError(f"policy config: {name} must be >= 0, got {value}")
    return cfg


def load_policy_config(path: str | Path | None = None) -> PolicyConfig:
    """Load policy settings from YAML; ``None`` loads the packaged default ``features/decision/policy.yaml``."""
    pkg = resources.files("features.decision").joinpath("policy.yaml")
    text = pkg.read_text() if path is None else Path(path).read_text()
    return policy_config_from_dict(yaml.safe_load(text))
