"""Partitioned data folders: writing, reading back, re-partitioning (engage partition) and validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.contract.errors import DataError
from features.contract.schema import TABLES, Tables
from features.sources.io import read_tables, write_tables
from features.sources.partition_checks import validate_partitioned
from features.sources.partition_writer import PartitionedWriter, write_partitioned
from features.sources.partitions import part_path, partition_count, partition_of
from training.cli import app


@pytest.fixture(scope="module")
def flat(make_world, tmp_path_factory) -> Tables:
    """A small world, written flat and read back (validated)."""
    folder = tmp_path_factory.mktemp("flat") / "w"
    world = make_world(200, 60, seed=3)
    labels = world.truth[["customer_id", "churned"]].rename(columns={"churned": "label"})
    write_tables(world.with_(labels=labels.iloc[::-1]), folder)  # every table, labels in another order
    tables = read_tables(folder)
    tables.meta["folder"] = folder
    return tables


def flat_folder(tables: Tables):
    return tables.meta["folder"]


def canonical(tables: Tables) -> dict[str, pd.DataFrame]:
    """Every table in customer-id order (rows of one customer keep their order), ids as text: partitioned
    folders hold customers in partition order, flat ones in file order."""
    out = {}
    for t in TABLES:
        df = getattr(tables, t)
        if df is None:
            continue
        ids = df["customer_id"].astype("str").to_numpy()
        df = df.take(np.argsort(ids, kind="stable")).reset_index(drop=True)
        out[t] = df.assign(customer_id=df["customer_id"].astype("str"))
    return out


def assert_same_tables(a: Tables, b: Tables) -> None:
    ca, cb = canonical(a), canonical(b)
    assert ca.keys() == cb.keys()
    for t in ca:
        pd.testing.assert_frame_equal(ca[t], cb[t], check_exact=True, obj=t)


def folder_bytes(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_round_trip_equals_the_flat_read(flat: Tables, tmp_path) -> None:
    out = tmp_path / "p"
    rows = write_partitioned(flat, out, 4)
    assert rows == {t: len(getattr(flat, t)) for t in TABLES if getattr(flat, t) is not None}
    back = read_tables(out)
    assert_same_tables(back, flat)
    assert back.meta["manifest"]["partitioning"]["count"] == 4
    assert back.meta["manifest"]["seed"] == flat.meta["manifest"]["seed"]
    write_tables(back, tmp_path / "flat_again")  # and back to a flat folder, whose manifest is the first one's
    manifest = (tmp_path / "flat_again" / "manifest.json").read_bytes()
    assert manifest == (flat_folder(flat) / "manifest.json").read_bytes()
    assert_same_tables(read_tables(tmp_path / "flat_again"), flat)
    # every customer's rows sit in the partition its id hashes to, in every table
    for part in range(4):
        ids = pd.read_parquet(part_path(out, "customers", part))["customer_id"]
        assert (partition_of(ids, 4) == part).all()
        for table in ("touchpoints", "outreach", "labels", "truth"):
            seen = pd.read_parquet(part_path(out, table, part))["customer_id"].astype("str")
            assert seen.isin(ids).all()
    # validated order inside a part: the event ids are codes over the part's customers, rows by customer then time
    tp = pd.read_parquet(part_path(out, "touchpoints", 1))
    assert tp["customer_id"].cat.categories.tolist() == ids_of(out, 1)
    step = np.diff(tp["customer_id"].cat.codes.to_numpy())
    assert (step >= 0).all()
    assert (np.diff(tp["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64))[step == 0] >= 0).all()


def ids_of(folder, part: int) -> list[str]:
    return pd.read_parquet(part_path(folder, "customers", part))["customer_id"].astype("str").tolist()


def test_same_bytes_however_the_customers_are_chunked(flat: Tables, tmp_path) -> None:
    write_partitioned(flat, tmp_path / "whole", 3)
    ids = flat.customers["customer_id"]
    with PartitionedWriter(tmp_path / "chunked", 3) as writer:
        for chunk in (ids[:100], ids[100:110], ids[110:]):  # consecutive chunks of whole customers
            writer.add(flat.subset(chunk))
        writer.finish(flat.meta["manifest"])
    assert folder_bytes(tmp_path / "whole") == folder_bytes(tmp_path / "chunked")


def test_empty_partitions_and_overwrite(flat: Tables, tmp_path) -> None:
    out = tmp_path / "p"
    small = flat.subset(flat.customers["customer_id"][:3])
    write_partitioned(small, out, 8)  # at most 3 of 8 partitions hold a customer: the others are empty files
    assert partition_count(out) == 8
    assert_same_tables(read_tables(out), small)
    before = folder_bytes(out)
    with pytest.raises(FileExistsError, match="not empty"):
        write_partitioned(flat, out, 2)
    assert folder_bytes(out) == before
    write_partitioned(flat, out, 2, overwrite=True)
    assert partition_count(out) == 2
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary folder left behind


def test_engage_partition_round_trip_and_refusal(flat: Tables, tmp_path) -> None:
    src = tmp_path / "flat"
    write_tables(flat, src)
    runner = CliRunner()
    result = runner.invoke(app, ["partition", "--data", str(src), "--out", str(tmp_path / "p4"), "--partitions", "4",
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    line = result.stdout.strip().splitlines()[-1]
    assert '"partitions": 4' in line and f'"touchpoints": {len(flat.touchpoints)}' in line
    # partitioned in, partitioned out (part by part): the same data
    result = runner.invoke(app, ["partition", "--data", str(tmp_path / "p4"), "--out", str(tmp_path / "p3"),
                                 "--partitions", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    assert_same_tables(read_tables(tmp_path / "p3"), flat)
    before = folder_bytes(tmp_path / "p3")
    result = runner.invoke(app, ["partition", "--data", str(src), "--out", str(tmp_path / "p3"), "--partitions", "2",
                                 "--quiet"])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert folder_bytes(tmp_path / "p3") == before
    result = runner.invoke(app, ["validate", "--data", str(tmp_path / "p3"), "--quiet"])
    assert result.exit_code == 0 and f"touchpoints: {len(flat.touchpoints):,} rows" in result.stdout


def _move_customer(folder, table: str, source: int, target: int, *, rows: int = 1) -> str:
    """Copy ``rows`` rows of ``table`` from part ``source`` into part ``target`` (as plain ids); the moved id."""
    src = pd.read_parquet(part_path(folder, table, source))
    dst = pd.read_parquet(part_path(folder, table, target))
    moved = src.iloc[:rows].assign(customer_id=lambda d: d["customer_id"].astype("str"))
    both = pd.concat([dst.assign(customer_id=dst["customer_id"].astype("str")), moved], ignore_index=True)
    both.to_parquet(part_path(folder, table, target), index=False)
    return str(moved["customer_id"].iloc[0])


@pytest.fixture
def parted(flat: Tables, tmp_path):
    out = tmp_path / "p"
    write_partitioned(flat, out, 3)
    return out


def test_duplicate_id_split_across_partitions(parted) -> None:
    dup = _move_customer(parted, "customers", 0, 2)
    with pytest.raises(DataError) as err:
        validate_partitioned(parted)
    text = str(err.value)
    assert "more than one partition" in text and repr(dup) in text and "part-00000 and part-00002" in text
    with pytest.raises(DataError, match="more than one partition"):
        read_tables(parted)  # the local engine reads through the same checks


def test_rows_of_a_customer_held_in_another_partition(parted) -> None:
    moved = _move_customer(parted, "touchpoints", 1, 0, rows=2)
    with pytest.raises(DataError) as err:
        validate_partitioned(parted)
    text = str(err.value)
    assert "touchpoints.customer_id: 2 rows with a customer of another partition" in text
    assert f"{moved!r} in part-00000 belongs to part-00001" in text


def test_problems_inside_a_partition_name_it(parted) -> None:
    tp = pd.read_parquet(part_path(parted, "touchpoints", 2))
    amount, kind = tp["amount"].to_numpy(copy=True), tp["kind"].astype("str").to_numpy(copy=True)
    amount[3], kind[3] = -5.0, "visit"  # a refund that is not a return
    tp = tp.assign(amount=amount, kind=kind)
    tp.to_parquet(part_path(parted, "touchpoints", 2), index=False)
    with pytest.raises(DataError, match=r"part-00002/touchpoints\.amount: 1 row with"):
        validate_partitioned(parted)


def test_a_missing_part_file_is_named(parted) -> None:
    part_path(parted, "outreach", 1).unlink()
    with pytest.raises(DataError, match=r"outreach/ must hold exactly the 3 parts.*missing part-00001\.parquet"):
        validate_partitioned(parted)


def test_validation_on_a_dask_cluster_gives_the_same_report(parted) -> None:
    distributed = pytest.importorskip("distributed")
    _, local = validate_partitioned(parted)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as client:
        _, on_dask = validate_partitioned(parted, client)
        _move_customer(parted, "customers", 1, 0)
        with pytest.raises(DataError, match="part-00000 and part-00001"):
            validate_partitioned(parted, client)
    assert (on_dask.rows_in, on_dask.rows_out, on_dask.warnings) == (local.rows_in, local.rows_out, local.warnings)
