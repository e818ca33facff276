"""A partitioned data folder as the Dask engine reads it: one validated partition per task, and the cutoff
chosen over all partitions by the rule the local engine applies to the whole folder.

Each partition is a complete small data folder (a customer's rows are all in one part number), so a worker
reads and validates its partition alone (:func:`read_part`). The cutoff rule
(:func:`features.contract.cutoffs.scoring_cutoff`) looks at the manifest, then the labels' cutoff column,
then the end of the touchpoint log: what it needs from the partitions is a few values each
(:class:`CutoffEvidence`), reduced on the client into a small stand-in of the whole folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.contract.cutoffs import CutoffChoice, scoring_cutoff
from features.contract.schema import Tables
from features.contract.validate import validate_tables
from features.sources.io import read_manifest
from features.sources.partitions import is_partitioned, partition_files, read_part_frames


def require_partitioned(data: str | Path, option: str = "--data") -> int:
    """The partition count of ``data``; a flat data folder (one file per table) is refused with the command
    that partitions it: the Dask engine never loads a whole folder into one process, and partitioning in
    memory would have to."""
    folder = Path(data)
    if not folder.exists():
        raise FileNotFoundError(f"{option} {folder}: data folder does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"{option} {folder} is not a folder")
    if not is_partitioned(folder):
        raise ValueError(
            f"{option} {folder} is not a partitioned data folder (its tables are single files); the Dask engine "
            f"works partition by partition: write one first with engage partition --data {folder} "
            f"--out {folder}.parts --partitions N (or use --engine local)")
    return len(partition_files(folder)["customers"])


def read_part(data: str | Path, part: int) -> Tables:
    """Partition ``part`` of a partitioned folder, read and validated on its own (truth left out: nothing
    the engine computes may see it)."""
    raw = read_part_frames(data, part)
    tables, _ = validate_tables(raw.without_truth(), source=f"{data} (partition {part})")
    return tables


@dataclass(frozen=True)
class CutoffEvidence:
    """What one partition tells the cutoff rule: its labels' distinct cutoffs (None: no cutoff column),
    whether it has labels at all, and its latest touchpoint."""

    label_cutoffs: list[pd.Timestamp] | None
    labelled: bool
    last_touch: pd.Timestamp | None


def part_evidence(data: str | Path, part: int) -> CutoffEvidence:
    """The cutoff evidence of one partition (a worker task)."""
    tables = read_part(data, part)
    labels = tables.labels
    cutoffs = None
    if labels is not None and "cutoff" in labels:
        cutoffs = list(pd.to_datetime(labels["cutoff"], utc=True).dropna().unique())
    ts = tables.touchpoints["ts"]
    last = ts.max() if len(ts) and ts.notna().any() else None
    return CutoffEvidence(cutoffs, labels is not None and len(labels) > 0, last)


def needs_evidence(data: str | Path, given) -> bool:
    """Whether the cutoff rule must look into the partitions (no cutoff given, none in the manifest)."""
    return given is None and not (read_manifest(data) or {}).get("cutoff")


def reduce_cutoff(data: str | Path, given, evidence: list[CutoffEvidence]) -> CutoffChoice:
    """The cutoff :func:`scoring_cutoff` picks for the whole folder, from the manifest and each partition's
    evidence: the same rule on a stand-in holding exactly the values the rule reads."""
    manifest = read_manifest(data)
    meta = {"manifest": manifest} if manifest else {}
    lasts = [e.last_touch for e in evidence if e.last_touch is not None]
    touchpoints = pd.DataFrame({"ts": pd.to_datetime(pd.Series([max(lasts)] if lasts else [], dtype=object),
                                                      utc=True)})
    labels = None
    if any(e.labelled or e.label_cutoffs for e in evidence):
        with_column = [e for e in evidence if e.label_cutoffs is not None]
        if with_column:
            values = sorted({c for e in with_column for c in e.label_cutoffs})
            labels = pd.DataFrame({"cutoff": pd.to_datetime(pd.Series(values, dtype=object), utc=True)})
            if labels.empty:  # a cutoff column with no values: still labels
                labels = pd.DataFrame({"cutoff": pd.Series([pd.NaT], dtype="datetime64[ns, UTC]")})
        else:
            labels = pd.DataFrame({"customer_id": ["?"]})
    stand_in = Tables(customers=pd.DataFrame({"customer_id": []}), touchpoints=touchpoints, labels=labels, meta=meta)
    return scoring_cutoff(stand_in, given)


def partitioned_cutoff(client, data: str | Path, given) -> CutoffChoice:
    """The cutoff for a partitioned folder: ``given``, the manifest's, else from the partitions (read on the
    cluster, only when needed)."""
    if not needs_evidence(data, given):
        return reduce_cutoff(data, given, [])
    count = require_partitioned(data)
    futures = client.map(part_evidence, [str(data)] * count, range(count), pure=False)
    return reduce_cutoff(data, given, client.gather(futures))
