"""How the next-best-action policy is trained and evaluated (the decision rule's own settings are PolicyConfig)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PolicyTrainConfig:
    """How the policy is trained and evaluated (the decision rule's own settings are in PolicyConfig).

    The objective and its outcome window (``horizon_days``) are decision settings
    (:class:`features.decision.config.PolicyConfig`), pickled with the policy.
    ``max_campaigns``: the latest campaigns used for training (``None``, the default = every campaign with a
    complete outcome window). Effects are small next to the noise of a churn outcome, so every logged decision
    helps: more campaigns raise the captured uplift for a longer training time. A number keeps only the latest
    campaigns (a base that has changed).
    ``final``: the effect model's final stage (:class:`features.models.uplift.UpliftModel`): ``auto`` (default) =
    ``plugin``, ``dr`` and, when opens are tracked, ``reach`` all fitted and the one with the best DR value on
    held-out validation decisions kept; or one of them by name.
    ``threshold_z``: the contact threshold maximises ``DR gain - z se`` on validation rows (0 = the point
    estimate; see :func:`training.policy.fit.select_threshold`). ``refit``: refit the chosen model on fit +
    validation rows.
    ``effect_ridge``: ridge penalty of the ``reach`` final stage's shared slopes (per logged row).
    ``effect_features``: how many features the ``reach`` stage's slopes use (``"auto"``: screened and chosen on
    held-out pseudo-outcomes; an integer; ``None``: all). See :class:`features.models.uplift.UpliftModel`.
    ``report_customer_ids``: name the customers in the report's defense examples (off: reports are shared,
    and the copy logged to MLflow never names them).
    """

    max_campaigns: int | None = None
    holdout_share: float = 0.3
    validation_share: float = 0.25
    final: str = "auto"
    outcome_estimators: int = 300
    effect_estimators: int = 150
    seed: int = 0
    n_boot: int = 300
    refit: bool = True
    threshold_z: float = 0.0
    effect_ridge: float = 0.3
    effect_features: int | str | None = "auto"
    report_customer_ids: bool = False
