"""Which implementation builds the shared event aggregates: the compiled kernel or the numpy reference.

The compiled kernel (:mod:`features.builders.kernel`) is used when Numba is installed, unless the environment
variable ``ENGAGE_FEATURE_KERNEL`` is ``numpy``: then every aggregate takes the numpy path, which stays the
reference the kernel is tested against. The choice is read once per :class:`EventSource` (per transform), so a
process can compare both paths.
"""

from __future__ import annotations

import importlib.util
import os

KERNEL_ENV = "ENGAGE_FEATURE_KERNEL"
CHOICES = ("numba", "numpy")


def numba_available() -> bool:
    """Whether Numba can be imported in this environment."""
    return importlib.util.find_spec("numba") is not None


def kernel_requested() -> bool:
    """``True`` unless ``ENGAGE_FEATURE_KERNEL=numpy``; any other value than the two choices is an error."""
    value = os.environ.get(KERNEL_ENV, "numba").strip().lower() or "numba"
    if value not in CHOICES:
        raise ValueError(f"{KERNEL_ENV}={value!r}: use one of {list(CHOICES)}")
    return value == "numba"


def use_kernel() -> bool:
    """Whether feature blocks use the compiled kernel (requested and Numba installed)."""
    return kernel_requested() and numba_available()


def feature_path_name() -> str:
    """``"numba"`` or ``"numpy"``: the path :func:`use_kernel` selects now."""
    return "numba" if use_kernel() else "numpy"
