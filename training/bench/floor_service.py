"""The trivial BentoML service ``engage bench serve`` measures beside engage's: the floor of serving.

A small LightGBM model scores one numpy row per request (``POST /score`` with ``{"x": [[...]]}``), with the
same BentoML version, worker count, machine and load generator as engage's own service. Whatever engage
spends above this floor is its own work (parsing customers, building features, the policy); the benchmark
reports engage's latencies and throughputs as ratios to it. The model is trained in each worker from a
seeded generator when the worker starts (not timed). With several workers each one listens on its own
``SO_REUSEPORT`` socket, as engage's workers do (:mod:`serving.reuseport`), so both spread connections alike.
"""

from __future__ import annotations

import os
import sys

import bentoml
import numpy as np

from serving.reuseport import listen_on_own_socket, worker_fd

FLOOR_SERVICE_NAME = "engage_floor"
FLOOR_FEATURES = 20  # columns of the one row
FLOOR_TREES = 100


def train_floor_model(seed: int = 0):
    """A small LightGBM classifier on a seeded synthetic problem (``FLOOR_FEATURES`` columns)."""
    import lightgbm as lgb

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2_000, FLOOR_FEATURES))
    y = (X[:, 0] + 0.5 * X[:, 1] - X[:, 2] + rng.normal(size=len(X)) > 0).astype(int)
    return lgb.LGBMClassifier(n_estimators=FLOOR_TREES, num_leaves=15, verbose=-1, random_state=seed).fit(X, y)


@bentoml.service(name=FLOOR_SERVICE_NAME)
class FloorService:
    """One numpy row in, one probability out."""

    def __init__(self) -> None:
        self.model = train_floor_model()
        fd = worker_fd(sys.argv) if os.environ.get("ENGAGE_REUSEPORT") == "1" else None
        self.own_socket = fd is not None and listen_on_own_socket(fd)

    @bentoml.api(route="/score")
    def score(self, x: np.ndarray) -> dict:
        """Churn-style probability of the rows of ``x`` (the benchmark sends one)."""
        return {"p": self.model.predict_proba(np.atleast_2d(x))[:, 1].tolist()}
