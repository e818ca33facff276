"""Which rows a churn model learns from: the settings, the time-based split and the labelled feature rows.

Time-based split (derived labels): the test cutoff ``T`` is the data's evaluation cutoff (the simulator
manifest's ``cutoff``; else the last full horizon before the end of the log). Validation cutoffs end
their label window at or before ``T``; training cutoffs end theirs at or before the first validation
cutoff, so no training label comes from after the training period.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from features.contract.cutoffs import evaluation_cutoff, utc_timestamp
from features.contract.schema import Tables
from features.labels import OUTREACH_REACTIONS, make_labels

log = logging.getLogger("engage.churn")


@dataclass(frozen=True)
class ChurnSettings:
    """Training choices (``mlflow.yaml``'s ``churn`` section overrides the defaults)."""

    horizon_days: int = 90
    inactivity_days: int = 90
    cutoff_step_days: int = 30
    max_train_cutoffs: int = 10
    n_val_cutoffs: int = 1
    seed: int = 7
    activity_kinds: tuple[str, ...] | None = None
    # Kinds that keep a customer eligible but do not count as activity in the label's horizon: reactions
    # to our own outreach are not retention (and the simulator's truth does not count them either).
    outcome_excludes: tuple[str, ...] = tuple(sorted(OUTREACH_REACTIONS))
    test_cutoff: str | None = None
    params: dict = field(default_factory=dict)
    calibration: str = "auto"
    cv_folds: int = 5
    min_history_days: int | None = None
    validation: str = "temporal"
    holdout_share: float = 0.2
    seasonal_calibration: bool = False

    @classmethod
    def from_dict(cls, spec: dict | None) -> ChurnSettings:
        spec = dict(spec or {})
        unknown = set(spec) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"churn settings: unknown keys {sorted(unknown)}")
        if "outcome_excludes" in spec and spec["outcome_excludes"] is None:
            spec["outcome_excludes"] = ()  # ``outcome_excludes: null`` in YAML: every activity counts
        for key in ("activity_kinds", "outcome_excludes"):
            if spec.get(key) is not None:
                spec[key] = tuple(spec[key])
        return cls(**spec)


@dataclass(frozen=True)
class TemporalSplit:
    train: list[pd.Timestamp]
    val: list[pd.Timestamp]
    test: pd.Timestamp

    def as_dict(self) -> dict[str, Any]:
        return {
            "train": [str(c) for c in self.train],
            "val": [str(c) for c in self.val],
            "test": str(self.test),
        }


def data_span(tables: Tables) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First touchpoint and end of the observed log (manifest ``end`` when simulated, else last ts)."""
    ts = pd.to_datetime(tables.touchpoints["ts"], utc=True)
    if len(ts) == 0:
        raise ValueError("touchpoints: no rows, cannot derive churn labels")
    manifest = tables.meta.get("manifest") or {}
    end = utc_timestamp(manifest["end"]) if manifest.get("end") else ts.max() + pd.Timedelta(seconds=1)
    return ts.min(), end


def temporal_split(tables: Tables, settings: ChurnSettings, *, test_cutoff=None) -> TemporalSplit:
    """Train / validation / test cutoffs whose label windows never overlap the next period."""
    start, end = data_span(tables)
    H = pd.Timedelta(days=settings.horizon_days)
    step = pd.Timedelta(days=settings.cutoff_step_days)
    given = evaluation_cutoff(tables, test_cutoff or settings.test_cutoff, fallback="none")
    test = given if given is not None else (end - H).floor("D")
    if test + H > end:
        raise ValueError(
            f"test cutoff {test}: its {settings.horizon_days}-day horizon ends after the log ({end})"
        )
    if settings.validation not in ("temporal", "holdout"):
        raise ValueError(f"validation {settings.validation!r}: use 'temporal' or 'holdout'")
    # holdout: training cutoffs run up to the test period; early stopping and calibration use held-out
    # customers at those cutoffs instead of a later validation period
    val = (
        [test - H - k * step for k in range(settings.n_val_cutoffs)][::-1]
        if settings.validation == "temporal"
        else [test]
    )
    history = settings.min_history_days
    earliest = start + pd.Timedelta(days=min(settings.inactivity_days, 365) if history is None else history)
    train = []
    c = val[0] - H
    while c >= earliest and len(train) < settings.max_train_cutoffs:
        train.append(c)
        c = c - step
    if not train:
        raise ValueError(
            f"not enough history for a temporal split: the log starts {start.date()}, the test cutoff is "
            f"{test.date()}; training needs cutoffs at or before {(val[0] - H).date()} with "
            f"{settings.inactivity_days} days of history (simulate more --days or shorten the horizon)"
        )
    return TemporalSplit(train=train[::-1], val=val if settings.validation == "temporal" else [], test=test)


def derived_labels(tables: Tables, cutoffs, settings: ChurnSettings) -> pd.DataFrame:
    """Churn labels at ``cutoffs`` under the settings' horizon, inactivity rule and activity kinds."""
    return make_labels(
        tables,
        cutoffs,
        horizon_days=settings.horizon_days,
        inactivity_days=settings.inactivity_days,
        activity_kinds=settings.activity_kinds,
        outcome_excludes=settings.outcome_excludes,
    )


def labelled_features(
    tables: Tables, cutoffs, pipeline, settings: ChurnSettings, *, labels: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feature rows and labels for every customer active at each cutoff.

    Returns ``(F, keys)``: ``F`` indexed by customer_id (one row per labelled customer and cutoff) and
    ``keys`` with columns ``customer_id, cutoff, label`` aligned with ``F``'s rows.
    """
    if labels is None:
        labels = derived_labels(tables, cutoffs, settings)
    blocks, keys = [], []
    data = tables.without_truth()
    for i, c in enumerate(cutoffs, 1):
        lab = labels[labels["cutoff"] == c]
        if lab.empty:
            continue
        t0 = time.perf_counter()
        F = pipeline.transform(data, cutoff=c)
        blocks.append(F.loc[lab["customer_id"].to_numpy()])
        keys.append(lab.reset_index(drop=True))
        log.info(
            "features at %s: %d labelled customers (churn rate %.3f) in %.1fs",
            c.date(),
            len(lab),
            lab["label"].mean(),
            time.perf_counter() - t0,
            extra={"step": ("features at each training cutoff", i, len(cutoffs))},  # a progress bar in the CLI
        )
    if not blocks:
        raise ValueError(f"no customer is active at any of the cutoffs {[str(c.date()) for c in cutoffs]}")
    return pd.concat(blocks), pd.concat(keys, ignore_index=True)
