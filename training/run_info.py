"""What a training run records besides its own figures: the data it read, the code it ran, and what a version is.

The data: an MLflow dataset input (name, digest, source folder) and ``data.*`` tags from the data fingerprint;
the code: the git commit of the checkout the run came from (nothing when it is not a git checkout); and the
registered model's and version's descriptions, so that the registry says what each version is without
opening its run.
"""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
# MLflow keeps dataset digests in a 36-character column.
DIGEST_CHARS = 32

MODEL_DESCRIPTIONS: dict[str, str] = {
    "churn": (
        "engage churn model: raw touchpoints before a cutoff -> point-in-time engagement, intent and value "
        "features -> calibrated LightGBM churn probability with reason codes. MLflow pyfunc: input is the data "
        "contract as one flat frame (touchpoints with optional customer.* and outreach.* columns, UTC timestamps), "
        "output one row per customer (customer_id, churn_probability, churn_reasons, engagement and intent columns, "
        "model_version). Ships its code (features/) and exact requirements."
    ),
    "system": (
        "engage decision system: the churn model's features and probability plus the next best outreach per "
        "customer (channel x offer or no contact) under consent, frequency caps and budgets. MLflow pyfunc: input "
        "is the data contract as one flat frame, output one row per customer with churn_probability, action, "
        "channel, offer, expected_incremental_value, propensity, defense_target, defense_reasons, "
        "no_contact_reason and model_version. Ships its code (features/) and exact requirements."
    ),
}


def git_commit(folder: Path = PROJECT) -> tuple[str, bool] | None:
    """``(commit, dirty)`` of the git checkout whose top folder is ``folder``; ``None`` when it is not one
    (an installed package inside some other repository does not count) or git is missing."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if not top or Path(top).resolve() != folder.resolve():
        return None
    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    return commit, bool(git("status", "--porcelain", "--untracked-files=no"))


def code_tags(folder: Path = PROJECT) -> dict[str, str]:
    """The run tags naming the code: MLflow's git commit tag and whether the checkout had uncommitted changes."""
    found = git_commit(folder)
    if found is None:
        return {}
    commit, dirty = found
    return {"mlflow.source.git.commit": commit, "git_dirty": str(dirty).lower()}


def log_data_input(
    fingerprint: dict[str, Any], source: str | None, *, context: str = "training", tag_prefix: str = "data"
) -> None:
    """The data folder as the active run's dataset input (name, digest, source; ``context`` e.g. ``training``
    or ``testing``) and its fingerprint as ``<tag_prefix>.*`` tags."""
    import mlflow
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    if source:
        with warnings.catch_warnings():
            # MLflow registers its local-file source under two schemes and warns that both match
            warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
            where = resolve_dataset_source(Path(source).resolve().as_uri())
    else:
        where = CodeDatasetSource({"engage.source": "tables in memory"})
    name = str(fingerprint.get("dataset") or (Path(source).name if source else "tables"))
    dataset = MetaDataset(where, name=name, digest=str(fingerprint["sha256"])[:DIGEST_CHARS])
    mlflow.log_input(dataset, context=context)
    mlflow.set_tags({f"{tag_prefix}.{k}": str(v) for k, v in fingerprint.items()})
    mlflow.set_tags({f"{tag_prefix}.source": str(source or "tables in memory"), **code_tags()})


def describe_version(config, model_key: str, version: str, text: str) -> None:
    """Set the registered model's description (what it is) and the version's (what this version is)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=config.tracking_uri)
    name = config.registered_models.get(model_key, f"engage-{model_key}")
    client.update_registered_model(name, description=MODEL_DESCRIPTIONS.get(model_key, ""))
    client.update_model_version(name, version, description=text)


def data_summary(fingerprint: dict[str, Any]) -> str:
    """One line naming the data: dataset, counts and the start of its content hash."""
    return (
        f"data {fingerprint.get('dataset') or 'unnamed'}: {int(fingerprint['customers']):,} customers, "
        f"{int(fingerprint['touchpoints']):,} touchpoints, {int(fingerprint['outreach']):,} outreach rows "
        f"(sha256 {str(fingerprint['sha256'])[:12]})"
    )
