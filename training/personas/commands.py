"""``engage personas``: learn the personas of a data folder and print their profiles; the fitting step the
policy command reuses to put personas into the registered decision system."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.contract.cutoffs import evaluation_cutoff
from features.contract.schema import Tables
from features.models.personas import PersonaModel
from training.personas.report import persona_report
from training.report import write_json


def fit_personas(F: pd.DataFrame, previous: PersonaModel | None = None, seed: int = 0) -> PersonaModel:
    """Personas of the customers of feature table ``F``, names kept from ``previous`` where clusters match."""
    return PersonaModel(random_state=seed).fit(F, previous=previous)


def previous_personas(model_path: str | Path | None) -> PersonaModel | None:
    """The personas of a saved decision system (None without a path, or when it has none)."""
    if model_path is None:
        return None
    from features.system import load_system_file

    return getattr(load_system_file(model_path), "personas", None)


def personas_command(data, report_path=None, *, cutoff=None, model_path=None, seed: int = 0,
                     system=None) -> dict:
    """``engage personas --data DIR [--report F.json]``: personas at the cutoff (default: the manifest's or the
    end of the data), mapped to a decision system's personas when one is given (``system`` loaded, or a saved
    one at ``model_path``)."""
    from features.builders.pipeline import FeaturePipeline
    from features.sources.io import read_tables

    tables: Tables = read_tables(Path(data))
    at = evaluation_cutoff(tables, cutoff)
    if at is None:
        raise ValueError("touchpoints: the log is empty, so there is no cutoff to learn personas at")
    data_only = tables.without_truth()
    F = FeaturePipeline().fit_transform(data_only, cutoff=at)
    F.index = F.index.astype(str)
    previous = getattr(system, "personas", None) if system is not None else previous_personas(model_path)
    model = fit_personas(F, previous, seed)
    report = persona_report(model, F, tables, at, seed)
    if report_path is not None:
        write_json(report_path, report)
    return report
