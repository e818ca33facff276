"""Large simulated worlds: blocks of customers, chunked simulation straight to partitions, same world either way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.contract.validate import validate_tables
from features.sources.io import read_tables
from features.sources.partition_writer import write_partitioned
from features.sources.simulated_partitions import simulate_partitioned
from features.sources.simulation.blocks import block_generator, block_ranges
from features.sources.simulation.config import SimConfig
from features.sources.simulation.world import simulate_world
from tests.features.sources.reorder import in_customer_order
from training.cli import app

# three blocks (100, 100, 50 customers): small enough to be fast, enough to cross block and chunk boundaries
CONFIG = SimConfig(n_customers=250, days=60, seed=5, block_customers=100)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def unchunked():
    return simulate_world(CONFIG, np.random.default_rng(5))


def test_chunked_partitioned_world_equals_the_unchunked_one(unchunked, tmp_path) -> None:
    # chunks of 200 customers: blocks 1-2 together, then block 3 alone
    manifest = simulate_partitioned(CONFIG, np.random.default_rng(5), tmp_path / "chunked", 3, chunk_customers=200)
    write_partitioned(unchunked, tmp_path / "whole", 3)
    assert folder_bytes(tmp_path / "chunked") == folder_bytes(tmp_path / "whole")
    assert manifest["counts"] == unchunked.meta["manifest"]["counts"]  # totals over the chunks
    want, _ = validate_tables(unchunked)
    back = in_customer_order(read_tables(tmp_path / "chunked"), want.customers["customer_id"])
    for table in ("customers", "touchpoints", "outreach", "truth"):
        pd.testing.assert_frame_equal(getattr(back, table), getattr(want, table), check_exact=True, obj=table)


def test_blocks_and_ids(unchunked) -> None:
    assert block_ranges(CONFIG) == [(0, 100), (100, 200), (200, 250)]
    assert unchunked.customers["customer_id"].iloc[[0, 99, 100, 249]].tolist() == [
        "C000001", "C000100", "C000101", "C000250"]
    assert unchunked.meta["manifest"]["blocks"] == {"count": 3, "customers": 100}
    assert unchunked.meta["manifest"]["counts"]["customers"] == 250
    assert unchunked.meta["manifest"]["counts"]["touchpoints"] == len(unchunked.touchpoints)
    # the first block is the world of one block: a world of up to one block is what it always was
    first = simulate_world(SimConfig(n_customers=100, days=60, seed=5, block_customers=100), np.random.default_rng(5))
    pd.testing.assert_frame_equal(first.customers, unchunked.customers.iloc[:100])
    assert "blocks" not in first.meta["manifest"]
    # one shared campaign schedule: every block's customers get the same campaigns
    camp = unchunked.outreach.groupby(unchunked.outreach["customer_id"].cat.codes // 100)["campaign_id"].unique()
    assert all(set(c) == set(camp.iloc[0]) for c in camp)
    # block generators depend on the seed and the block number only
    used = np.random.default_rng(5)
    used.random(10)
    assert block_generator(used, 2).random() == block_generator(np.random.default_rng(5), 2).random()
    assert block_generator(used, 1).random() != block_generator(used, 2).random()


def test_engage_simulate_partitions(tmp_path) -> None:
    runner = CliRunner()
    args = ["simulate", "--customers", "120", "--days", "60", "--quiet"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "p"), "--partitions", "3", "--chunk-customers", "50"])
    assert result.exit_code == 0, result.output
    assert '"partitions": 3' in result.stdout and '"customers": 120' in result.stdout
    assert runner.invoke(app, [*args, "--out", str(tmp_path / "flat")]).exit_code == 0
    assert runner.invoke(app, ["partition", "--data", str(tmp_path / "flat"), "--out", str(tmp_path / "p2"),
                               "--partitions", "3", "--quiet"]).exit_code == 0
    assert folder_bytes(tmp_path / "p") == folder_bytes(tmp_path / "p2")
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "x"), "--chunk-customers", "50"])
    assert result.exit_code == 2 and "--partitions" in result.output
