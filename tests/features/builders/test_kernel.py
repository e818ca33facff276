"""The compiled feature kernel against the numpy reference path: the same feature table on simulated worlds
(customers with 0, 1 and 100,000 touchpoints) and on every real import under ``../shared/datasets``.

Every column must be equal exactly (the kernel does the integer work: counts, times, windows, group
boundaries; float sums stay numpy's arithmetic in the same order, so they match to the last bit).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.builders.kernel_mode import KERNEL_ENV, feature_path_name, kernel_requested, numba_available
from features.builders.pipeline import FeaturePipeline
from features.contract.schema import Tables
from features.contract.validate import validate_tables
from tests.paths import SHARED, needs_shared

pytestmark = pytest.mark.skipif(not numba_available(), reason="numba not installed: only the numpy path exists")

def _both_paths(pipe: FeaturePipeline, tables: Tables, cutoff, monkeypatch) -> tuple[pd.DataFrame, pd.DataFrame]:
    monkeypatch.setenv(KERNEL_ENV, "numpy")
    assert feature_path_name() == "numpy"
    reference = pipe.transform(tables, cutoff=cutoff)
    monkeypatch.setenv(KERNEL_ENV, "numba")
    assert feature_path_name() == "numba"
    return reference, pipe.transform(tables, cutoff=cutoff)


def assert_same_features(reference: pd.DataFrame, kernel: pd.DataFrame) -> None:
    """Equal tables, exactly: same columns, index, dtypes and values (NaN where NaN)."""
    pd.testing.assert_frame_equal(kernel, reference, check_exact=True)


def _with_edge_customers(tables: Tables, heavy_events: int = 100_000) -> Tables:
    """``tables`` plus one customer holding ``heavy_events`` touchpoints (many customers' histories merged under
    one new id), one with a single touchpoint and one with none."""
    tp = tables.touchpoints
    ids = tables.customers["customer_id"].astype(str)
    counts = tp["customer_id"].astype(str).value_counts().reindex(ids, fill_value=0).to_numpy()
    upto = int(np.searchsorted(np.cumsum(counts), heavy_events)) + 1
    assert counts[:upto].sum() >= heavy_events, "the world is too small for the heavy customer"
    heavy = tp[tp["customer_id"].astype(str).isin(set(ids.iloc[:upto]))].head(heavy_events).copy()
    heavy["customer_id"] = "heavy"
    single = tp.iloc[[len(tp) // 2]].copy()
    single["customer_id"] = "single"
    new_customers = tables.customers.iloc[:3].copy()
    new_customers["customer_id"] = ["heavy", "single", "nothing"]
    customers = pd.concat([tables.customers.astype({"customer_id": str}), new_customers], ignore_index=True)
    touchpoints = pd.concat([tp.astype({"customer_id": str}), heavy, single.astype({"customer_id": str})],
                            ignore_index=True)
    out = tables.outreach
    return validate_tables(Tables(customers=customers, touchpoints=touchpoints, outreach=out), source="edge world")[0]


def test_the_switch_reads_the_environment(monkeypatch):
    monkeypatch.setenv(KERNEL_ENV, "numpy")
    assert not kernel_requested() and feature_path_name() == "numpy"
    monkeypatch.setenv(KERNEL_ENV, "fortran")
    with pytest.raises(ValueError, match=KERNEL_ENV):
        kernel_requested()
    monkeypatch.delenv(KERNEL_ENV)
    assert kernel_requested() and feature_path_name() == "numba"


def test_kernel_equals_numpy_on_a_simulated_world(make_world, monkeypatch):
    world = make_world(1500, 400, seed=5).without_truth()
    cutoff = world.meta["manifest"]["cutoff"] if world.meta else None
    cutoff = cutoff or world.touchpoints["ts"].quantile(0.8)
    pipe = FeaturePipeline(n_jobs=2, block_events=20_000).fit(world, cutoff=cutoff)
    assert_same_features(*_both_paths(pipe, world, cutoff, monkeypatch))


@pytest.mark.slow
def test_kernel_equals_numpy_with_0_1_and_100000_touchpoints(make_world, monkeypatch):
    world = _with_edge_customers(make_world(1500, 400, seed=5).without_truth())
    cutoff = world.touchpoints["ts"].max() + pd.Timedelta(seconds=1)  # every event counts
    pipe = FeaturePipeline(n_jobs=2).fit(world, cutoff=cutoff)
    reference, kernel = _both_paths(pipe, world, cutoff, monkeypatch)
    assert_same_features(reference, kernel)
    assert reference.loc["heavy", "active_touches"] > 10_000 and reference.loc["nothing", "active_touches"] == 0
    # one customer alone (the service's shape) takes the same path
    one = Tables(customers=world.customers[world.customers["customer_id"] == "single"].reset_index(drop=True),
                 touchpoints=world.touchpoints[world.touchpoints["customer_id"] == "single"].reset_index(drop=True),
                 outreach=None)
    one = validate_tables(one, source="one customer")[0]
    assert_same_features(*_both_paths(pipe, one, cutoff, monkeypatch))


@needs_shared
@pytest.mark.slow
@pytest.mark.parametrize("name", ["starbucks", "online_retail", "cdnow", "telco", "bank_marketing",
                                  "online_shoppers", "ifood_campaigns"])
def test_kernel_equals_numpy_on_real_imports(name, monkeypatch):
    from features.sources.importers.registry import import_dataset

    tables = import_dataset(name, SHARED / name)
    last = tables.touchpoints["ts"].max()  # NaT for imports without events (telco, ifood_campaigns)
    cutoff = tables.meta["manifest"].get("cutoff") or (
        last + pd.Timedelta(seconds=1) if pd.notna(last) else pd.Timestamp("2020-01-01", tz="UTC"))
    pipe = FeaturePipeline(n_jobs=2).fit(tables, cutoff=cutoff)
    assert_same_features(*_both_paths(pipe, tables, cutoff, monkeypatch))


def test_the_kernel_is_compiled_at_import_not_at_the_first_block(make_world, monkeypatch):
    """Every compiled function has its one signature once the package is imported; scoring adds none (a new
    overload would mean a compilation inside a request)."""
    from features.builders import kernel, kernel_engagement, kernel_intent, kernel_service

    functions = [kernel._shared_pass, kernel_engagement._engagement_pass, kernel_engagement._assisted_rows,
                 kernel_engagement._sweep,
                 kernel._day_starts, kernel_intent._moment_pass, kernel_intent._path_pass,
                 kernel_intent._revisit_pass, kernel_service._service_pass]
    before = [len(f.overloads) for f in functions]
    assert before == [1] * len(functions)
    world = make_world(300, 200, seed=2).without_truth()
    cutoff = world.touchpoints["ts"].max()
    monkeypatch.setenv(KERNEL_ENV, "numba")
    FeaturePipeline(n_jobs=1).fit_transform(world, cutoff=cutoff)
    assert [len(f.overloads) for f in functions] == before
