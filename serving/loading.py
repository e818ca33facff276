"""Where the served decision system comes from, and loading it.

Three sources, chosen from the environment by :func:`source_from_env` (the service's entry point):

- ``ENGAGE_MODEL_PATH``: a local MLflow model folder (with an ``MLmodel`` file) or a pickle/joblib
  file of a ``DecisionSystem``, e.g. an exported model or a test model;
- ``ENGAGE_MODEL_SOURCE=bento`` (the default when the service runs from a built Bento): the BentoML
  model ``engage-decision-system`` packed into the Bento by ``bentoml build`` (see
  :func:`package_champion`), so a built Bento runs without the MLflow database;
- otherwise the MLflow registry: ``models:/<name>@<alias>`` with the tracking URI, name and alias from
  ``mlflow.yaml`` (``ENGAGE_MLFLOW_CONFIG``, default ``./mlflow.yaml``), read without creating or migrating
  it (:mod:`serving.champion`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from features.contract.errors import ModelNotFoundError, is_model_missing, retry_while_busy
from features.contract.registry_settings import DEFAULT_REGISTERED_MODELS, check_registry_settings
from features.contract.settings_file import read_yaml
from features.system import CHECKSUM_TAG, load_pickle_file, model_folder_file, unpickling, verify_sha256
from serving.champion import check_registry, registry_lock, sqlite_champion, sqlite_file
from serving.engine import ModelInfo

BENTO_MODEL_NAME = "engage-decision-system"
INFO_FILE = "engage_model.json"
DEFAULT_ALIAS = "champion"
# How long a locked registry is retried before giving up (``busy_retry_seconds`` in mlflow.yaml).
DEFAULT_BUSY_RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class ModelSource:
    """``kind`` is ``path``, ``bento`` or ``mlflow``; ``location`` the path, tag or config file."""

    kind: str
    location: str

    def describe(self) -> str:
        return f"{self.kind}:{self.location}"


def source_from_env(env: Mapping[str, str]) -> ModelSource:
    """The model source configured in ``env`` (see the module docstring)."""
    if env.get("ENGAGE_MODEL_PATH"):
        return ModelSource("path", env["ENGAGE_MODEL_PATH"])
    if env.get("ENGAGE_MODEL_SOURCE", "").lower() == "bento":
        return ModelSource("bento", env.get("ENGAGE_BENTO_MODEL", f"{BENTO_MODEL_NAME}:latest"))
    return ModelSource("mlflow", env.get("ENGAGE_MLFLOW_CONFIG", "mlflow.yaml"))


def read_registry_config(path: str | Path) -> dict[str, Any]:
    """Tracking URI, registered model names (system first, churn as fallback) and alias from ``mlflow.yaml``.

    Relative SQLite paths and plain folders are relative to the config file, as in ``training.registry``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: MLflow config not found (set ENGAGE_MLFLOW_CONFIG or ENGAGE_MODEL_PATH)"
        )
    spec = check_registry_settings(read_yaml(path), path)
    base = path.resolve().parent
    uri = str(spec.get("tracking_uri") or "sqlite:///work/mlflow.db")
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{(base / uri[len('sqlite:///') :]).resolve()}"
    elif "://" not in uri:
        uri = (base / uri).resolve().as_uri()
    # the same defaults as the trainers': a churn champion registered under a file without names is served
    models = {**DEFAULT_REGISTERED_MODELS, **(spec.get("registered_models") or {})}
    names = [models["system"], models["churn"]]
    alias = (spec.get("aliases") or {}).get("champion") or DEFAULT_ALIAS
    retry = float(spec.get("busy_retry_seconds", DEFAULT_BUSY_RETRY_SECONDS))
    return {"tracking_uri": uri, "names": names, "alias": str(alias), "busy_retry_seconds": retry}


def _champion(client: Any, cfg: dict[str, Any]) -> tuple[str, Any]:
    """The first registered model (system, then churn-only) that has the champion alias.

    A missing model or alias tries the next name; any other registry error (a locked database, a server
    that does not answer) is raised as it is, for the caller to retry or report.
    """
    errors = []
    for name in cfg["names"]:
        try:
            return name, client.get_model_version_by_alias(name, cfg["alias"])
        except Exception as exc:
            if not is_model_missing(exc):
                raise
            errors.append(f"{name}@{cfg['alias']}")
    raise ModelNotFoundError(
        f"no champion model in {cfg['tracking_uri']} (looked for {', '.join(errors)}); run `engage demo` or "
        "`engage train churn` (then `engage train policy`) to register one"
    )


