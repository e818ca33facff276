"""The Dask engine of ``engage features`` and ``engage score`` against the local engine, on an in-process
cluster: the same features (bit for bit on the same partitioned folder), the same scores and defense list,
the folder refusals, and the cutoff rule over partitions."""

from __future__ import annotations

import itertools
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.sources.io import read_tables

# Columns of the value family whose fitted priors are means over customers: summed in another customer order
# (the flat folder's, not the partitions'), they differ in the last bits.
ORDER_SENSITIVE_TOLERANCE = 1e-12


def _by_customer(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("customer_id", kind="stable").reset_index(drop=True)


def test_features_equal_the_local_engine(engine_world, threads_client, tmp_path) -> None:
    from features.builders.pipeline import FeaturePipeline
    from features.sources.io import read_tables
    from training.engine import partcache
    from training.engine.features import DICTIONARY_NAME, dask_features, part_stats

    cutoff = engine_world["cutoff"]
    summary = dask_features(threads_client, engine_world["parts"], tmp_path / "features", cutoff)
    assert partcache.kept() == 0  # the transform pass took every partition the fit pass kept
    _, events = threads_client.submit(part_stats, str(engine_world["parts"]), 0, FeaturePipeline(n_jobs=1),
                                      cutoff, run="probe").result()
    assert partcache.kept() == 1 and partcache.take("probe", 0).touchpoints.shape[0] == events
    got = pd.read_parquet(tmp_path / "features")
    assert sorted(p.name for p in (tmp_path / "features").iterdir()) == [
        DICTIONARY_NAME, *(f"part-{i:05d}.parquet" for i in range(4))]
    assert summary["customers"] == len(got) == 600 and (got["cutoff"] == cutoff).all()
    got = _by_customer(got.drop(columns="cutoff"))

    # the local engine on the same partitioned folder: identical, bit for bit
    local = read_tables(engine_world["parts"]).without_truth()
    same = FeaturePipeline().fit_transform(local, cutoff=cutoff).reset_index()
    pd.testing.assert_frame_equal(got, _by_customer(same), check_exact=True)
    # on the flat folder (customers in another order): equal up to the summation order of fitted means
    flat = FeaturePipeline().fit_transform(read_tables(engine_world["flat"]).without_truth(), cutoff=cutoff)
    flat = _by_customer(flat.reset_index())
    pd.testing.assert_frame_equal(got, flat, check_exact=False, rtol=ORDER_SENSITIVE_TOLERANCE, atol=1e-12)
    dictionary = pd.read_csv(tmp_path / "features" / DICTIONARY_NAME)
    assert len(dictionary) == got.shape[1] - 1


def test_features_with_a_fitted_pipeline_equal_its_transform_exactly(engine_world, threads_client, tmp_path):
    from features.sources.io import read_tables
    from training.engine.features import dask_features

    pipeline, cutoff = engine_world["system"].pipeline, engine_world["cutoff"]
    dask_features(threads_client, engine_world["parts"], tmp_path / "f", cutoff, pipeline=pipeline)
    got = _by_customer(pd.read_parquet(tmp_path / "f").drop(columns="cutoff"))
    want = pipeline.transform(read_tables(engine_world["flat"]).without_truth(), cutoff=cutoff).reset_index()
    pd.testing.assert_frame_equal(got, _by_customer(want), check_exact=True)


def test_scores_and_defense_list_equal_the_local_engine(engine_world, threads_client, tmp_path) -> None:
    from serving.batch import score_data
    from training.engine.scoring import dask_score, engine_loads

    model, cutoff = engine_world["model"], engine_world["cutoff"]
    loads = engine_loads()
    log = tmp_path / "dask.jsonl"
    summary = dask_score(threads_client, engine_world["parts"], tmp_path / "scores", cutoff, model_path=model,
                         defense_out=tmp_path / "defense.csv", decision_log=log)
    assert engine_loads() - loads == 1  # in-process workers share one cache: one load for four partitions
    local_log = tmp_path / "local.jsonl"
    local = score_data(engine_world["flat"], tmp_path / "local.parquet", cutoff=cutoff, model_path=model,
                       defense_out=tmp_path / "local_defense.csv", decision_log=local_log)
    got = pd.read_parquet(tmp_path / "scores")
    want = pd.read_parquet(tmp_path / "local.parquet")
    assert summary["customers"] == local["customers"] == len(got)
    assert summary["model_version"] == local["model_version"] and (got["model_version"] == local["model_version"]).all()
    pd.testing.assert_frame_equal(_by_customer(got), _by_customer(want), check_exact=True)
    d_got, d_want = pd.read_csv(tmp_path / "defense.csv"), pd.read_csv(tmp_path / "local_defense.csv")
    assert summary["defense_targets"] == local["defense_targets"] == len(d_want)
    pd.testing.assert_frame_equal(_by_customer(d_got), _by_customer(d_want), check_exact=True)
    assert d_got["nba_expected_incremental_value"].is_monotonic_decreasing or d_got.empty

    def lines(path):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for r in rows:
            r.pop("ts", None)
            r.pop("logged_at", None)
        return sorted(rows, key=lambda r: r["customer_id"])

    assert summary["decisions_logged"] == len(want)
    assert lines(log) == lines(local_log)


def test_a_flat_folder_is_refused_naming_engage_partition(engine_world, tmp_path) -> None:
    from training.cli import app

    for args in (["features", "--out", str(tmp_path / "f")], ["score", "--out", str(tmp_path / "s")]):
        result = CliRunner().invoke(app, [*args, "--data", str(engine_world["flat"]), "--engine", "dask",
                                          "--model-uri", str(engine_world["model"]), "-q"])
        assert result.exit_code == 2, result.output
        assert "not a partitioned data folder" in result.output and "engage partition" in result.output
    assert not (tmp_path / "f").exists() and not (tmp_path / "s").exists()


def test_an_existing_output_folder_is_kept_without_overwrite(engine_world, threads_client, tmp_path) -> None:
    from training.engine.features import dask_features

    out = tmp_path / "features"
    out.mkdir()
    (out / "keep.txt").write_text("previous")
    with pytest.raises(FileExistsError, match="--overwrite"):
        dask_features(threads_client, engine_world["parts"], out, engine_world["cutoff"])
    assert (out / "keep.txt").read_text() == "previous"
    dask_features(threads_client, engine_world["parts"], out, engine_world["cutoff"],
                  pipeline=engine_world["system"].pipeline, overwrite=True)
    assert not (out / "keep.txt").exists() and len(list(out.glob("part-*.parquet"))) == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind


@pytest.mark.parametrize("labels_cutoff", [True, False])
def test_the_cutoff_over_partitions_follows_the_local_rule(engine_world, threads_client, tmp_path,
                                                          labels_cutoff) -> None:
    from features.contract.cutoffs import scoring_cutoff
    from training.engine.parts import partitioned_cutoff

    folder = shutil.copytree(engine_world["parts"], tmp_path / "parts")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.pop("cutoff")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert partitioned_cutoff(threads_client, folder, None).source == "now"  # no cutoff, no labels
    (folder / "labels").mkdir()
    for part in sorted((folder / "customers").glob("*.parquet")):
        ids = pd.read_parquet(part)["customer_id"].astype(str)
        labels = pd.DataFrame({"customer_id": ids, "label": np.arange(len(ids)) % 2})
        if labels_cutoff:  # else labels without a cutoff column: the end of the touchpoint log
            labels["cutoff"] = pd.Timestamp("2025-12-01", tz="UTC")
        labels.to_parquet(folder / "labels" / part.name, index=False)
    got = partitioned_cutoff(threads_client, folder, None)
    want = scoring_cutoff(read_tables(folder).without_truth(), None)
    assert (got.at, got.source) == (want.at, want.source)
    assert got.source == ("labels" if labels_cutoff else "labels_end_of_log")
    given = partitioned_cutoff(threads_client, folder, "2025-01-01")
    assert given.source == "given" and given.at == pd.Timestamp("2025-01-01", tz="UTC")
    assert np.isfinite(got.at.value)


@pytest.mark.slow
def test_engines_agree_on_the_issue_size_world(engine_world, threads_client, make_world, tmp_path) -> None:
    """The issue's equality target: features and scores of a 5,000-customer world, Dask against local."""
    from features.builders.pipeline import FeaturePipeline
    from features.sources.io import write_tables
    from features.sources.partition_writer import write_partitioned
    from serving.batch import score_data
    from training.engine.features import dask_features
    from training.engine.scoring import dask_score

    tables = make_world(5000, 365, seed=21)
    cutoff = pd.Timestamp(tables.meta["manifest"]["cutoff"])
    write_tables(tables.without_truth(), tmp_path / "flat")
    parts = tmp_path / "parts"
    write_partitioned(read_tables(tmp_path / "flat"), parts, 8)
    dask_features(threads_client, parts, tmp_path / "features", cutoff)
    got = _by_customer(pd.read_parquet(tmp_path / "features").drop(columns="cutoff"))
    want = FeaturePipeline().fit_transform(read_tables(parts).without_truth(), cutoff=cutoff).reset_index()
    pd.testing.assert_frame_equal(got, _by_customer(want), check_exact=True)

    model = engine_world["model"]
    dask_score(threads_client, parts, tmp_path / "scores", cutoff, model_path=model,
               defense_out=tmp_path / "defense.parquet")
    score_data(tmp_path / "flat", tmp_path / "local.parquet", cutoff=cutoff, model_path=model,
               defense_out=tmp_path / "local_defense.parquet")
    for mine, local in (("scores", "local.parquet"), ("defense.parquet", "local_defense.parquet")):
        pd.testing.assert_frame_equal(_by_customer(pd.read_parquet(tmp_path / mine)),
                                      _by_customer(pd.read_parquet(tmp_path / local)), check_exact=True)


def test_defense_lists_merged_from_partitions_equal_the_whole_tables_list() -> None:
    from serving.batch import defense_list
    from training.engine.scoring import merge_defense

    rng = np.random.default_rng(5)
    n = 200
    table = pd.DataFrame({
        "customer_id": [f"c{i:03d}" for i in range(n)],
        "churn_probability": rng.random(n),
        "nba_action": rng.choice(["call", "email", None], n),
        # ties and missing values: the merged order must be the same stable order as the whole table's
        "nba_expected_incremental_value": rng.choice([1.0, 2.0, 2.0, 3.0, np.nan], n),
        "defense_target": rng.random(n) < 0.4,
        "model_version": "m/1",
    })
    bounds = [0, 37, 37, 120, n]  # an empty partition too
    parts = [defense_list(table.iloc[a:b]) for a, b in itertools.pairwise(bounds)]
    pd.testing.assert_frame_equal(merge_defense(parts), defense_list(table), check_exact=True)


def test_a_customer_in_two_partitions_stops_the_dask_engine_before_any_output(engine_world, threads_client,
                                                                             tmp_path) -> None:
    """What no single partition can see (a duplicate id split across partitions) is checked first, from the id
    columns only; the command exits 2 naming the id and both parts, and writes nothing."""
    import shutil

    from features.sources.partitions import part_path
    from training.cli import app

    parts = tmp_path / "parts"
    shutil.copytree(engine_world["parts"], parts)
    donor = pd.read_parquet(part_path(parts, "customers", 0))
    taker = pd.read_parquet(part_path(parts, "customers", 3))
    pd.concat([taker, donor.iloc[[0]]], ignore_index=True).to_parquet(part_path(parts, "customers", 3), index=False)
    dup = str(donor["customer_id"].iloc[0])
    for command in ("features", "score"):
        out = tmp_path / command
        result = CliRunner().invoke(app, [command, "--data", str(parts), "--out", str(out), "--engine", "dask",
                                          "--scheduler", threads_client.scheduler.address,
                                          "--model-uri", str(engine_world["model"]), "-q"])
        assert result.exit_code == 2, result.output
        assert "more than one partition" in result.output and repr(dup) in result.output
        assert "part-00000 and part-00003" in result.output
        assert not out.exists()
