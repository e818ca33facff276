"""What the job stores with each model version it trains, and reads back from the champion.

A version trained by ``engage retrain`` carries tags ``retrain.data_sha256`` (the fingerprint of the data it
saw), ``retrain.code_version`` (the SHA-256 of engage's source) and ``retrain.as_of``, and an artifact
``retrain/reference.json`` in its run: the data profile (:mod:`training.retrain.profile`) and the feature and
score sketches (:func:`training.retrain.drift.reference_sketches`). The next run compares its data with it.
"""

from __future__ import annotations

from dataclasses import dataclass

REFERENCE_FILE = "retrain/reference.json"
DATA_TAG, CODE_TAG, AS_OF_TAG = "retrain.data_sha256", "retrain.code_version", "retrain.as_of"


@dataclass(frozen=True)
class Champion:
    """The served decision system's champion: registered name, version, run and tags."""

    name: str
    version: str
    run_id: str
    tags: dict

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def same_inputs(self, data_sha256: str, code: str) -> bool:
        """Whether it was trained by this job on the same data with the same code (nothing to do)."""
        return self.tags.get(DATA_TAG) == data_sha256 and self.tags.get(CODE_TAG) == code


def system_name(config) -> str:
    return config.registered_models.get("system", "engage-decision-system")


def current_champion(config) -> Champion | None:
    """The decision system's champion now, or ``None`` when there is none yet."""
    from mlflow import MlflowClient

    from features.contract.errors import is_model_missing

    client = MlflowClient(tracking_uri=config.tracking_uri)
    try:
        mv = client.get_model_version_by_alias(system_name(config), config.champion)
    except Exception as exc:
        if is_model_missing(exc):
            return None
        raise
    return Champion(mv.name, str(mv.version), str(mv.run_id), dict(mv.tags or {}))


def load_reference(config, champion: Champion | None) -> dict | None:
    """The champion's stored reference (profile and sketches), or ``None`` when it has none."""
    if champion is None or DATA_TAG not in champion.tags:
        return None
    import mlflow

    mlflow.set_tracking_uri(config.tracking_uri)
    try:
        return mlflow.artifacts.load_dict(f"runs:/{champion.run_id}/{REFERENCE_FILE}")
    except Exception:  # an artifact store that lost the file: judged as if there were no reference
        return None


def store_reference(config, version: str, run_id: str, reference: dict, tags: dict[str, str]) -> None:
    """Log the reference into the version's run and tag the version with what it was trained on."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=config.tracking_uri)
    client.log_dict(run_id, reference, REFERENCE_FILE)
    for key, value in tags.items():
        client.set_model_version_tag(system_name(config), version, key, value)
