"""MLflow configuration, run logging of the decision system, registration and champion/challenger promotion.

The registered model is an MLflow ``python_function`` model whose ``loader_module`` is
:mod:`features.system`: the pickled :class:`~features.system.DecisionSystem` (fitted feature pipeline +
calibrated churn model, optionally the policy) is its data, the ``features`` package is its code
(``code_paths``) and its requirements pin what that code imports, so ``models:/<name>@champion`` loads in an
environment built from the model's own ``requirements.txt``, with no tracking server. Its signature is the
data contract as one flat frame (:mod:`features.contract.flat`) in, the decision per customer out.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from features.contract.errors import ModelNotFoundError, is_model_missing
from features.contract.registry_settings import DEFAULT_REGISTERED_MODELS, check_registry_settings
from features.contract.settings_file import read_yaml
from features.system import CHECKSUM_TAG, file_sha256

log = logging.getLogger("engage.registry")

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "mlflow.yaml"


@dataclass(frozen=True)
class Promotion:
    """Thresholds a challenger must meet against the champion on the same test cutoff."""

    metric: str = "auc"
    min_improvement: float = 0.0
    max_brier_increase: float = 0.002
    max_ece: float = 0.05


@dataclass(frozen=True)
class MlflowConfig:
    """What ``mlflow.yaml`` holds, with relative paths resolved against the file's folder."""

    tracking_uri: str
    artifact_location: str | None = None
    experiments: dict[str, str] = field(default_factory=lambda: {"churn": "engage-churn"})
    registered_models: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_REGISTERED_MODELS))
    aliases: dict[str, str] = field(
        default_factory=lambda: {"champion": "champion", "challenger": "challenger"}
    )
    promotion: Promotion = field(default_factory=Promotion)
    churn: dict[str, Any] = field(default_factory=dict)
    # the folder of the locks that serialise promotions and prove runs alive (training.locks)
    lock_dir: str = "work/engage-locks"
    # how long a locked registry database is retried, and how long a promotion waits for another one
    busy_retry_seconds: float = 30.0
    lock_timeout_seconds: float = 600.0
    # where a trained model is saved when registering it fails (``engage register`` takes it from there)
    unregistered_dir: str = "work/unregistered"

    @property
    def champion(self) -> str:
        return self.aliases.get("champion", "champion")

    @property
    def challenger(self) -> str:
        return self.aliases.get("challenger", "challenger")


def _resolve_uri(uri: str, base: Path) -> str:
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{(base / uri[len('sqlite:///') :]).resolve()}"
    if "://" not in uri:  # a plain folder: a file store
        return (base / uri).resolve().as_uri()
    return uri


