"""Where classes pickled by older versions of engage live now, and an unpickler that follows the moves.

Registered decision systems are pickles, and a pickle names each class by its module path. When the
package layout changed (flat ``features/*.py`` → subpackages by stage), every such path moved. Rather than
asking users to re-register every model, loading maps the old paths to the new ones: first by exact
``(module, name)`` (a class that left a module that was split), then by module (a module moved whole).
"""

from __future__ import annotations

import pickle
from typing import IO, Any

# Old module → its new home, for modules that moved whole.
MOVED_MODULES: dict[str, str] = {
    "features.policy": "features.decision.nba",
    "features.ope": "features.decision.ope",
    "features.models": "features.models.churn",
    "features.uplift": "features.models.uplift",
    "features.events": "features.builders.events",
    "features.builders_base": "features.builders.base",
    "features.builders_dynamics": "features.builders.dynamics",
    "features.builders_static": "features.builders.static",
    "features.pipeline": "features.builders.pipeline",
    "features.dictionary": "features.builders.dictionary",
    "features.io": "features.sources.io",
    "features.importers": "features.sources.importers.registry",
    "features.simulate": "features.sources.simulation.world",
    "features.simulate_truth": "features.sources.simulation.truth",
    "features.schema": "features.contract.schema",
    "features.validate": "features.contract.validate",
    "features.catalogue": "features.contract.catalogue",
}

# (old module, name) → new module, for names that left a module that was split.
MOVED_NAMES: dict[tuple[str, str], str] = {
    # features/builders.py held six feature families and their shared aggregates: one module per family now.
    ("features.builders", "EngagementBuilder"): "features.builders.engagement",
    ("features.builders", "_channel_lut"): "features.builders.engagement",
    ("features.builders", "_web_rows"): "features.builders.engagement",
    ("features.builders", "ServiceSocialBuilder"): "features.builders.service_social",
    ("features.builders", "IntentBuilder"): "features.builders.intent",
    ("features.builders", "LadderBuilder"): "features.builders.ladders",
    ("features.builders", "ValueBuilder"): "features.builders.value",
    ("features.builders", "ChannelBuilder"): "features.builders.channels",
    ("features.builders", "active_counts"): "features.builders.activity",
    ("features.builders", "purchase_times"): "features.builders.activity",
    ("features.builders", "active_non_purchase_idx"): "features.builders.activity",
    ("features.builders", "exit_counts"): "features.builders.activity",
    ("features.builders", "_moment_lut"): "features.builders.moments",
    ("features.builders", "moment_codes"): "features.builders.moments",
    ("features.builders", "moment_idx"): "features.builders.moments",
    ("features.builders", "moment_counts"): "features.builders.moments",
    ("features.builders", "product_revisits"): "features.builders.moments",
    ("features.builders", "cart_since_purchase"): "features.builders.moments",
    # features/events.py: EventArrays stayed in features.builders.events; the block source, the vocabulary
    # codes and the column coding left it (its _Column is CodedColumn now; never pickled: only EventSource holds one).
    ("features.events", "EventSource"): "features.builders.event_source",
    ("features.events", "event_arrays"): "features.builders.event_source",
    ("features.events", "to_cutoff_ns"): "features.builders.event_source",
    ("features.events", "_ts_ns"): "features.builders.event_source",
    ("features.events", "_is_ordered"): "features.builders.event_source",
    ("features.events", "_bool_values"): "features.builders.event_source",
    ("features.events", "_customer_codes"): "features.builders.event_source",
    ("features.events", "kind_dir_lut"): "features.builders.vocab_codes",
    ("features.events", "is_price_offer"): "features.builders.vocab_codes",
    ("features.events", "_index_in"): "features.builders.column_coding",
    # The per-customer log-linear rate fit left the dynamics family for its own module.
    ("features.builders_dynamics", "loglinear_rate"): "features.builders.loglinear",
    ("features.builders_dynamics", "_dyadic_grid"): "features.builders.loglinear",
    ("features.builders_dynamics", "_mean_position"): "features.builders.loglinear",
    # the simulator's settings left its world module
    ("features.simulate", "SimConfig"): "features.sources.simulation.config",
    # the validation errors and report left the validate module
    ("features.validate", "DataError"): "features.contract.errors",
    ("features.validate", "_rebuild_data_error"): "features.contract.errors",
    ("features.validate", "ValidationReport"): "features.contract.report",
    ("features.uplift", "ValueModel"): "features.models.value",
    ("features.policy", "PolicyConfig"): "features.decision.config",
    ("features.policy", "CapConfig"): "features.decision.config",
    ("features.policy", "LimitConfig"): "features.decision.config",
    ("features.policy", "DefenseConfig"): "features.decision.config",
    ("features.policy", "ValueConfig"): "features.decision.config",
}


def current_location(module: str, name: str) -> tuple[str, str]:
    """The module a class pickled as ``module.name`` is found in today."""
    moved = MOVED_NAMES.get((module, name)) or MOVED_MODULES.get(module)
    return (moved or module), name


class RenamingUnpickler(pickle.Unpickler):
    """A standard unpickler that resolves class paths of earlier layouts (see :data:`MOVED_NAMES`)."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(*current_location(module, name))


def load_pickle(fh: IO[bytes]) -> Any:
    """``pickle.load`` that follows the layout moves (only for trusted files, like any unpickling)."""
    return RenamingUnpickler(fh).load()
