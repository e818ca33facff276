"""Golden outputs recorded before the package layout changed: same seed, same bytes, same scores.

``fixtures/golden_digests.json`` holds per-column digests of simulated worlds (three seeds) and of a
2,000-customer world's feature table at two cutoffs; ``fixtures/system_pre_layout.pkl`` is a small decision
system (pipeline, churn model, policy) pickled by the code before the move, and
``fixtures/system_pre_layout_scores.json`` what it scored then. A refactor must reproduce all three exactly.
Regenerate the digests only for a deliberate change of behaviour: ``python tests/e2e/test_golden.py``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.builders.pipeline import FeaturePipeline
from features.sources.simulation.config import SimConfig
from features.sources.simulation.world import simulate_world
from features.system import load_system_file

FIXTURES = Path(__file__).parent / "fixtures"
DIGESTS = FIXTURES / "golden_digests.json"
WORLD_TABLES = ("customers", "touchpoints", "outreach", "truth")


def column_digest(s: pd.Series) -> str:
    """A digest of a column's values, independent of the file format (timestamps as int64 ns)."""
    h = hashlib.sha256()
    if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(s):
        v = s.map(lambda x: -1 if pd.isna(x) else x.value) if s.isna().any() else s.astype("int64")
        h.update(np.asarray(v, dtype=np.int64).tobytes())
    elif pd.api.types.is_bool_dtype(s) and not s.isna().any():
        h.update(np.asarray(s, dtype=np.uint8).tobytes())
    elif pd.api.types.is_numeric_dtype(s) and not isinstance(s.dtype, pd.CategoricalDtype):
        h.update(np.asarray(s, dtype=np.float64).tobytes())
    else:
        h.update("\x00".join("<NA>" if pd.isna(x) else str(x) for x in s).encode())
    return h.hexdigest()[:16]


def frame_digest(df: pd.DataFrame) -> dict:
    """Column names plus one digest per column and one for the index."""
    out: dict = {"__index__": column_digest(pd.Series(df.index.astype(str)))}
    out["__columns__"] = [str(c) for c in df.columns]
    out.update({str(c): column_digest(df[c]) for c in df.columns})
    return out


def world_digests(seed: int) -> dict:
    w = simulate_world(SimConfig(n_customers=300, days=200, seed=seed), np.random.default_rng(seed))
    return {t: frame_digest(getattr(w, t)) for t in WORLD_TABLES if getattr(w, t) is not None}


def feature_digests() -> dict:
    w = simulate_world(SimConfig(n_customers=2000, days=400, seed=11), np.random.default_rng(11))
    cutoff = pd.Timestamp(w.meta["manifest"]["cutoff"])
    tables = w.without_truth()
    early = cutoff - pd.Timedelta(days=120)
    pipe = FeaturePipeline(n_jobs=1).fit(tables, cutoff=early)
    return {name: {"cutoff": str(at), **frame_digest(pipe.transform(tables, cutoff=at))} for name, at in
            (("early", early), ("late", cutoff))}


def _mismatch(got: dict, want: dict) -> list[str]:
    return sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(DIGESTS.read_text())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_simulated_world_is_byte_identical_to_golden(golden: dict, seed: int) -> None:
    got = world_digests(seed)
    for table, want in golden["worlds"][str(seed)].items():
        assert not _mismatch(got[table], want), f"seed {seed}, {table}: columns differ {_mismatch(got[table], want)}"


def test_feature_tables_are_identical_to_golden(golden: dict) -> None:
    got = feature_digests()
    for name, want in golden["features"].items():
        assert not _mismatch(got[name], want), f"{name} cutoff: columns differ {_mismatch(got[name], want)}"


def test_system_pickled_before_the_move_loads_and_scores_the_same() -> None:
    system = load_system_file(FIXTURES / "system_pre_layout.pkl")
    w = simulate_world(SimConfig(n_customers=150, days=300, seed=9), np.random.default_rng(9))
    got = system.score(w.without_truth(), pd.Timestamp(w.meta["manifest"]["cutoff"]))
    want = json.loads((FIXTURES / "system_pre_layout_scores.json").read_text())
    assert list(got.columns) == want["columns"]
    assert len(got) == len(want["data"])
    for j, col in enumerate(want["columns"]):
        expected = [row[j] for row in want["data"]]
        actual = got[col].tolist()
        if col in ("churn_probability", "engagement_index", "buy_intent_score", "nba_expected_incremental_value",
                   "nba_propensity"):
            np.testing.assert_allclose(np.asarray(actual, float), np.asarray(expected, float), rtol=1e-12, atol=1e-12)
        elif col == "cutoff":
            assert {pd.Timestamp(a) for a in actual} == {pd.Timestamp(e) for e in expected}
        else:
            actual = json.loads(pd.Series(actual).to_json(orient="values", double_precision=15))
            assert actual == expected, f"column {col} differs"


if __name__ == "__main__":  # deliberate re-recording only
    DIGESTS.write_text(json.dumps({"worlds": {str(s): world_digests(s) for s in (0, 1, 2)},
                                   "features": feature_digests()}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {DIGESTS}", file=sys.stderr)
