"""A stand-in decision system and request helpers shared by the serving tests.

``CountingSystem`` is test code with the ``DecisionSystem`` interface (``score`` / ``score_features``): it derives a
churn score from recency and a contact decision from consent, so the service's own work (request validation,
contract tables, cold start, auth, readiness, versions, decision log, batch parity, limits) is exercised without
training a model. It is importable by server worker processes (``tests.serving.standin``), so real servers can
serve it from a joblib file or from an MLflow registry (:func:`register_champion`). :func:`make_client` serves
it in-process.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import ClassVar

import joblib
import numpy as np
import pandas as pd
import pytest

from features.contract.schema import Tables

CUTOFF = "2024-04-01T00:00:00Z"
TOKEN = "s3cret-token-for-tests-0123456789"
FEATURES = ["recency_days", "frequency", "chan_email_consent"]


class CountingSystem:
    """A stand-in decision system with the DecisionSystem interface (score / score_features)."""

    feature_names_ = FEATURES
    metadata: ClassVar[dict] = {"model_version": "counting-1", "versions": {"churn": "c1", "policy": "p1"}}

    def score(self, tables: Tables, cutoff) -> pd.DataFrame:
        tp = tables.touchpoints[tables.touchpoints["ts"] < cutoff]
        ids = tables.customers["customer_id"].astype(str)
        g = tp.groupby("customer_id", observed=False)
        last = g["ts"].max().reindex(ids)
        F = pd.DataFrame(
            {
                "recency_days": ((cutoff - last).dt.total_seconds() / 86400).to_numpy(dtype=float),
                "frequency": g.size().reindex(ids).fillna(0).to_numpy(dtype=float),
                "chan_email_consent": tables.customers["consent_email"].to_numpy(dtype=float),
            },
            index=pd.Index(ids, name="customer_id"),
        )
        return self.score_features(F)

    def predict(self, tables: Tables, params: dict | None = None) -> pd.DataFrame:
        """MLflow's pyfunc interface (required to load it from a registry): scores at ``params['cutoff']``."""
        return self.score(tables, pd.Timestamp((params or {}).get("cutoff") or pd.Timestamp.now(tz="UTC")))

    def get_raw_model(self) -> CountingSystem:
        """What the service's loader asks a registered pyfunc model for (as features.system's wrapper answers)."""
        return self

    def score_features(self, F: pd.DataFrame) -> pd.DataFrame:
        rec = F["recency_days"].fillna(365.0).to_numpy(dtype=float)
        p = 1 / (1 + np.exp(-np.clip((rec - 30) / 20, -50, 50)))
        contact = (F["chan_email_consent"].fillna(0).to_numpy() > 0) & (p > 0.5)
        n = len(F)
        return pd.DataFrame(
            {
                "customer_id": F.index.astype(str),
                "churn_probability": p,
                "churn_reasons": [
                    [
                        {
                            "feature": "recency_days",
                            "label": "Days since last activity",
                            "contribution": float(r),
                        }
                    ]
                    for r in rec
                ],
                "engagement_index": F["frequency"].fillna(0).to_numpy() / 10,
                "store_ladder": np.minimum(F["frequency"].fillna(0).to_numpy() // 5, 3).astype(int),
                "social_ladder": ["visitor"] * n,
                "in_market_stage": ["none"] * n,
                "buy_intent_score": 0.1,
                "high_engagement_potential": F["frequency"].fillna(0).to_numpy() > 20,
                "nba_action": np.where(contact, "email:discount_10", "no_contact"),
                "nba_channel": np.where(contact, "email", None),
                "nba_offer": np.where(contact, "discount_10", None),
                "nba_expected_incremental_value": np.where(contact, 3.5, 0.0),
                "nba_propensity": 0.9,
                "alternatives": [
                    [
                        {
                            "action": "email:none",
                            "channel": "email",
                            "offer": "none",
                            "expected_incremental_value": 1.0,
                        }
                    ]
                    * 4
                ]
                * n,
                "defense_target": contact,
                "defense_reasons": [["high churn risk"] if c else [] for c in contact],
                "no_contact_reason": np.where(contact, None, "no consent or low risk"),
                "model_version": "counting-1",
            }
        )


def customer(
    cid: str,
    n: int = 5,
    *,
    email: bool = True,
    start: str = "2024-01-01",
    shape: str = "rows",
    product: str | None = None,
) -> dict:
    ts = pd.date_range(start, periods=n, freq="3D", tz="UTC")
    kinds = ["visit", "purchase", "page_view", "message_open", "impression"]
    rows = [
        {
            "ts": t.isoformat(),
            "channel": "email" if kinds[i % 5] in ("message_open", "impression") else "web",
            "kind": kinds[i % 5],
            "direction": "outbound" if kinds[i % 5] == "impression" else "inbound",
            "amount": 20.0 + i if kinds[i % 5] == "purchase" else None,
            "product_id": product,
        }
        for i, t in enumerate(ts)
    ]
    if shape == "columns":
        tps: dict | list = (
            {k: [r[k] for r in rows] for k in rows[0]}
            if rows
            else {"ts": [], "channel": [], "kind": [], "direction": []}
        )
    else:
        tps = rows
    return {
        "customer_id": cid,
        "consent_email": email,
        "signup_ts": "2023-06-01T00:00:00Z",
        "touchpoints": tps,
    }


def write_model(path: Path) -> Path:
    """The stand-in system as a joblib file (what ``ENGAGE_MODEL_PATH`` serves)."""
    joblib.dump(CountingSystem(), path)
    return path


def _load_pyfunc(path: str) -> CountingSystem:
    """MLflow's loader hook (``loader_module``): the stand-in behind a registered pyfunc model."""
    return joblib.load(path)


def registry_config(folder: Path) -> Path:
    """An ``mlflow.yaml`` in ``folder`` naming a SQLite registry there (which need not exist yet)."""
    config = folder / "mlflow.yaml"
    config.write_text(
        "tracking_uri: sqlite:///mlflow.db\nartifact_location: artifacts\n"
        "registered_models: {system: engage-decision-system}\naliases: {champion: champion}\n"
    )
    return config


def register_champion(folder: Path) -> str:
    """Register the stand-in in ``folder``'s registry (creating it) and give it the champion alias; returns its
    model URI."""
    import mlflow

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    mlflow.set_tracking_uri(uri)
    name = "engage-decision-system"
    experiment = client.create_experiment("serving-tests", artifact_location=(folder / "artifacts").as_uri())
    data = write_model(folder / "standin.joblib")
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.pyfunc.log_model(
            name="model", loader_module="tests.serving.standin", data_path=str(data), pip_requirements=[],
            registered_model_name=name,
        )
    client.set_registered_model_alias(name, "champion", str(info.registered_model_version))
    return f"models:/{name}/{info.registered_model_version}"


def make_client(monkeypatch: pytest.MonkeyPatch, model_path: Path | str, **env: str):
    """An in-process client of the BentoML app, after the model finished loading."""
    from starlette.testclient import TestClient

    from serving.service import EngageScoring

    monkeypatch.setenv("ENGAGE_MODEL_PATH", str(model_path))
    monkeypatch.setenv("ENGAGE_GC_FREEZE", "0")  # keep the test process's heap collectable
    for key in ("ENGAGE_API_TOKEN", "ENGAGE_API_TOKEN_FILE", "ENGAGE_DECISION_LOG"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _forget_service_metrics()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TestClient(EngageScoring.to_asgi())


def _forget_service_metrics() -> None:
    """Each in-process app registers BentoML's request metrics again; drop the previous app's."""
    import prometheus_client

    registry = prometheus_client.REGISTRY
    for collector in list(registry._collector_to_names):
        if any(n.startswith("bentoml_service") for n in registry._collector_to_names[collector]):
            registry.unregister(collector)


def wait_ready(client, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError("service not ready")
