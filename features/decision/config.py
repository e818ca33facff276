"""The settings of the next-best-action rule, and how they are read from YAML.

Defaults are documented in the packaged ``features/decision/policy.yaml``; a user file overrides any key
and keeps the rest. Unknown keys and channels are errors, so a typo never silently means "no limit".
The configs are frozen dataclasses: they are pickled inside a registered decision system.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path

from features.contract.schema import OUTREACH_CHANNELS
from features.contract.settings_file import parse_yaml
from features.decision.objective import DEFAULT_HORIZON_DAYS, Objective, check_objective

# The retention defaults that a campaign objective does not take unless they are set.
RETENTION_LOOKBACK_DAYS = 90


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
class LabelConfig:
    """Who among the logged customers gets an outcome (a training label), and so who is left out.

    ``active_within_days``: only customers with an active touch in this many days before the campaign (the
    retention default, 90: churn is only defined for a customer who was active); ``None``: every logged
    customer. ``signed_up_before_campaign``: leave out customers whose signup date is after the decision.
    """

    active_within_days: int | None = RETENTION_LOOKBACK_DAYS
    signed_up_before_campaign: bool = True


@dataclass(frozen=True)
class PolicyConfig:
    """All settings of the decision rule (see ``features/decision/policy.yaml`` for the documented defaults).

    ``objective`` (:mod:`features.decision.objective`) and ``horizon_days`` (the outcome window after each
    campaign decision) say what the policy optimises; ``labels`` who gets an outcome.
    """

    min_incremental_value: float = 0.0
    max_days_inactive: float | None = 90.0
    objective: str = "retention"
    horizon_days: int = 90
    labels: LabelConfig = field(default_factory=LabelConfig)
    caps: CapConfig = field(default_factory=CapConfig)
    limits: LimitConfig = field(default_factory=LimitConfig)
    epsilon: float = 0.0
    n_alternatives: int = 3
    defense: DefenseConfig = field(default_factory=DefenseConfig)
    value: ValueConfig = field(default_factory=ValueConfig)

    def with_limits(self, **changes) -> PolicyConfig:
        """A copy with some global limits replaced."""
        return replace(self, limits=replace(self.limits, **changes))

    def __setstate__(self, state: dict) -> None:
        # Configs pickled before objectives existed were retention configs: fill the newer fields' defaults.
        defaults = {"objective": "retention", "horizon_days": 90, "labels": LabelConfig()}
        object.__setattr__(self, "__dict__", {**defaults, **state})

    @property
    def objective_spec(self) -> Objective:
        """The objective with its margin (``value.margin``); configs pickled before objectives are retention."""
        return Objective(self.objective, margin=float(self.value.margin))


def _sub(cls, spec: dict | None, where: str):
    spec = dict(spec or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(f"policy config: unknown key(s) {unknown} in {where!r}; known: {sorted(known)}")
    return cls(**{**{f.name: getattr(cls(), f.name) for f in fields(cls)}, **spec})


def _objective_defaults(spec: dict) -> dict:
    """The objective's defaults for the keys ``spec`` leaves out.

    For a campaign objective the retention defaults (the 90-day inactivity exclusion at decision time, labels
    only for customers active in the 90 days before a campaign) apply only when they are set.
    """
    name = check_objective(str(spec.get("objective", "retention")))
    campaign = name != "retention"
    labels = dict(spec.get("labels") or {})
    if campaign and "active_within_days" not in labels:
        labels["active_within_days"] = None
    horizon = spec.get("horizon_days")
    return {
        "objective": name,
        "horizon_days": DEFAULT_HORIZON_DAYS[name] if horizon is None else horizon,
        "max_days_inactive": spec.get("max_days_inactive", None if campaign else 90.0),
        "labels": labels,
    }


def policy_config_from_dict(spec: dict | None, overrides: dict | None = None) -> PolicyConfig:
    """Build and check a :class:`PolicyConfig` from its YAML structure (missing keys keep defaults).

    ``overrides`` (e.g. the command line's ``objective`` and ``horizon_days``) win over the YAML; ``None``
    values in them mean "not given".
    """
    spec = {**dict(spec or {}), **{k: v for k, v in (overrides or {}).items() if v is not None}}
    known = {f.name for f in fields(PolicyConfig)}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(f"policy config: unknown key(s) {unknown}; known: {sorted(known)}")
    resolved = _objective_defaults(spec)
    horizon = resolved["horizon_days"]
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"policy config: horizon_days must be a whole number of days >= 1, got {horizon!r}")
    cfg = PolicyConfig(
        min_incremental_value=float(spec.get("min_incremental_value", 0.0)),
        max_days_inactive=resolved["max_days_inactive"],
        objective=resolved["objective"],
        horizon_days=horizon,
        labels=_sub(LabelConfig, resolved["labels"], "labels"),
        caps=_sub(CapConfig, spec.get("caps"), "caps"),
        limits=_sub(LimitConfig, spec.get("limits"), "limits"),
        epsilon=float(spec.get("epsilon", 0.0)),
        n_alternatives=int(spec.get("n_alternatives", 3)),
        defense=_sub(DefenseConfig, spec.get("defense"), "defense"),
        value=_sub(ValueConfig, spec.get("value"), "value"),
    )
    _check(cfg)
    return cfg


def _check(cfg: PolicyConfig) -> None:
    """Ranges and channel names of a built config."""
    if cfg.value.source not in VALUE_SOURCES:
        raise ValueError(f"policy config: value.source must be one of {list(VALUE_SOURCES)}, got {cfg.value.source!r}")
    if not 0.0 <= cfg.epsilon < 1.0:
        raise ValueError(f"policy config: epsilon must be in [0, 1), got {cfg.epsilon}")
    lookback = cfg.labels.active_within_days
    if lookback is not None and (isinstance(lookback, bool) or not isinstance(lookback, int) or lookback < 1):
        raise ValueError(f"policy config: labels.active_within_days must be null or >= 1, got {lookback!r}")
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


def load_policy_config(path: str | Path | None = None, overrides: dict | None = None) -> PolicyConfig:
    """Load policy settings from YAML; ``None`` loads the packaged default ``features/decision/policy.yaml``.

    ``overrides`` (the command line's ``objective``, ``horizon_days``) win over the file.
    """
    pkg = resources.files("features.decision").joinpath("policy.yaml")
    text = pkg.read_text() if path is None else Path(path).read_text()
    spec = parse_yaml(text, path or "policy.yaml")
    if spec is not None and not isinstance(spec, dict):
        raise ValueError(f"{path or 'policy.yaml'}: expected a mapping of settings at the top level")
    return policy_config_from_dict(spec, overrides)
