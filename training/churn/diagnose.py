"""``engage diagnose ceiling churn``: model / ceiling / oracle churn figures on a simulated data folder.

The churn model is trained in-process exactly as ``engage train churn`` trains it (same settings, no MLflow);
its report on the truth's cutoff carries the oracle and the ceiling (:mod:`training.churn.ceiling`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from training.churn.ceiling import side_by_side


def churn_ceiling_report(data: Path, seed: int | None = None, config_path: Path | None = None) -> dict:
    """``engage diagnose ceiling churn``: train the churn model in-process (no MLflow) on a simulated folder
    and report model / ceiling / oracle on its test rows (the truth's cutoff).

    ``seed``: the training seed (default: the churn settings' own, as ``engage train churn`` uses).
    """
    from features.sources.io import read_tables
    from training.churn.commands import settings_for
    from training.churn.train import train_churn
    from training.registry import load_config

    t0 = time.perf_counter()
    tables = read_tables(Path(data))
    if tables.truth is None:
        raise ValueError(f"{data}: the churn ceiling needs a simulated folder with its truth table")
    settings = settings_for(load_config(config_path))
    rng = np.random.default_rng(settings.seed if seed is None else seed)
    result = train_churn(tables, settings, rng, dataset=Path(data).name)
    report = result.report
    if "ceiling_auc" not in report:
        raise ValueError(f"{data}: the test cutoff {report['cutoffs']['test']} is not the truth's cutoff")
    return {
        "data": str(data),
        "test_cutoff": report["cutoffs"]["test"],
        "rows": report["n"],
        **side_by_side(report),
        "ceiling_r2_true_probability": report["ceiling_r2_true_probability"],
        "seconds": round(time.perf_counter() - t0, 1),
    }
