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
    "features.builders": "features.builders.families",
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
MOVED_NAMES: dict[tuple[str, str], str] = {}


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
