"""The feature dictionary, generated from the builders' own metadata so it cannot drift from the code."""

from __future__ import annotations

import pandas as pd

from features.builders.pipeline import FeaturePipeline

COLUMNS: tuple[str, ...] = ("name", "family", "meaning", "seed_idea", "attribute", "category")


def attribute_origins(pipeline: FeaturePipeline) -> dict[str, tuple[str, str, object]]:
    """Columns made from customer attributes -> ``(attribute, role, detail)`` (see
    :meth:`~features.builders.static.StaticAttributesBuilder.origins`); empty before fitting."""
    if not hasattr(pipeline, "builders_"):
        return {}
    out: dict[str, tuple[str, str, object]] = {}
    for _, b in pipeline.builders_:
        origins = getattr(b, "origins", None)
        if callable(origins):
            out.update(origins())
    return out


def feature_dictionary(pipeline: FeaturePipeline | None = None) -> pd.DataFrame:
    """One row per feature: ``name, family, meaning, seed_idea, attribute, category``.

    With a fitted pipeline the rows are exactly its output columns (static attributes included, with
    the categories it learned); without one, the default pipeline's behavioural features plus one
    pattern row for the static attributes, whose columns depend on the data. ``attribute`` is the
    customer attribute a column comes from and ``category`` the original category value of a one-hot
    column, exactly as in the data (column names are made safe, see :mod:`features.builders.names`); both
    are empty for behavioural features.
    """
    if pipeline is not None and hasattr(pipeline, "builders_"):
        builders = pipeline.builders_
    else:
        builders = (pipeline or FeaturePipeline())._new_builders()
    origins = attribute_origins(pipeline) if pipeline is not None else {}
    rows = []
    for _, b in builders:
        for name, meaning in b.describe():
            attribute, role, detail = origins.get(name, (None, None, None))
            rows.append(
                {
                    "name": name,
                    "family": b.family,
                    "meaning": meaning,
                    "seed_idea": b.seed_idea,
                    "attribute": attribute,
                    "category": None if role != "category" else str(detail),
                }
            )
    return pd.DataFrame(rows, columns=list(COLUMNS))
