"""The last steps, the only ones that change what is served: the alias moves and the published scores.

Scores are computed with the challenger before anything moves, into ``scores-v<version>-<as-of>.parquet``
beside the published ``scores.parquet``; after the decision system's champion alias has moved, the churn
model's follows and the published file is replaced by an atomic rename. A job killed before the alias move
leaves everything as it was; one killed between the move and the rename leaves the previous scores
published, and the next run publishes the champion's scores (:func:`republish`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

PUBLISHED = "scores.parquet"


def staged_path(scores_dir: Path, version: str, as_of) -> Path:
    return Path(scores_dir) / f"scores-v{version}-{as_of.strftime('%Y%m%dT%H%M%S')}.parquet"


def publish(staged: Path) -> Path:
    """Replace the published scores with ``staged`` atomically (copy beside it, fsync, rename)."""
    target = staged.with_name(PUBLISHED)
    tmp = staged.with_name(f".{PUBLISHED}.{os.getpid()}.tmp")
    shutil.copyfile(staged, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    return target


def republish(scores_dir: Path, version: str) -> Path | None:
    """Publish the champion ``version``'s staged scores if the published file is not theirs (a run killed
    between its alias move and its rename); the newest staged file of that version wins."""
    staged = sorted(Path(scores_dir).glob(f"scores-v{version}-*.parquet"))
    if not staged:
        return None
    target = staged[-1].with_name(PUBLISHED)
    if target.exists() and target.read_bytes() == staged[-1].read_bytes():
        return None
    return publish(staged[-1])


def follow_with_churn(config, churn_version: str, decision: str, reason: str) -> None:
    """Record the system's decision on the churn version it carries, and move the churn champion with it."""
    from mlflow import MlflowClient

    from training.registry import promotion_lock

    name = config.registered_models.get("churn", "engage-churn")
    client = MlflowClient(tracking_uri=config.tracking_uri)
    with promotion_lock(config, name):
        client.set_model_version_tag(name, churn_version, "promotion_decision", decision)
        client.set_model_version_tag(name, churn_version, "promotion_reason", f"engage retrain: {reason}"[:5000])
        if decision == "promoted":
            client.set_registered_model_alias(name, config.champion, churn_version)