def _load_registered(name: str, mv: Any) -> Any:
    """Download a registered version, check its model file against the digest recorded at registration
    (the ``model_sha256`` tag; versions registered before it carry none), then load it."""
    import tempfile

    import mlflow.artifacts
    import mlflow.pyfunc

    with tempfile.TemporaryDirectory(prefix="engage-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(f"models:/{name}/{mv.version}", dst_path=tmp)
        verify_sha256(model_folder_file(local), (mv.tags or {}).get(CHECKSUM_TAG), name=f"models:/{name}/{mv.version}")
        return _unwrap(mlflow.pyfunc.load_model(local))


def _unwrap(obj: Any) -> Any:
    """The decision system inside an MLflow pyfunc wrapper (or the object itself)."""
    for _ in range(4):
        if callable(getattr(obj, "score", None)) and callable(getattr(obj, "score_features", None)):
            return obj
        inner = None
        for getter in ("unwrap_python_model", "get_raw_model"):
            if callable(getattr(obj, getter, None)):
                try:
                    inner = getattr(obj, getter)()
                    break
                except Exception:  # this flavor does not support it; try the next way in
                    continue
        if inner is None:
            inner = next(
                (
                    getattr(obj, a)
                    for a in ("python_model", "system", "decision_system", "model")
                    if getattr(obj, a, None) is not None
                ),
                None,
            )
        if inner is None:
            break
        obj = inner
    raise TypeError(
        f"loaded model {type(obj).__name__} has no score()/score_features(): not a DecisionSystem"
    )


def load_path(path: str | Path) -> Any:
    """Load a decision system from an MLflow model folder or a pickle/joblib file."""
    path = Path(path)
    if path.is_dir():
        if not (path / "MLmodel").exists():
            pickles = sorted(path.glob("*.pkl")) + sorted(path.glob("*.joblib"))
            if len(pickles) != 1:
                raise FileNotFoundError(
                    f"{path}: not an MLflow model folder (no MLmodel file) nor a folder "
                    "with one pickled decision system"
                )
            return load_path(pickles[0])
        flavors = yaml.safe_load((path / "MLmodel").read_text()).get("flavors", {})
        if "sklearn" in flavors and "python_function" not in flavors:
            import mlflow.sklearn

            return _unwrap(mlflow.sklearn.load_model(str(path)))
        import mlflow.pyfunc

        return _unwrap(mlflow.pyfunc.load_model(str(path)))
    if not path.exists():
        raise FileNotFoundError(f"{path}: model file not found")
    if path.suffix == ".pkl":
        # plain pickles (our own save format) go through the unpickler that follows layout moves, after the
        # digest saved beside them (if any) is checked
        return _unwrap(load_pickle_file(path))
    import joblib

    verify_sha256(path, None)
    with unpickling(path):
        return _unwrap(joblib.load(path))


def _system_version(system: Any) -> str | None:
    """The version the system carries itself (``model_version`` or ``metadata['model_version']``)."""
    meta = getattr(system, "metadata", None)
    version = getattr(system, "model_version", None) or (
        meta.get("model_version") if isinstance(meta, Mapping) else None
    )
    return str(version) if version else None


def _system_versions(system: Any) -> dict[str, str]:
    meta = getattr(system, "metadata", None)
    raw = (
        getattr(system, "versions", None)
        or (meta.get("versions") if isinstance(meta, Mapping) else None)
        or {}
    )
    return {str(k): str(v) for k, v in dict(raw).items()} if isinstance(raw, Mapping) else {}


def load_system(source: ModelSource) -> tuple[Any, ModelInfo]:
    """Load the decision system and describe its version(s)."""
    if source.kind == "path":
        path = Path(source.location)
        system = load_path(path)
        info_file = (path if path.is_dir() else path.parent) / INFO_FILE
        meta = json.loads(info_file.read_text()) if info_file.exists() else {}
        version = meta.get("version") or _system_version(system) or f"file:{path.name}"
        return system, ModelInfo(
            str(version), {**_system_versions(system), **meta.get("versions", {})}, source.describe()
        )
    if source.kind == "bento":
        import bentoml

        model = bentoml.models.get(source.location)
        system, info = load_system(ModelSource("path", model.path_of("mlflow_model")))
        return system, ModelInfo(
            info.version, {**info.versions, "bento_model": str(model.tag)}, source.describe()
        )
    cfg = read_registry_config(source.location)
    import mlflow  # first: a worker waiting for a champion pays for the import once, not when one appears
    import mlflow.pyfunc

    check_registry(cfg)  # read-only: a registry that does not exist yet is not created here

    mlflow.set_tracking_uri(cfg["tracking_uri"])

    def champion() -> tuple[str, Any, Any]:
        with registry_lock(cfg):
            name, mv = _champion(mlflow.MlflowClient(tracking_uri=cfg["tracking_uri"]), cfg)
        # Pin the version found, so an alias moved while loading cannot give a mixed answer.
        return name, mv, _load_registered(name, mv)

    name, mv, system = retry_while_busy(
        champion, seconds=cfg["busy_retry_seconds"], what="loading the champion", where=cfg["tracking_uri"]
    )
    version = f"{name}/{mv.version}"
    return system, ModelInfo(
        version,
        {**_system_versions(system), name: str(mv.version), "alias": cfg["alias"], "run_id": str(mv.run_id)},
        f"models:/{name}@{cfg['alias']}",
    )


def source_marker(source: ModelSource) -> str | None:
    """What ``source`` points at right now, read cheaply (no model is loaded): the champion's
    ``<name>/<version>`` for the registry (SQLite read directly, other stores through MLflow), the size and
    modification time of a model file or folder, and None for a Bento's own model, which never changes.

    The reload watcher (:mod:`serving.reload`) compares it with what is served. Raises
    :class:`~features.contract.errors.ModelNotFoundError` when the registry has no champion and ``OSError`` or
    :class:`~serving.champion.RegistryUnreadableError` when it cannot be read now.
    """
    if source.kind == "path":
        path = Path(source.location)
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        stats = [p.stat() for p in files]
        return f"file:{sum(s.st_size for s in stats)}:{max((s.st_mtime_ns for s in stats), default=0)}"
    if source.kind != "mlflow":
        return None
    cfg = read_registry_config(source.location)
    if sqlite_file(cfg["tracking_uri"]) is not None:
        name, version = sqlite_champion(cfg)
        return f"{name}/{version}"
    import mlflow

    name, mv = _champion(mlflow.MlflowClient(tracking_uri=cfg["tracking_uri"]), cfg)
    return f"{name}/{mv.version}"


def package_champion(config: str | Path = "mlflow.yaml") -> str:
    """Copy the champion from the MLflow registry into the BentoML model store for ``bentoml build``.

    Returns the BentoML model tag; ``bentofile.yaml`` lists ``engage-decision-system:latest`` so the
    Bento carries the model and serves it with ``ENGAGE_MODEL_SOURCE=bento``.
    """
    import bentoml
    import mlflow

    cfg = read_registry_config(config)
    check_registry(cfg)
    mlflow.set_tracking_uri(cfg["tracking_uri"])
    name, mv = _champion(mlflow.MlflowClient(tracking_uri=cfg["tracking_uri"]), cfg)
    version = f"{name}/{mv.version}"
    with bentoml.models.create(
        BENTO_MODEL_NAME,
        labels={"registered_model": name, "version": str(mv.version)},
        metadata={"version": version, "alias": cfg["alias"]},
    ) as bmodel:
        dest = Path(bmodel.path_of("mlflow_model"))
        mlflow.artifacts.download_artifacts(f"models:/{name}/{mv.version}", dst_path=str(dest))
        verify_sha256(model_folder_file(dest), (mv.tags or {}).get(CHECKSUM_TAG), name=f"models:/{name}/{mv.version}")
        (dest / INFO_FILE).write_text(
            json.dumps({"version": version, "versions": {name: str(mv.version), "run_id": str(mv.run_id)}})
        )
    return str(bmodel.tag)

