"""The decision system: what is registered, loaded and served — raw touchpoints in, decisions out.

``DecisionSystem`` bundles the fitted :class:`~features.builders.pipeline.FeaturePipeline`, the calibrated
:class:`~features.models.churn.ChurnModel` and (optionally) the next-best-action policy. A system for a
campaign objective may have no churn model: its scores then carry no churn probability and no churn
reasons. It is pickled into
the registered MLflow model; :func:`_load_pyfunc` is the MLflow ``loader_module`` hook (this module
never imports MLflow: MLflow calls it with the model's data path and gets a predict-able object), and
:meth:`DecisionSystem.predict` is the pyfunc's answer: the contract as one flat frame in, the full decision
per customer out (:func:`decision_frame`).

A pickle runs code when it is loaded, so model files must come from a trusted store. What this module adds
is integrity: :func:`save_system` writes the file's SHA-256 beside it (and registration records it as the
version's ``model_sha256`` tag); every load compares the file with the digest it was given or found beside
it before unpickling, and a corrupt or altered file is a :class:`~features.contract.errors.ModelIntegrityError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract.cutoffs import utc_timestamp
from features.contract.errors import ModelIntegrityError
from features.contract.schema import IN_MARKET, SOCIAL_LADDER, STORE_LADDER, Tables
from features.decision.columns import DECISION_COLUMNS
from features.models.churn import ChurnModel
from features.models.lgbm import float_values
from features.renames import load_pickle

SYSTEM_FILE = "decision_system.pkl"
# The digest written beside a saved system, and the model-version tag registration records it under.
CHECKSUM_SUFFIX = ".sha256"
CHECKSUM_TAG = "model_sha256"

# The decision columns a score carries: all but ``decision_reason``, with ``no_contact_reason`` last (the
# order of the scoring output's columns).
POLICY_COLUMNS: tuple[str, ...] = (
    *(c for c in DECISION_COLUMNS if c not in ("decision_reason", "no_contact_reason")),
    "no_contact_reason",
)


def _names(values: pd.Series | None, names: tuple[str, ...], n: int) -> np.ndarray:
    if values is None:
        return np.full(n, None, dtype=object)
    codes = values.to_numpy()
    if codes.dtype.kind != "f":
        codes = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    # One lookup table; its last slot (None) serves missing and out-of-range codes.
    table = np.array([*names, None], dtype=object)
    valid = np.isfinite(codes) & (codes >= 0) & (codes < len(names))
    idx = np.where(valid, codes, len(names)).astype(np.int64)
    return table[idx]



def _floats(F: pd.DataFrame, name: str, n: int) -> np.ndarray:
    """Column ``name`` of ``F`` as float64 (missing values NaN); all NaN when ``F`` lacks it."""
    if name not in F.columns:
        return np.full(n, np.nan)
    return F[name].to_numpy(dtype=np.float64, na_value=np.nan)


def _float_frame(F: pd.DataFrame) -> pd.DataFrame:
    """``F`` as one C-contiguous float64 block (same values), when all its columns are numeric.

    A feature table straight from the pipeline holds one block per column, so every matrix conversion
    (churn model, effect model, value model) copies column by column; after this one conversion they are
    views. Boolean and integer columns become floats, which every reader converts to anyway.
    """
    if F.shape[1] == 0 or not all(dt.kind in "biuf" for dt in F.dtypes):
        return F
    X = np.ascontiguousarray(float_values(F))
    return pd.DataFrame(X, index=F.index, columns=F.columns, copy=False)


class DecisionSystem:
    """Fitted feature pipeline + calibrated churn model (+ optional policy), scoring at a cutoff.

    ``policy`` (added by the policy layer) must offer ``decide(F, churn_probability) -> DataFrame``
    indexed like ``F`` with the ``POLICY_COLUMNS``; without it those columns are empty. ``churn_model`` may be
    ``None`` when there is a policy (a campaign objective needs no churn model). ``value_model`` (a
    :class:`~features.models.ltv.CustomerValueModel`) adds ``customer_value`` and ``value_decile`` to the
    scores, ``personas`` (a :class:`~features.models.personas.PersonaModel`) adds ``persona``; a system
    without them (every system pickled before they existed) scores exactly the columns it always did.
    """

    def __init__(self, pipeline, churn_model: ChurnModel | None, policy=None, *, metadata: dict | None = None,
                 value_model=None, personas=None):
        if churn_model is None and policy is None:
            raise ValueError("DecisionSystem: needs a churn model, a policy, or both")
        self.pipeline = pipeline
        self.churn_model = churn_model
        self.policy = policy
        self.metadata = dict(metadata or {})
        self.value_model = value_model
        self.personas = personas

    @property
    def segment_columns(self) -> tuple[str, ...]:
        """The value and persona columns this system scores (none for a system without those parts)."""
        cols: tuple[str, ...] = ()
        if getattr(self, "value_model", None) is not None:
            cols += ("customer_value", "value_decile")
        if getattr(self, "personas", None) is not None:
            cols += ("persona",)
        return cols

    def _segment_values(self, F: pd.DataFrame) -> dict:
        """``customer_value``, ``value_decile`` and ``persona`` of the rows of ``F``, for the parts it has."""
        out: dict = {}
        value_model = getattr(self, "value_model", None)
        if value_model is not None:
            value = value_model.predict(F) if len(F) else np.empty(0)
            out["customer_value"] = value
            out["value_decile"] = value_model.decile(value)
        personas = getattr(self, "personas", None)
        if personas is not None:
            out["persona"] = personas.predict(F) if len(F) else np.empty(0, dtype=object)
        return out

    @property
    def feature_names_(self) -> list[str]:
        """The feature columns the system reads: the churn model's, then those only the policy's models read.

        The churn model leaves out features that were constant in its training rows, which the policy's
        models may still read; a feature row sent to ``score_features`` must hold all of them. A system for a
        campaign objective has no churn model: then only the policy's.
        """
        names = [] if self.churn_model is None else list(self.churn_model.feature_names_)
        if self.policy is not None:
            for model in (getattr(self.policy, "uplift", None), getattr(self.policy, "value_model", None)):
                names += [str(n) for n in getattr(model, "feature_names_", [])]
        names += [str(n) for n in getattr(getattr(self, "value_model", None), "feature_names_", [])]
        names = list(dict.fromkeys(names))
        if hasattr(self.pipeline, "get_feature_names_out"):  # in the feature table's order
            order = {str(n): i for i, n in enumerate(self.pipeline.get_feature_names_out())}
            names.sort(key=lambda n: order.get(n, len(order)))
        return names

    @property
    def model_version(self) -> str:
        return str(self.metadata.get("model_version", ""))

    def features(self, tables: Tables, cutoff) -> pd.DataFrame:
        """The feature table at ``cutoff`` (truth, if present, is never seen)."""
        return self.pipeline.transform(tables.without_truth(), cutoff=cutoff)

    def churn_probability(self, F: pd.DataFrame) -> pd.Series:
        """The churn model's probability per row (missing without a churn model)."""
        p = np.full(len(F), np.nan) if self.churn_model is None else self.churn_model.predict_proba(F)
        return pd.Series(p, index=F.index, name="churn_probability")

    def score_features(
        self, F: pd.DataFrame, *, reasons: int = 3, reasons_min_probability: float | None = None
    ) -> pd.DataFrame:
        """Score precomputed feature rows (index ``customer_id``): one output row per input row.

        ``reasons``: churn reason codes per customer (0 = none); ``reasons_min_probability``: only for
        customers at or above this churn probability (batch scoring: reason codes are most of the cost).
        """
        return _frame(self._score_columns(F, reasons=reasons, reasons_min_probability=reasons_min_probability))

    def score_feature_columns(
        self, F: pd.DataFrame, *, reasons: int = 3, reasons_min_probability: float | None = None
    ) -> dict:
        """:meth:`score_features` as a dict of columns (arrays; scalars for constant columns), no frame."""
        return self._score_columns(F, reasons=reasons, reasons_min_probability=reasons_min_probability)

    @property
    def at_risk_probability(self) -> float:
        """The churn probability from which a customer counts as at risk (the policy's defense setting)."""
        config = getattr(self.policy, "config", None)
        return float(config.defense.min_churn_probability) if config is not None else 0.5

    def _score_columns(
        self,
        F: pd.DataFrame,
        *,
        reasons: int = 3,
        reasons_min_probability: float | None = None,
        cutoff: pd.Timestamp | None = None,
    ) -> dict:
        """The scoring output's columns as arrays (scalars for constant columns), rows as in ``F``; a ``cutoff``
        column after ``customer_id`` when given."""
        n = len(F)
        F = _float_frame(F)
        # One feature-matrix conversion serves both the probability and the reason codes.
        if self.churn_model is None:
            p, churn_reasons = np.full(n, np.nan), _empty_lists(n)
        else:
            p, churn_reasons = self.churn_model.predict_with_reasons(
                F, top=reasons, min_probability=reasons_min_probability
            )
        ids = pd.Index(F.index.astype(str), name="customer_id")
        cols: dict = {"customer_id": ids}
        if cutoff is not None:
            cols["cutoff"] = cutoff
        cols.update(
            {
                "churn_probability": p,
                "churn_reasons": churn_reasons,
                "engagement_index": _floats(F, "engagement_index", n),
                "store_ladder": _names(F.get("store_ladder"), STORE_LADDER, n),
                "social_ladder": _names(F.get("social_ladder"), SOCIAL_LADDER, n),
                "in_market_stage": _names(F.get("in_market_stage"), IN_MARKET, n),
                "buy_intent_score": _floats(F, "buy_intent_score", n),
                "high_engagement_potential": (np.nan_to_num(_floats(F, "high_engagement_potential", n)) > 0)
                if "high_engagement_potential" in F
                else np.zeros(n, dtype=bool),
            }
        )
        cols.update(self._segment_values(F))
        if self.policy is not None and n:
            decide_columns = getattr(self.policy, "decide_columns", None)
            churn = None if self.churn_model is None else p
            if callable(decide_columns):
                decided = decide_columns(F, churn, ids=ids, **self._shared_value(cols))
            else:  # a policy object with only the frame interface
                frame = self.policy.decide(F, churn)
                decided = {col: frame[col].to_numpy() for col in POLICY_COLUMNS if col in frame}
            for col in POLICY_COLUMNS:
                cols[col] = decided[col] if col in decided else np.full(n, None, dtype=object)
        else:
            for col in POLICY_COLUMNS:
                cols[col] = np.full(n, None, dtype=object)
        cols["model_version"] = self.model_version
        return cols

    def _shared_value(self, cols: dict) -> dict:
        """The policy's ``value_margin`` option: the scored ``customer_value`` when the policy's value model
        wraps this system's own (the same prediction, which the policy would otherwise repeat)."""
        wrapped = getattr(getattr(self.policy, "value_model", None), "model", None)
        if wrapped is None or wrapped is not getattr(self, "value_model", None) or "customer_value" not in cols:
            return {}
        return {"value_margin": cols["customer_value"]}

    def score(self, tables: Tables, cutoff) -> pd.DataFrame:
        """Score every customer of ``tables`` from their raw touchpoints strictly before ``cutoff``."""
        return _frame(self.score_columns(tables, cutoff))

    def score_columns(
        self, tables: Tables, cutoff, *, reasons: int = 3, reasons_min_probability: float | None = None
    ) -> dict:
        """:meth:`score` as a dict of columns (arrays, or scalars for constant columns) instead of a frame;
        ``reasons`` and ``reasons_min_probability`` as in :meth:`score_features`."""
        cutoff = utc_timestamp(cutoff)
        return self._score_columns(
            self.features(tables, cutoff), reasons=reasons, reasons_min_probability=reasons_min_probability,
            cutoff=cutoff,
        )

    def warm_up(self) -> None:
        """Score one all-missing feature row, so that what scoring builds lazily (the policy's
        action-resolved trees, LightGBM's predictors) exists before the first real request."""
        names: list[str] = []
        if hasattr(self.pipeline, "get_feature_names_out"):
            names += [str(n) for n in self.pipeline.get_feature_names_out()]
        names = list(dict.fromkeys(names + self.feature_names_))
        index = pd.Index(["warm-up"], dtype="str", name="customer_id")
        self.score_features(pd.DataFrame(np.full((1, len(names)), np.nan), index=index, columns=names))

    # ---- MLflow pyfunc entry ----------------------------------------------------------------------
    def static_attributes(self) -> list[str]:
        """Customer attribute columns the fitted pipeline reads (empty when it has no static family)."""
        return list(self.static_attribute_kinds())

    def static_attribute_kinds(self) -> dict[str, str]:
        """Each customer attribute the fitted pipeline reads, with the kind found at fit (``categorical``,
        ``bool``, ``numeric``, ``datetime``)."""
        families = self.pipeline.families() if hasattr(self.pipeline, "families") else {}
        return dict(getattr(families.get("static"), "kinds_", {}) or {})

    def predict(self, model_input, params: dict | None = None) -> pd.DataFrame:
        """pyfunc ``predict``: the contract as one flat frame in, the full decision per customer out.

        The input is a flat frame (:mod:`features.contract.flat`): a touchpoints table as read, plus optional
        ``customer.*`` and ``outreach.*`` columns; attributes the model knows but the input lacks count as
        missing. ``params["cutoff"]`` (default: just after the latest timestamp) is the scoring cutoff. The
        output is :func:`decision_frame` of :meth:`score`: one row per customer, in order of first appearance.
        """
        from features.contract.flat import tables_from_flat
        from features.contract.validate import validate_tables

        tables = tables_from_flat(pd.DataFrame(model_input), self.static_attributes())
        tables, _ = validate_tables(tables, source="model input")
        return decision_frame(self.score(tables, _pyfunc_cutoff(tables, (params or {}).get("cutoff"))))


