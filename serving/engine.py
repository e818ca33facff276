"""The scoring code path shared by the HTTP service and batch scoring.

``ScoringEngine`` wraps a loaded ``DecisionSystem`` (``score(tables, cutoff)``,
``score_features(F)``) and returns its scores as columns, one row per customer in customer order. The
service builds contract tables from a request (:mod:`serving.requests`); batch scoring reads them from a
data folder; both then call :meth:`ScoringEngine.score_columns`, so a customer gets the same answer
either way, and :mod:`serving.responses` turns the columns into response rows or a flat table.
Pure code: no BentoML, no MLflow, no files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features.contract.schema import Tables

logger = logging.getLogger("engage.serving")
REASON_MODES: tuple[str, ...] = ("all", "at-risk", "none")


class DecisionSystemLike(Protocol):
    """What the engine needs from a decision system (features.system.DecisionSystem)."""

    def score(self, tables: Tables, cutoff: pd.Timestamp) -> pd.DataFrame: ...

    def score_features(self, F: pd.DataFrame) -> pd.DataFrame: ...


@dataclass(frozen=True)
class ModelInfo:
    """Where the served model came from: ``version`` is what every response carries."""

    version: str
    versions: dict[str, str] = field(default_factory=dict)
    source: str = ""


def _feature_names(system: Any) -> list[str]:
    """The feature columns the system's model expects (best effort across attribute names)."""
    for attr in ("feature_names_", "feature_names", "features_", "feature_columns_"):
        names = getattr(system, attr, None)
        if names is not None and not callable(names):
            return [str(n) for n in names]
    for attr in ("pipeline_", "pipeline"):
        pipe = getattr(system, attr, None)
        if pipe is not None and hasattr(pipe, "get_feature_names_out"):
            try:
                return [str(n) for n in pipe.get_feature_names_out()]
            except (ValueError, AttributeError):  # not fitted / no names: report none
                pass
    return []


