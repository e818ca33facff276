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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
    registered_models: dict[str, str] = field(default_factory=lambda: {"churn": "engage-churn"})
    aliases: dict[str, str] = field(
        default_factory=lambda: {"champion": "champion", "challenger": "challenger"}
    )
    promotion: Promotion = field(default_factory=Promotion)
    churn: dict[str, Any] = field(default_factory=dict)

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


def load_config(path: str | Path | None = None, *, tracking_uri: str | None = None) -> MlflowConfig:
    """Read ``mlflow.yaml`` (default: the project's); ``tracking_uri`` overrides the file's."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    if not path.exists():
        raise FileNotFoundError(f"{path}: MLflow config not found")
    spec = yaml.safe_load(path.read_text()) or {}
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
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


def input_example(tables, n_customers: int = 2, max_rows: int = 20):
    """A few raw touchpoint rows (plain dtypes) with ``customer.*`` columns: the pyfunc input format."""
    import pandas as pd

    tp = tables.touchpoints
    ids = tp["customer_id"].astype(str)
    first = list(dict.fromkeys(ids.head(5000)))[:n_customers]
    rows = tp[ids.isin(first)].head(max_rows).copy()
    for col in rows.columns:
        if isinstance(rows[col].dtype, pd.CategoricalDtype) or col == "customer_id":
            rows[col] = rows[col].astype(str)
    rows["ts"] = pd.to_datetime(rows["ts"], utc=True).dt.tz_localize(None)
    cus = tables.customers.copy()
    cus["customer_id"] = cus["customer_id"].astype(str)
    if "signup_ts" in cus:
        cus["signup_ts"] = pd.to_datetime(cus["signup_ts"], utc=True).dt.tz_localize(None)
    cus = cus.rename(columns={c: f"customer.{c}" for c in cus.columns if c != "customer_id"})
    rows = rows.merge(cus, on="customer_id", how="left")
    # integers cannot hold missing values in an MLflow schema: declare them as doubles
    ints = [c for c in rows.columns if pd.api.types.is_integer_dtype(rows[c])]
    rows[ints] = rows[ints].astype("float64")
    # MLflow cannot type an all-missing text column; numeric ones stay (NaN is a valid double).
    keep = [c for c in rows.columns if rows[c].notna().any() or pd.api.types.is_float_dtype(rows[c])]
    return rows[keep].reset_index(drop=True)


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


def log_decision_system(
    system, *, name: str = "model", example=None, cutoff=None, registered_model_name: str | None = None
):
    """Log ``system`` as a portable pyfunc model in the active run; returns MLflow's ModelInfo.

    The model carries the ``features`` code and exact pins of what that code imports, so it loads in an
    environment built from its own requirements. With ``registered_model_name`` its version is registered
    first, so that the pickled system reports it (``model_version``) in every answer.
    """
    import mlflow

    from features.system import save_system

    signature = pyfunc_signature(system, example, cutoff)
    reserved = _reserve_version(registered_model_name) if registered_model_name else None
    if reserved is not None:
        system.metadata["model_version"] = f"{reserved.name}/{reserved.version}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "system"
            save_system(system, data)
            info = mlflow.pyfunc.log_model(
                name=name,
                loader_module="features.system",
                data_path=str(data),
                code_paths=[str(_shipped_code(Path(tmp)))],
                signature=signature,
                input_example=example if example is not None and len(example) else None,
                pip_requirements=model_requirements(),
                model_id=reserved.model_id if reserved is not None else None,
            )
    except BaseException:
        if reserved is not None:
            _release(reserved)
        raise
    if reserved is not None:
        info.registered_model_version = reserved.version
    return info


def load_decision_system(uri: str, *, tracking_uri: str | None = None):
    """Load the ``DecisionSystem`` behind a model URI (``models:/name@champion``, ``runs:/...``)."""
    import mlflow
    import mlflow.pyfunc

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    return mlflow.pyfunc.load_model(uri).unwrap_python_model()


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
    if not (c_val >= h_val + rules.min_improvement):
        return False, (
            f"challenger {metric} {c_val:.4f} < champion {h_val:.4f} + min_improvement "
            f"{rules.min_improvement}"
        )
    if challenger.get("brier", 0.0) > champion.get("brier", 1.0) + rules.max_brier_increase:
        return False, (
            f"challenger brier {challenger['brier']:.4f} > champion {champion['brier']:.4f} + "
            f"{rules.max_brier_increase}"
        )
    return True, (
        f"challenger {metric} {c_val:.4f} >= champion {h_val:.4f} + {rules.min_improvement}; brier "
        f"{challenger.get('brier', float('nan')):.4f} vs {champion.get('brier', float('nan')):.4f}"
    )


def register_and_promote(
    config: MlflowConfig,
    model_info,
    *,
    challenger_metrics: dict[str, float],
    champion_metrics_fn,
    model_key: str = "churn",
) -> dict[str, Any]:
    """Give the logged model's new version the challenger alias; move champion to it if it wins.

    ``champion_metrics_fn(champion_uri) -> dict`` measures the current champion on the same test cutoff
    as ``challenger_metrics``. The decision and its reason are stored as version tags.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=config.tracking_uri)
    name = config.registered_models.get(model_key, f"engage-{model_key}")
    version = str(model_info.registered_model_version)
    if version in ("None", ""):
        raise ValueError("model was not registered (no registered_model_version)")
    client.set_registered_model_alias(name, config.challenger, version)
    try:
        champ = client.get_model_version_by_alias(name, config.champion)
    except MlflowException:
        champ = None
    champion_metrics = None
    if champ is not None and str(champ.version) != version:
        log.info("measuring champion %s v%s on the same test cutoff", name, champ.version)
        champion_metrics = champion_metrics_fn(f"models:/{name}/{champ.version}")
    promote, reason = promotion_decision(challenger_metrics, champion_metrics, config.promotion)
    tags = {
        "promotion_decision": "promoted" if promote else "rejected",
        "promotion_reason": reason,
        "compared_with_version": str(champ.version) if champ is not None else "none",
    }
    for k in ("auc", "brier", "ece"):
        if k in challenger_metrics:
            tags[f"test_{k}"] = f"{challenger_metrics[k]:.6f}"
        if champion_metrics and k in champion_metrics:
            tags[f"champion_test_{k}"] = f"{champion_metrics[k]:.6f}"
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if promote:
        client.set_registered_model_alias(name, config.champion, version)
    log.info("%s v%s: %s (%s)", name, version, tags["promotion_decision"], reason)
    return {
        "registered_model": name,
        "version": version,
        "promoted": promote,
        "reason": reason,
        "champion_version": version if promote else (str(champ.version) if champ is not None else None),
        "champion_metrics": champion_metrics,
    }