# The pyfunc output's names for the next best action's columns (the service's ``next_best_action`` fields).
PYFUNC_RENAMES: dict[str, str] = {
    "nba_action": "action",
    "nba_channel": "channel",
    "nba_offer": "offer",
    "nba_expected_incremental_value": "expected_incremental_value",
    "nba_propensity": "propensity",
}
# Score columns holding lists (of reason or action records): JSON text in a flat output table.
NESTED_COLUMNS: tuple[str, ...] = ("churn_reasons", "alternatives", "defense_reasons")


def _pyfunc_cutoff(tables: Tables, given) -> pd.Timestamp:
    """The given cutoff, else just after the latest touchpoint or outreach timestamp, else now."""
    if given:
        return utc_timestamp(given)
    stamps = [t["ts"].max() for t in (tables.touchpoints, tables.outreach) if t is not None and len(t)]
    stamps = [t for t in stamps if pd.notna(t)]
    return max(stamps) + pd.Timedelta(microseconds=1) if stamps else pd.Timestamp.now(tz="UTC")


def _plain(value):
    """``value`` with numpy scalars as Python ones and NaN as None, so that it is JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and value != value else value


def _json_text(value) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return json.dumps(_plain(value), separators=(",", ":"))


def decision_frame(scored: pd.DataFrame) -> pd.DataFrame:
    """The scoring output as the registered model answers: next-best-action columns under the service's
    names (``action, channel, offer, expected_incremental_value, propensity``) and list columns as JSON text;
    every other column (churn, engagement, defense, ``model_version``, ``cutoff``) as scored."""
    out = scored.rename(columns=PYFUNC_RENAMES)
    for col in NESTED_COLUMNS:
        if col in out:
            out[col] = pd.Series([_json_text(v) for v in out[col]], index=out.index, dtype=object)
    return out


def _empty_lists(n: int) -> list[list]:
    """``n`` empty reason lists (what the churn model gives a row without reasons)."""
    return [[] for _ in range(n)]


def _frame(cols: dict) -> pd.DataFrame:
    """Score columns as a frame, one row per customer."""
    # Built once from all columns: adding columns one by one copies the frame each time.
    return pd.DataFrame(cols, index=pd.RangeIndex(len(cols["customer_id"])))


class PyfuncDecisionSystem:
    """What MLflow's pyfunc loader gets: ``predict`` plus the unwrapped system (``python_model``)."""

    def __init__(self, system: DecisionSystem):
        self.python_model = system

    def predict(self, model_input, params: dict | None = None) -> pd.DataFrame:
        return self.python_model.predict(model_input, params)

    def get_raw_model(self) -> DecisionSystem:
        return self.python_model


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str | None, *, name: str | None = None) -> None:
    """Raise :class:`ModelIntegrityError` unless ``path`` hashes to ``expected``; also when ``expected`` is
    ``None``, the digest file written beside ``path`` (if any) is checked. ``name``: how the error names the
    model (default: the path)."""
    path = Path(path)
    sidecar = path.with_name(path.name + CHECKSUM_SUFFIX)
    if expected is None and sidecar.is_file():
        expected = (sidecar.read_text().split() or [""])[0]
    if expected is None:
        return
    found = file_sha256(path)
    if found != expected.strip().lower():
        what = f"the model file of {name}" if name else f"model file {path}"
        raise ModelIntegrityError(
            f"{what}: SHA-256 {found[:12]}… does not match the recorded {expected.strip()[:12]}…; the file "
            "changed after it was saved or registered: restore it from a trusted copy or train and register the "
            "model again"
        )