class ScoringEngine:
    """A loaded decision system plus its version: scores tables or feature rows into response rows."""

    def __init__(self, system: DecisionSystemLike, info: ModelInfo):
        self.system = system
        self.info = info
        self.feature_names: list[str] = _feature_names(system)
        reader = getattr(system, "static_attributes", None)
        self.attributes: list[str] = [str(a) for a in reader()] if callable(reader) else []

    def warm_up(self) -> None:
        """Let the system build what it caches lazily (``DecisionSystem.warm_up``); never fails loading."""
        warm = getattr(self.system, "warm_up", None)
        if not callable(warm):
            return
        try:
            warm()
        except Exception as exc:  # a system that cannot score an all-missing row still serves real ones
            logger.warning("warm-up skipped: %s: %s", type(exc).__name__, exc)

    def score_tables(self, tables: Tables, cutoff: pd.Timestamp) -> pd.DataFrame:
        """Score every customer of ``tables`` at ``cutoff``; one row per customer, in customer order."""
        cols = self.score_columns(tables, cutoff)
        return pd.DataFrame(cols, index=pd.RangeIndex(len(tables.customers)))

    def score_columns(self, tables: Tables, cutoff: pd.Timestamp, reasons: str = "all") -> dict[str, Any]:
        """:meth:`score_tables` as a dict of columns (arrays; scalars for constant columns).

        The service's path: a request of a few customers pays for no output frame. A system with
        ``score_columns`` (``DecisionSystem``) fills it directly, any other through its ``score`` frame.
        ``reasons`` as in :meth:`score_feature_columns` (a system without ``score_columns`` gives all).
        """
        options = self._reason_options(reasons)
        # A static attribute the CRM does not send is unknown for that customer, not an error.
        missing = [a for a in self.attributes if a not in tables.customers.columns]
        if missing:
            n = len(tables.customers)
            unknown = {a: pd.Series([None] * n, dtype=object, index=tables.customers.index) for a in missing}
            tables = tables.with_(customers=tables.customers.assign(**unknown))
        ids = tables.customers["customer_id"]
        want = ids.astype(str).to_numpy()
        fast = getattr(self.system, "score_columns", None)
        if callable(fast):
            # only a narrowed choice is passed on: systems written before the option score all as before
            cols = fast(tables, cutoff, **options)
            got = cols.get("customer_id")
            if got is None:
                raise ValueError(f"{type(self.system).__name__}.score_columns returned no customer_id column")
            if len(got) != len(want) or not _same_ids(np.asarray(got, dtype=object), want):
                # not one row per customer in customer order: align through a frame
                cols = _aligned_columns(pd.DataFrame(cols, index=pd.RangeIndex(len(got))), want)
        else:
            cols = _aligned_columns(self.system.score(tables, cutoff), want)
        cols["cutoff"] = cutoff
        cols["cold_start"] = _cold_start(tables.touchpoints, ids, cutoff)
        cols["model_version"] = self.info.version
        return cols

    def _reason_options(self, reasons: str) -> dict[str, Any]:
        """The system's keyword options for a ``reasons`` mode (none for ``all``, the systems' default)."""
        if reasons not in REASON_MODES:
            raise ValueError(f"reasons: {reasons!r} is not one of {', '.join(REASON_MODES)}")
        if reasons == "none":
            return {"reasons": 0}
        if reasons == "at-risk":
            return {"reasons_min_probability": float(getattr(self.system, "at_risk_probability", 0.5))}
        return {}

    def score_features(self, F: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
        """Score precomputed feature rows (index = customer_id)."""
        return pd.DataFrame(self.score_feature_columns(F, cutoff), index=pd.RangeIndex(len(F)))

    def score_feature_columns(self, F: pd.DataFrame, cutoff: pd.Timestamp, reasons: str = "all") -> dict[str, Any]:
        """:meth:`score_features` as a dict of columns. ``reasons``: churn reason codes for ``all``
        customers, only those ``at-risk`` (churn probability at or above the system's at-risk level) or
        ``none`` (SHAP values are most of a large batch's time)."""
        options = self._reason_options(reasons)
        fast = getattr(self.system, "score_feature_columns", None)
        want = F.index.astype(str).to_numpy()
        if callable(fast):
            cols = fast(F, **options)
            if not _same_ids(np.asarray(cols["customer_id"], dtype=object), want):
                cols = _aligned_columns(pd.DataFrame(cols, index=pd.RangeIndex(len(F))), want)
        else:
            cols = _aligned_columns(self.system.score_features(F), want)
        cols["cutoff"] = cutoff
        cols["cold_start"] = np.zeros(len(F), dtype=bool)
        cols["model_version"] = self.info.version
        return cols


def _same_ids(got: np.ndarray, want: np.ndarray) -> bool:
    return bool(np.array_equal(got, want.astype(object))) and pd.Index(want).is_unique


def _aligned_columns(frame: pd.DataFrame, want: np.ndarray) -> dict[str, Any]:
    """``frame``'s columns in the order of customer ids ``want`` (one row each; unknown ids get missing)."""
    if not _aligned(frame, want):
        if "customer_id" in frame.columns:
            frame = frame.set_index("customer_id", drop=True)
        frame = frame.reindex(pd.Index(want, name="customer_id")).reset_index()
    # Column arrays without the index (which need not be a range): the caller's frame is left as it was.
    return {str(name): values.array for name, values in frame.items()}


def _aligned(frame: pd.DataFrame, ids: np.ndarray) -> bool:
    """Whether ``frame`` already has ``customer_id`` first, equal to ``ids`` row by row, each id once."""
    if len(frame.columns) == 0 or frame.columns[0] != "customer_id" or len(frame) != len(ids):
        return False
    got = frame["customer_id"]
    if got.dtype.kind not in "OT" and not pd.api.types.is_string_dtype(got.dtype):
        return False
    return bool(np.array_equal(got.to_numpy(dtype=object), ids.astype(object))) and pd.Index(ids).is_unique


def _cold_start(touchpoints: pd.DataFrame, ids: pd.Series, cutoff: pd.Timestamp) -> np.ndarray:
    """Per customer id: no touchpoint before ``cutoff``."""
    before = (touchpoints["ts"] < cutoff).to_numpy()
    cid = touchpoints["customer_id"]
    if isinstance(cid.dtype, pd.CategoricalDtype):
        # Request tables: codes into the categories, no per-row string work.
        seen = np.zeros(len(cid.cat.categories) + 1, dtype=bool)
        seen[cid.cat.codes.to_numpy()[before]] = True  # code -1 (missing) lands in the spare last slot
        seen[-1] = False
        return ~seen[cid.cat.categories.get_indexer(ids)]
    active = cid[before]
    n_events = active.value_counts(sort=False).reindex(ids, fill_value=0)
    return n_events.to_numpy() == 0

