"""The importers by dataset name, and ``import_dataset``, the one entry point the CLI and benchmarks use."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from features.contract.schema import Tables
from features.sources.importers.bank_marketing import import_bank_marketing
from features.sources.importers.cdnow import import_cdnow
from features.sources.importers.ifood_campaigns import import_ifood_campaigns
from features.sources.importers.online_retail import import_online_retail
from features.sources.importers.online_shoppers import import_online_shoppers
from features.sources.importers.starbucks import import_starbucks
from features.sources.importers.telco import import_telco

IMPORTERS: dict[str, Callable[..., Tables]] = {
    "starbucks": import_starbucks,
    "online_retail": import_online_retail,
    "cdnow": import_cdnow,
    "telco": import_telco,
    "bank_marketing": import_bank_marketing,
    "online_shoppers": import_online_shoppers,
    "ifood_campaigns": import_ifood_campaigns,
}


def import_dataset(name: str, source: str | Path, **options) -> Tables:
    """Import the dataset ``name`` from its folder ``source`` into validated tables (nothing is written).

    ``options`` go to the importer (only ``starbucks`` has one: ``holdout``). The manifest in
    ``meta["manifest"]`` records what the dataset has and lacks, the decisions taken and the counts.
    """
    if name not in IMPORTERS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(IMPORTERS)}")
    return IMPORTERS[name](Path(source), **options)
