"""Experiments on given labels: test on a separate labelled folder, and leave customer attributes out.

``engage train churn --test-data DIR`` trains on one folder as usual, then scores the trained system on the
customers of another folder and measures it on that folder's labels: its given ``labels`` at their cutoff
(:func:`features.contract.cutoffs.labels_cutoff`), else labels derived at its evaluation cutoff, as
``engage evaluate churn`` does. Those figures go in the report as ``test`` and ``test_auc``, and promotion
compares challenger and champion on that folder. ``--exclude-attributes a,b`` drops customer attributes
from the training folder before anything is fitted (e.g. a ``split`` column that would become a feature).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.contract.cutoffs import labels_cutoff
from features.contract.schema import CUSTOMER_COLUMNS, Tables
from training.churn.result import REPORT_METRICS
from training.churn.split import ChurnSettings, derived_labels, temporal_split
from training.metrics import churn_metrics

log = logging.getLogger("engage.churn")


def evaluation_labels(tables: Tables, settings: ChurnSettings, cutoff=None) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The labels to evaluate on and their cutoff: the given ``labels`` table, else derived at the test cutoff."""
    if tables.labels is not None and len(tables.labels):
        labels = tables.labels.assign(customer_id=tables.labels["customer_id"].astype(str))
        return labels, labels_cutoff(tables).at
    test = temporal_split(tables, settings, test_cutoff=cutoff).test
    return derived_labels(tables, [test], settings), test


@dataclass
class HeldOutTest:
    """A trained system measured on a separate labelled folder."""

    dataset: str
    tables: Tables
    keys: pd.DataFrame  # customer_id, label
    cutoff: pd.Timestamp
    prob: np.ndarray
    metrics: dict[str, float]
    shared_customers: int  # customers also in the training folder

    def report(self) -> dict[str, Any]:
        """The report's ``test`` block: where, when, and the usual metrics."""
        return {
            "dataset": self.dataset,
            "cutoff": str(self.cutoff),
            **{k: self.metrics[k] for k in REPORT_METRICS},
            "shared_customers": self.shared_customers,
        }


def measure_on_folder(
    system, tables: Tables, settings: ChurnSettings, *, dataset: str, train_ids: Sequence[str] = ()
) -> HeldOutTest:
    """Score ``system`` on the labelled customers of ``tables`` at their labels' cutoff and measure it."""
    labels, cutoff = evaluation_labels(tables, settings)
    keys = labels[["customer_id", "label"]].reset_index(drop=True).astype({"customer_id": str})
    scored = system.score(tables, cutoff).set_index("customer_id")
    prob = scored["churn_probability"].reindex(keys["customer_id"]).to_numpy()
    metrics = churn_metrics(keys["label"].astype(int).to_numpy(), prob)
    shared = int(keys["customer_id"].isin(set(map(str, train_ids))).sum())
    if shared:
        log.warning("test folder %s: %d of its %d labelled customers are also in the training folder",
                    dataset, shared, len(keys))
    log.info("test folder %s at %s: AUC %.4f, Brier %.4f, ECE %.4f on %d customers",
             dataset, cutoff.date(), metrics["auc"], metrics["brier"], metrics["ece"], len(keys))
    return HeldOutTest(dataset, tables, keys, cutoff, prob, metrics, shared)


def parse_attributes(text: str | None) -> tuple[str, ...]:
    """``"a, b"`` -> ``("a", "b")`` (empty names dropped, order kept, duplicates once)."""
    if not text:
        return ()
    return tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))


def without_attributes(tables: Tables, names: Sequence[str]) -> Tables:
    """``tables`` without the customer attributes ``names``; an unknown name is an error that lists the attributes."""
    if not names:
        return tables
    attributes = [str(c) for c in tables.customers.columns if c not in CUSTOMER_COLUMNS]
    unknown = [n for n in names if n not in attributes]
    if unknown:
        raise ValueError(
            f"--exclude-attributes: {', '.join(map(repr, unknown))} not a customer attribute of this folder; "
            f"its attributes: {', '.join(attributes) or 'none'}"
        )
    return tables.with_(customers=tables.customers.drop(columns=list(names)))
