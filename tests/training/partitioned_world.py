"""A simulated world written as a partitioned data folder, for the tests of training at scale.

Kept apart so that it can give way to ``features.sources`` writing partitioned folders itself (``engage
partition``); until then the stop-gap of ``engage bench scale`` writes it.
"""

from __future__ import annotations

from training.bench.scale_partition import write_partitioned_world

__all__ = ["write_partitioned_world"]
