"""Which keys ``mlflow.yaml`` may hold, shared by the trainers (``training.registry``) and the service.

A misspelt key must not fall back silently to a default: ``tracking_url:`` would otherwise send a weekly
retrain to a fresh local store and promote its model there as the first champion, and ``champoin:`` under
``aliases`` would serve whatever the default alias points to.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

TOP_LEVEL_KEYS = frozenset({
    "tracking_uri", "artifact_location", "experiments", "registered_models", "aliases", "promotion", "churn",
    "retrain", "lock_dir", "busy_retry_seconds", "lock_timeout_seconds", "unregistered_dir",
})
# what a file that leaves ``registered_models`` out means, for the trainers and the service alike
DEFAULT_REGISTERED_MODELS = {"system": "engage-decision-system", "churn": "engage-churn"}
# the sections whose keys the code looks up by name (``promotion``, ``churn`` and ``retrain`` check their own)
SECTION_KEYS = {
    "experiments": frozenset({"churn", "policy", "value", "retrain"}),
    "registered_models": frozenset({"system", "churn"}),
    "aliases": frozenset({"champion", "challenger"}),
}


def check_registry_settings(spec: Any, path: str | Path) -> dict[str, Any]:
    """``spec`` (the parsed file) as a mapping, or a ``ValueError`` naming the file and every unknown key."""
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(spec).__name__}")
    unknown = sorted(str(k) for k in set(spec) - TOP_LEVEL_KEYS)
    if unknown:
        raise ValueError(
            f"{path}: unknown top-level keys {unknown}; known: {', '.join(sorted(TOP_LEVEL_KEYS))}"
        )
    for section, known in SECTION_KEYS.items():
        value = spec.get(section)
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise ValueError(f"{path}: {section} must be a mapping, got {type(value).__name__}")
        unknown = sorted(str(k) for k in set(value) - known)
        if unknown:
            raise ValueError(f"{path}: {section} has unknown keys {unknown}; known: {', '.join(sorted(known))}")
        bad = sorted(str(k) for k, v in value.items() if not isinstance(v, str) or not v.strip())
        if bad:
            raise ValueError(f"{path}: {section}.{bad[0]} must be a non-empty name")
    return dict(spec)
