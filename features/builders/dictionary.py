"""The feature dictionary, generated from the builders' own metadata so it cannot drift from the code."""

from __future__ import annotations

import pandas as pd

from features.builders.pipeline import FeaturePipeline

COLUMNS: tuple[str, ...] = ("name", "family", "meaning", "seed_idea")


def feature_dictionary(pipeline: FeaturePipeline | None = None) -> pd.DataFrame:
    """One row per feature: ``name, family, meaning, seed_idea``.

    With a fitted pipeline the rows are exactly its output columns (static attributes included, with
    the categories it learned); without one, the default pipeline's behavioural features plus one
    pattern row for the static attributes, whose columns depend on the data.
    """
    if pipeline is not None and hasattr(pipeline, "builders_"):
        builders = pipeline.builders_
    else:
        builders = (pipeline or FeaturePipeline())._new_builders()
    rows = []
    for _, b in builders:
        for name, meaning in b.describe():
            rows.append({"name": name, "family": b.family, "meaning": meaning, "seed_idea": b.seed_idea})
    return pd.DataFrame(rows, columns=list(COLUMNS))
