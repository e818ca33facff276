"""The core reports progress through plain callbacks (the command line draws them): the feature pipeline block by
block over both passes, the simulator day by day; reporting changes no result."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.builders.pipeline import FeaturePipeline
from features.contract.cutoffs import evaluation_cutoff
from features.sources.simulation.config import SimConfig
from features.sources.simulation.world import simulate_world


def test_pipeline_reports_every_block_of_both_passes_and_builds_the_same_table(make_world) -> None:
    tables = make_world(300, 120, seed=2).without_truth()
    cutoff = evaluation_cutoff(tables)
    calls: list[tuple[int, int]] = []
    pipeline = FeaturePipeline(block_events=2_000, n_jobs=2)
    with_progress = pipeline.fit_transform(tables, cutoff=cutoff, progress=lambda d, t: calls.append((d, t)))
    totals = {t for _, t in calls}
    assert len(totals) == 1 and (total := totals.pop()) >= 4 and total % 2 == 0  # several blocks, two passes
    assert [d for d, _ in calls] == list(range(1, total + 1))
    pd.testing.assert_frame_equal(with_progress, FeaturePipeline(block_events=2_000).fit_transform(tables,
                                                                                                    cutoff=cutoff))
    again: list[tuple[int, int]] = []
    pipeline.transform(tables, cutoff=cutoff, progress=lambda d, t: again.append((d, t)))
    assert again[-1] == (total // 2, total // 2)


def test_simulator_reports_each_day_and_keeps_its_bytes() -> None:
    config = SimConfig(n_customers=50, days=60, horizon_days=30, seed=1)
    days: list[tuple[int, int]] = []
    a = simulate_world(config, np.random.default_rng(1), progress=lambda d, t: days.append((d, t)))
    b = simulate_world(config, np.random.default_rng(1))
    assert days == [(d, 60) for d in range(1, 61)]
    pd.testing.assert_frame_equal(a.touchpoints, b.touchpoints)
