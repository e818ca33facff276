"""Training at scale, option (a) of issue 14: the local trainers run unchanged on a customer sample sized by the
memory budget.

Membership is a stable hash: customer ``c`` is in the sample of seed ``s`` and fraction ``f`` when
``siphash(c, key(s)) / 2**64 < f``. The key differs from the partition hash's, so the sample is independent of
the partitioning; the same ids, seed and fraction give the same customers on every machine, whatever the
partition count; and samples of one seed are nested (a smaller fraction keeps a subset of a larger one's
customers), so a policy trained on its smaller sample sees only customers the churn model was trained on, as it
does on the local engine.

The sample's size comes from what one customer costs each trainer in peak memory (``FOOTPRINTS``), measured on
the local engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

UINT64_RANGE = float(2**64)


@dataclass(frozen=True)
class Footprint:
    """A trainer's peak memory as ``fixed_bytes + bytes_per_customer x customers`` (one year of history)."""

    fixed_bytes: int
    bytes_per_customer: int

    def customers_within(self, budget: int) -> int:
        """How many customers this trainer can hold within ``budget`` bytes (0 when the budget is too small)."""
        return max(0, (budget - self.fixed_bytes) // self.bytes_per_customer)


# Peak RSS of `/usr/bin/time -v engage train churn|policy --data W` on the local engine (main at 4184b8d, 2-core
# 24 GB machine) on simulated worlds of one year, seed 7, about 110 touchpoints per customer:
#   churn:  5,000 customers 801 MB, 20,000 customers 1,362 MB (MB = 1e6 bytes): slope 37.4 kB/customer
#   policy: 300 customers 577 MB (300 days, in engage bench scale), 5,000 customers 1,184 MB: slope 129 kB/customer
# The fixed part is the intercept. A history much denser than that costs more per customer: leave headroom in
# --memory-limit or give --sample-customers. docs/scale.md "Training at scale" has the figures.
# On --engine dask the trainer's process also holds its Dask client and the raw sampled rows gathered before
# validation: `engage bench scale` measured churn on all 20,000 customers of such a world at 1,586 MB, 224 MB
# above the local figure, so the fixed parts carry DASK_OVERHEAD_BYTES more.
DASK_OVERHEAD_BYTES = 250_000_000
FOOTPRINTS: dict[str, Footprint] = {
    "churn": Footprint(fixed_bytes=614_000_000 + DASK_OVERHEAD_BYTES, bytes_per_customer=37_400),
    "policy": Footprint(fixed_bytes=538_000_000 + DASK_OVERHEAD_BYTES, bytes_per_customer=129_000),
}


def sample_key(seed: int) -> str:
    """The 16-character SipHash key of a sample seed (pandas' default key is the partition hash's)."""
    if not 0 <= seed < 10**12:
        raise ValueError(f"--sample-seed {seed}: use 0 .. 999999999999")
    return f"smpl{seed:012d}"


def sample_position(ids: pd.Series | pd.Index | np.ndarray, seed: int) -> np.ndarray:
    """Each customer's position in [0, 1) for ``seed``: a customer is sampled when it is below the fraction."""
    values = pd.Series(np.asarray(ids, dtype=object)).astype("str")
    hashed = pd.util.hash_pandas_object(values, index=False, hash_key=sample_key(seed)).to_numpy()
    return hashed.astype(np.float64) / UINT64_RANGE


def in_sample(ids: pd.Series | pd.Index | np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Whether each customer id is in the sample of ``fraction`` and ``seed`` (a boolean array)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"sample fraction {fraction}: must be in (0, 1]")
    if fraction >= 1.0:
        return np.ones(len(ids), dtype=bool)
    return sample_position(ids, seed) < fraction


def sample_fraction(customers: int, trainer: str, budget: int, sample_customers: int | None = None) -> float:
    """The fraction of ``customers`` to train on: ``sample_customers`` when given, else as many as the trainer's
    footprint allows within ``budget`` bytes; at most 1. A budget below the fixed cost is an error saying so."""
    if customers < 1:
        raise ValueError("the data folder holds no customers")
    if sample_customers is not None:
        if sample_customers < 1:
            raise ValueError(f"--sample-customers {sample_customers}: must be at least 1")
        return min(1.0, sample_customers / customers)
    footprint = FOOTPRINTS[trainer]
    fits = footprint.customers_within(budget)
    if fits < 1:
        raise ValueError(f"a memory budget of {budget / 1e9:.2f} GB is below what `engage train {trainer}` needs "
                         f"before any data ({footprint.fixed_bytes / 1e9:.2f} GB): raise --memory-limit or give "
                         "--sample-customers")
    return min(1.0, fits / customers)
