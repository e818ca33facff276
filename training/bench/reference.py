"""The hand-vectorised pandas feature set of ``../shared/reference/`` as a same-run yardstick.

Absolute speeds differ between machines and between quiet and busy windows on one machine; a ratio to a
reference run in the same process, on the same events, a moment apart, differs much less. The reference
(``features.py``, ``gen.py`` and a README beside the project) is imported by path when it is present; when it
is absent the benchmark says so and why instead of guessing a figure.

Two runs are offered:

- on the same events as engage's benchmark: the touchpoint log recast to the reference's columns
  (``customer_id`` integer, ``ts``, ``channel``, ``event_type``, ``duration_s``, ``amount``). The reference's
  feature set is fixed on its own vocabularies (8 channels, 15 event types), so engage's channels and kinds
  are mapped onto them: by name where the reference has the name (``purchase``, ``web``, ...), otherwise by
  code modulo the vocabulary's size. Its work depends on the events and vocabulary sizes, not on the names;
- on the reference's own synthetic log of the same size (``gen.py``), the figure its README quotes.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

from features.contract.schema import Tables

# <project>/../shared/reference, the layout the shared folder's README describes.
DEFAULT_REFERENCE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
REFERENCE_ENV = "ENGAGE_PANDAS_REFERENCE"


@dataclass(frozen=True)
class Reference:
    """The reference's two modules, loaded under private names (its ``features`` would shadow ours)."""

    features: ModuleType
    gen: ModuleType
    path: Path


def reference_dir() -> Path:
    """Where the reference lives: ``$ENGAGE_PANDAS_REFERENCE`` or ``<project>/../shared/reference``."""
    return Path(os.environ.get(REFERENCE_ENV) or DEFAULT_REFERENCE_DIR)


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_reference(path: Path | None = None) -> tuple[Reference | None, str | None]:
    """The reference modules, or ``(None, reason)`` when they are absent or cannot be imported."""
    path = reference_dir() if path is None else Path(path)
    files = [path / "features.py", path / "gen.py"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        return None, f"pandas reference not found: {', '.join(missing)} missing (set {REFERENCE_ENV} to its folder)"
    # The reference's features.py does ``from gen import ...``: give it our loaded gen for that one import.
    saved = sys.modules.get("gen")
    try:
        gen = _load("engage_reference_gen", files[1])
        sys.modules["gen"] = gen
        feats = _load("engage_reference_features", files[0])
    except Exception as exc:
        return None, f"pandas reference at {path} could not be imported: {type(exc).__name__}: {exc}"
    finally:
        if saved is None:
            sys.modules.pop("gen", None)
        else:
            sys.modules["gen"] = saved
    return Reference(feats, gen, path), None


def recode(col: pd.Series, vocab: list[str]) -> pd.Categorical:
    """A categorical column mapped onto ``vocab``: same name where ``vocab`` has it, else code modulo its size."""
    cat = col if isinstance(col.dtype, pd.CategoricalDtype) else col.astype("category")
    names = [str(c) for c in cat.cat.categories]
    lut = np.array([vocab.index(c) if c in vocab else i % len(vocab) for i, c in enumerate(names)] + [-1])
    return pd.Categorical.from_codes(lut.take(cat.cat.codes.to_numpy()), categories=list(vocab))


def as_reference_log(tables: Tables, ref: Reference) -> pd.DataFrame:
    """engage's touchpoints in the reference's columns: integer customer ids, naive UTC timestamps, ``channel``
    and ``event_type`` (engage's ``kind``) recoded onto the reference's vocabularies, missing amounts and
    durations as 0."""
    tp = tables.touchpoints
    ts = tp["ts"]
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    cust = tp["customer_id"]
    codes = cust.array.codes if isinstance(cust.dtype, pd.CategoricalDtype) else pd.factorize(cust)[0]
    return pd.DataFrame(
        {
            "customer_id": np.asarray(codes, dtype=np.int64),
            "ts": ts.to_numpy(),
            "channel": recode(tp["channel"], list(ref.gen.CHANNELS)),
            "event_type": recode(tp["kind"], list(ref.gen.EVENT_TYPES)),
            "duration_s": tp["duration_s"].fillna(0.0).to_numpy() if "duration_s" in tp else 0.0,
            "amount": tp["amount"].fillna(0.0).to_numpy() if "amount" in tp else 0.0,
        }
    )


def time_reference(ref: Reference, log: pd.DataFrame, cutoff: pd.Timestamp, repeats: int) -> dict:
    """Seconds of ``repeats`` runs of the reference's ``features_pandas`` on ``log`` at ``cutoff``."""
    times, cpu, out = [], [], None
    for _ in range(max(1, repeats)):
        t0, c0 = time.perf_counter(), time.process_time()
        out = ref.features.features_pandas(log, cutoff=cutoff)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    med = statistics.median(times)
    return {
        "events": len(log),
        "customers": int(out.shape[0]),
        "features": int(out.shape[1]) - 1,  # without customer_id
        "seconds": [round(t, 3) for t in times],
        "events_per_s": round(len(log) / min(times)),
        "events_per_s_median": round(len(log) / med),
        "cpu_s_per_m_events": round(statistics.median(cpu) * 1e6 / len(log), 4),
        "load_average": list(os.getloadavg()),
    }


def reference_on_same_events(ref: Reference, tables: Tables, cutoff: pd.Timestamp, repeats: int) -> dict:
    """The reference on engage's own benchmark events (every event before the cutoff counts)."""
    log = as_reference_log(tables, ref)
    naive = pd.Timestamp(cutoff).tz_convert("UTC").tz_localize(None) if pd.Timestamp(cutoff).tzinfo else cutoff
    return {"log": "engage benchmark events", **time_reference(ref, log, pd.Timestamp(naive), repeats)}


def reference_on_own_log(ref: Reference, n_events: int, repeats: int, seed: int = 0) -> dict:
    """The reference on its own synthetic log of about ``n_events`` events (100 per customer), as its script
    runs it; generation is not timed."""
    t0 = time.perf_counter()
    log = ref.gen.gen_events(max(n_events // 100, 1), 100, seed=seed)
    generate_s = time.perf_counter() - t0
    figures = time_reference(ref, log, ref.gen.CUTOFF, repeats)
    return {"log": "reference gen.py log", "generate_s": round(generate_s, 2), **figures}


def ratio(engage_events_per_s: float, reference: dict | None) -> float | None:
    """engage's events/s over the reference's (medians of each), or ``None`` without a reference."""
    if not reference or not reference.get("events_per_s_median"):
        return None
    return round(engage_events_per_s / reference["events_per_s_median"], 3)


def per_feature(ratio_value: float | None, engage_features: int, reference: dict | None) -> float | None:
    """``ratio_value`` times engage's feature columns over the reference's: speed per column built."""
    if ratio_value is None or not reference or not reference.get("features"):
        return None
    return round(ratio_value * engage_features / reference["features"], 3)