def _default_lock_dir(uri: str, base: Path) -> Path:
    """Beside a SQLite database or inside a file store; for a server, the config's ``work`` folder."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        return db.with_name(db.name + ".locks")
    if uri.startswith("file://"):
        return Path(uri[len("file://") :]) / ".engage-locks"
    return base / "work" / "engage-locks"


def load_config(path: str | Path | None = None, *, tracking_uri: str | None = None) -> MlflowConfig:
    """Read ``mlflow.yaml`` (default: the project's); ``tracking_uri`` overrides the file's."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    if not path.exists():
        raise FileNotFoundError(f"{path}: MLflow config not found")
    spec = check_registry_settings(read_yaml(path), path)
    base = path.resolve().parent
    uri = _resolve_uri(str(tracking_uri or spec.get("tracking_uri") or "sqlite:///work/mlflow.db"), base)
    art = spec.get("artifact_location")
    art_uri = (base / art).resolve().as_uri() if art and "://" not in str(art) else art
    promo = spec.get("promotion") or {}
    unknown = set(promo) - set(Promotion.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{path}: promotion has unknown keys {sorted(unknown)}")
    return MlflowConfig(
        tracking_uri=uri,
        artifact_location=art_uri,
        experiments={
            **MlflowConfig.__dataclass_fields__["experiments"].default_factory(),
            **(spec.get("experiments") or {}),
        },
        registered_models={
            **MlflowConfig.__dataclass_fields__["registered_models"].default_factory(),
            **(spec.get("registered_models") or {}),
        },
        aliases={
            **MlflowConfig.__dataclass_fields__["aliases"].default_factory(),
            **(spec.get("aliases") or {}),
        },
        promotion=Promotion(**{k: (str(v) if k == "metric" else float(v)) for k, v in promo.items()}),
        churn=dict(spec.get("churn") or {}),
        lock_dir=str(base / spec["lock_dir"] if spec.get("lock_dir") else _default_lock_dir(uri, base)),
        busy_retry_seconds=float(spec.get("busy_retry_seconds", MlflowConfig.busy_retry_seconds)),
        lock_timeout_seconds=float(spec.get("lock_timeout_seconds", MlflowConfig.lock_timeout_seconds)),
        unregistered_dir=str(base / (spec.get("unregistered_dir") or MlflowConfig.unregistered_dir)),
    )


def experiment_id(config: MlflowConfig, key: str = "churn") -> str:
    """Id of the named experiment, created (with the configured artifact folder) when missing."""
    import mlflow

    mlflow.set_tracking_uri(config.tracking_uri)
    name = config.experiments.get(key, f"engage-{key}")
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if config.artifact_location and not config.tracking_uri.startswith(("http://", "https://", "databricks")):
        location = f"{config.artifact_location.rstrip('/')}/{name}"
    return mlflow.create_experiment(name, artifact_location=location)


# ------------------------------------------------------------------------------------------ model


def model_requirements() -> list[str]:
    """Exact pins (``name==version``, as installed now) of every third-party distribution that the code
    shipped with the model imports: what the model needs besides MLflow, which MLflow pins itself."""
    import ast
    import importlib.metadata as md
    import sys

    import features

    modules: set[str] = set()
    for path in Path(features.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                modules.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    modules -= {*sys.stdlib_module_names, "features", "__future__"}
    dists = md.packages_distributions()
    missing = sorted(m for m in modules if m not in dists)
    if missing:
        raise RuntimeError(f"model requirements: no installed distribution provides {', '.join(missing)}")
    return sorted({f"{d}=={md.version(d)}" for m in modules for d in dists[m]}, key=str.lower)


def _shipped_code(folder: Path) -> Path:
    """A copy of the ``features`` package (without caches) in ``folder``: the model's ``code_paths``, so that
    it loads where ``engage`` is not installed. Everything pickled in a model lives in ``features``."""
    import shutil

    import features

    target = folder / "features"
    shutil.copytree(Path(features.__file__).parent, target, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))
    return target


_SCHEMA_TYPES = {"f": "double", "b": "boolean", "M": "datetime"}


def pyfunc_signature(system, example=None, cutoff=None):
    """The model signature: the flat contract frame in (:mod:`features.contract.flat`, with the customer
    attributes this system reads), the decision columns out, and the ``cutoff`` parameter.

    The output columns and their types are those of ``system.predict`` on ``example`` (default: one customer
    with no history).
    """
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import DataType
    from mlflow.types.schema import AnyType, ColSpec, ParamSchema, ParamSpec, Schema

    from features.contract.flat import flat_columns

    def dtype(kind: str):
        return AnyType() if kind == "any" else DataType[kind]

    inputs = Schema(
        [ColSpec(dtype(c.kind), c.name, required=c.required) for c in flat_columns(system.static_attribute_kinds())]
    )
    if example is None or not len(example):
        example = pd.DataFrame({"customer_id": ["example"], "ts": [pd.NaT], "channel": [None], "kind": [None],
                                "direction": [None]})
    output = system.predict(example, {"cutoff": str(cutoff) if cutoff is not None else ""})
    outputs = Schema(
        [ColSpec(DataType[_SCHEMA_TYPES.get(output[c].dtype.kind, "string")], c) for c in output.columns]
    )
    return ModelSignature(inputs, outputs, params=ParamSchema([ParamSpec("cutoff", DataType.string, "")]))


@dataclass(frozen=True)
class _Reserved:
    """A registered version created before its model's files are logged, so that the model knows its version."""

    name: str
    version: str
    model_id: str


def _reserve_version(name: str):
    """An empty logged model in the active run, registered as a new version of ``name``."""
    import mlflow

    logged = mlflow.initialize_logged_model(name="model")
    mv = mlflow.register_model(f"models:/{logged.model_id}", name)
    return _Reserved(name, str(mv.version), logged.model_id)


def _release(reserved: _Reserved) -> None:
    """Undo a reservation whose model could not be logged: no version may point at missing files."""
    import mlflow
    from mlflow.entities import LoggedModelStatus

    mlflow.MlflowClient().delete_model_version(reserved.name, reserved.version)
    mlflow.finalize_logged_model(reserved.model_id, LoggedModelStatus.FAILED)


def log_decision_system(system, *, name: str = "model", cutoff=None, registered_model_name: str | None = None):
    """Log ``system`` as a portable pyfunc model in the active run; returns MLflow's ModelInfo, with the
    ``registered_model_version`` and the ``model_sha256`` of its model file.

    The model carries the ``features`` code and exact pins of what that code imports, so it loads in an
    environment built from its own requirements. With ``registered_model_name`` its version is registered
    first, so that the pickled system reports it (``model_version``) in every answer, and the SHA-256 of the
    model file is recorded on it as the ``model_sha256`` tag, which every load checks. The input example is
    synthetic (:mod:`training.input_example`): no row of the training data reaches the registry. ``cutoff`` is
    the example's scoring cutoff (default: now).
    """
    import mlflow
    import pandas as pd

    from features.system import save_system
    from training.input_example import synthetic_input_example

    at = pd.Timestamp(cutoff) if cutoff is not None else pd.Timestamp.now(tz="UTC")
    example = synthetic_input_example(at, system.static_attribute_kinds())
    signature = pyfunc_signature(system, example, at)
    reserved = _reserve_version(registered_model_name) if registered_model_name else None
    if reserved is not None:
        system.metadata["model_version"] = f"{reserved.name}/{reserved.version}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "system"
            digest = file_sha256(save_system(system, data))
            info = mlflow.pyfunc.log_model(
                name=name,
                loader_module="features.system",
                data_path=str(data),
                code_paths=[str(_shipped_code(Path(tmp)))],
                signature=signature,
                input_example=example,
                pip_requirements=model_requirements(),
                model_id=reserved.model_id if reserved is not None else None,
            )
    except BaseException:
        if reserved is not None:
            _release(reserved)
        raise
    info.model_sha256 = digest
    if reserved is not None:
        info.registered_model_version = reserved.version
        mlflow.MlflowClient().set_model_version_tag(reserved.name, reserved.version, CHECKSUM_TAG, digest)
    return info


def load_decision_system(uri: str, *, tracking_uri: str | None = None):
    """Load the ``DecisionSystem`` behind a model URI (``models:/name@champion``, ``models:/name/3``,
    ``runs:/...``), after checking a registered version's model file against its ``model_sha256`` tag.

    A missing model, version or alias is a :class:`ModelNotFoundError`; a file that does not match its
    recorded digest, or does not unpickle, a :class:`ModelIntegrityError`.
    """
    import mlflow
    import mlflow.artifacts
    import mlflow.pyfunc

    from features.system import model_folder_file, verify_sha256

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    try:
        pinned, expected = _pinned_version(uri)
        with tempfile.TemporaryDirectory(prefix="engage-model-") as tmp:
            local = mlflow.artifacts.download_artifacts(pinned, dst_path=tmp)
            verify_sha256(model_folder_file(local), expected, name=pinned)
            return mlflow.pyfunc.load_model(local).unwrap_python_model()
    except Exception as exc:
        if is_model_missing(exc):
            raise ModelNotFoundError(f"no model at {uri} ({exc}); train and register one first") from exc
        raise


def pinned_model_uri(uri: str) -> str:
    """``uri`` with an alias resolved to the version it points at now (``models:/name/3``); others as given."""
    return _pinned_version(uri)[0]


def _pinned_version(uri: str) -> tuple[str, str | None]:
    """A ``models:/`` URI pinned to the version its alias points at now, and that version's ``model_sha256``
    tag (other URIs as given, with no recorded digest)."""
    ref = uri.removeprefix("models:/")
    if ref == uri:
        return uri, None
    from mlflow import MlflowClient

    client = MlflowClient()
    if "@" in ref:
        name, alias = ref.split("@", 1)
        mv = client.get_model_version_by_alias(name, alias)
    else:
        name, version = ref.rsplit("/", 1)
        if not version.isdigit():
            return uri, None
        mv = client.get_model_version(name, version)
    return f"models:/{name}/{mv.version}", (mv.tags or {}).get(CHECKSUM_TAG)


# -------------------------------------------------------------------------------------- promotion


def promotion_decision(
    challenger: dict[str, float], champion: dict[str, float] | None, rules: Promotion
) -> tuple[bool, str]:
    """Whether the challenger should become champion, and why (both measured on the same test cutoff)."""
    metric = rules.metric
    c_val = challenger.get(metric)
    if c_val is None or c_val != c_val:
        return False, f"challenger has no {metric} on the test cutoff"
    if challenger.get("ece", 0.0) > rules.max_ece:
        return False, f"challenger ece {challenger['ece']:.4f} > max_ece {rules.max_ece}"
    if champion is None:
        return True, f"no champion yet; challenger {metric} {c_val:.4f}"
    h_val = champion.get(metric, float("nan"))
    # strictly better: a tie keeps the champion (moving the alias for nothing would only add risk)
    if not (c_val > h_val + rules.min_improvement):
        return False, (
            f"challenger {metric} {c_val:.4f} is not above champion {h_val:.4f} + min_improvement "
            f"{rules.min_improvement}"
        )
    if challenger.get("brier", 0.0) > champion.get("brier", 1.0) + rules.max_brier_increase:
        return False, (
            f"challenger brier {challenger['brier']:.4f} > champion {champion['brier']:.4f} + "
            f"{rules.max_brier_increase}"
        )
    return True, (
        f"challenger {metric} {c_val:.4f} > champion {h_val:.4f} + {rules.min_improvement}; brier "
        f"{challenger.get('brier', float('nan')):.4f} vs {champion.get('brier', float('nan')):.4f}"
    )


Decide = Callable[[dict[str, float], dict[str, float] | None], tuple[bool, str]]


def _champion_version(client, name: str, alias: str):
    """The version the champion alias points at now, or ``None`` when there is none (yet)."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except Exception as exc:
        if is_model_missing(exc):
            return None
        raise


def _version_of(mv) -> str | None:
    return None if mv is None else str(mv.version)


def promotion_lock(config: MlflowConfig, name: str):
    """The lock under which one promotion of ``name`` re-reads the champion and moves the aliases."""
    from training.locks import exclusive_lock

    return exclusive_lock(
        Path(config.lock_dir) / f"promote-{name}.lock",
        timeout=config.lock_timeout_seconds,
        what=f"promoting a new {name} version",
    )


def _decision_tags(promote: bool, reason: str, compared_with: str | None, challenger: dict, champion) -> dict:
    tags = {
        "promotion_decision": "promoted" if promote else "rejected",
        "promotion_reason": reason,
        "compared_with_version": compared_with or "none",
    }
    for k in ("auc", "brier", "ece"):
        if k in challenger:
            tags[f"test_{k}"] = f"{challenger[k]:.6f}"
        if champion and k in champion:
            tags[f"champion_test_{k}"] = f"{champion[k]:.6f}"
    return tags


def register_and_promote(
    config: MlflowConfig,
    model_info,
    *,
    challenger_metrics: dict[str, float],
    champion_metrics_fn: Callable[[str], dict[str, float]],
    model_key: str = "churn",
    decide: Decide | None = None,
) -> dict[str, Any]:
    """Compare the logged model's new version with the champion and move the aliases: compare-and-set.

    ``champion_metrics_fn(champion_uri) -> dict`` measures the current champion on the same test cutoff
    as ``challenger_metrics``; ``decide(challenger, champion_or_None) -> (promote, reason)`` defaults to
    :func:`promotion_decision` under the configured rules. The champion is measured first (no lock held,
    as that may take a while), then, under the promotion lock, read again: if another promotion moved it
    meanwhile, the new champion is measured (still under the lock) and the decision taken against it. Only
    then are the decision tags written and the aliases moved (``champion`` if promoted, then ``challenger``),
    so no alias ever points at a version that was not evaluated.
    """
    from mlflow import MlflowClient

    decide = decide or (lambda ch, champ: promotion_decision(ch, champ, config.promotion))
    client = MlflowClient(tracking_uri=config.tracking_uri)
    name = config.registered_models.get(model_key, f"engage-{model_key}")
    version = str(model_info.registered_model_version)
    if version in ("None", ""):
        raise ValueError("model was not registered (no registered_model_version)")
    measured: dict[str, dict[str, float]] = {}

    def measure(mv) -> dict[str, float] | None:
        other = _version_of(mv)
        if other is None or other == version:
            return None
        if other not in measured:
            log.info("measuring champion %s v%s on the same test cutoff", name, other)
            measured[other] = champion_metrics_fn(f"models:/{name}/{other}")
        return measured[other]

    champ = _champion_version(client, name, config.champion)
    champion_metrics = measure(champ)
    with promotion_lock(config, name):
        now = _champion_version(client, name, config.champion)
        if _version_of(now) != _version_of(champ):
            log.info("champion of %s moved from v%s to v%s meanwhile: comparing with v%s", name,
                     _version_of(champ), _version_of(now), _version_of(now))
            champ, champion_metrics = now, measure(now)
        promote, reason = decide(challenger_metrics, champion_metrics)
        tags = _decision_tags(promote, reason, _version_of(champ), challenger_metrics, champion_metrics)
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
        if promote:
            client.set_registered_model_alias(name, config.champion, version)
        client.set_registered_model_alias(name, config.challenger, version)
    log.info("%s v%s: %s (%s)", name, version, tags["promotion_decision"], reason)
    return {
        "registered_model": name,
        "version": version,
        "promoted": promote,
        "reason": reason,
        "compared_with_version": _version_of(champ),
        "champion_version": version if promote else _version_of(champ),
        "champion_metrics": champion_metrics,
    }