# What unpickling raises on bytes that are not a whole pickle (a class that cannot be found is another matter:
# an ImportError or AttributeError, raised as it is).
_CORRUPT_PICKLE = (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, OverflowError,
                   UnicodeDecodeError)


@contextlib.contextmanager
def unpickling(path: str | Path) -> Iterator[None]:
    """Turn the errors of unreadable pickle bytes into a :class:`ModelIntegrityError` naming the file."""
    try:
        yield
    except _CORRUPT_PICKLE as exc:
        raise ModelIntegrityError(
            f"model file {path} is corrupt, truncated or not a pickle ({type(exc).__name__}: {exc}); restore it "
            "from a trusted copy or train and register the model again"
        ) from exc


def save_system(system: DecisionSystem, path: str | Path) -> Path:
    """Pickle ``system`` into folder ``path`` (created) as the pyfunc data path, with its SHA-256 beside it;
    returns the pickle file."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / SYSTEM_FILE
    with open(target, "wb") as fh:
        pickle.dump(system, fh, protocol=pickle.HIGHEST_PROTOCOL)
    target.with_name(target.name + CHECKSUM_SUFFIX).write_text(f"{file_sha256(target)}  {target.name}\n")
    return target


def load_pickle_file(path: str | Path, expected_sha256: str | None = None):
    """Unpickle a model file (following class moves) after checking its digest (given, or the one beside it)."""
    verify_sha256(path, expected_sha256)
    with open(path, "rb") as fh, unpickling(path):
        return load_pickle(fh)


def load_system_file(path: str | Path, expected_sha256: str | None = None) -> DecisionSystem:
    """Unpickle a decision system from a data folder (or the pickle file itself), checking its digest."""
    path = Path(path)
    target = path / SYSTEM_FILE if path.is_dir() else path
    system = load_pickle_file(target, expected_sha256)
    if not isinstance(system, DecisionSystem):
        raise TypeError(f"{target}: holds a {type(system).__name__}, not a DecisionSystem")
    return system


def model_folder_file(folder: str | Path) -> Path:
    """The decision-system pickle inside an MLflow model folder written by registration (``data/system/``)."""
    import yaml

    folder = Path(folder)
    spec = yaml.safe_load((folder / "MLmodel").read_text()) or {}
    data = ((spec.get("flavors") or {}).get("python_function") or {}).get("data") or "data/system"
    found = folder / data
    return found / SYSTEM_FILE if found.is_dir() else found


def _load_pyfunc(data_path: str) -> PyfuncDecisionSystem:
    """MLflow ``loader_module`` hook: ``data_path`` is the folder given to ``log_model(data_path=...)``."""
    return PyfuncDecisionSystem(load_system_file(data_path))
