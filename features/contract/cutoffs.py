"""Points in time: every timestamp the system compares is a UTC ``pd.Timestamp``, and every command that
evaluates or scores a data folder without an explicit cutoff picks it by one rule, defined here, and can say
which rule it used (:class:`CutoffChoice`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

from features.contract.schema import Tables

Fallback = Literal["end_of_log", "now", "none"]


def utc_timestamp(value) -> pd.Timestamp:
    """``value`` (text, datetime, Timestamp, numpy datetime) as a UTC Timestamp; naive values are read as UTC."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def end_of_log(tables: Tables) -> pd.Timestamp | None:
    """Midnight UTC after the last touchpoint: a cutoff that sees every event of the log (None when empty)."""
    ts = tables.touchpoints["ts"] if len(tables.touchpoints) else None
    if ts is None or ts.isna().all():
        return None
    return utc_timestamp(ts.max()).floor("D") + pd.Timedelta(days=1)


# The reference date of given labels that carry no date at all (a snapshot such as telco): only
# attributes matter there, and training and scoring must agree on it.
NOMINAL_CUTOFF = "2000-01-01"

# Where a chosen cutoff came from, in words (``CutoffChoice.source`` -> text).
SOURCES: dict[str, str] = {
    "given": "the cutoff given",
    "manifest": "the manifest's cutoff",
    "labels": "the labels' cutoff column",
    "labels_end_of_log": "the labels' reference date: the end of the touchpoint log (labels without a cutoff column)",
    "labels_nominal": f"the labels' reference date: the nominal {NOMINAL_CUTOFF} of labels without any date",
    "end_of_log": "the end of the touchpoint log",
    "now": "now (no cutoff given, no manifest cutoff, no labels)",
    "none": "no cutoff found",
}


@dataclass(frozen=True)
class CutoffChoice:
    """A cutoff and where it came from (a key of :data:`SOURCES`)."""

    at: pd.Timestamp | None
    source: str

    def describe(self) -> str:
        """``2024-06-30 00:00:00+00:00 (the manifest's cutoff)``."""
        return f"{self.at} ({SOURCES[self.source]})"


def choose_cutoff(tables: Tables, given=None, *, fallback: Fallback = "end_of_log") -> CutoffChoice:
    """The cutoff to evaluate or score ``tables`` at, and where it came from.

    In order: ``given``; the manifest's ``cutoff`` (simulated worlds record theirs); the ``labels`` table's
    ``cutoff`` column (one value); then ``fallback``: ``end_of_log`` (see :func:`end_of_log`), ``now``, or
    ``none`` (no cutoff: the caller decides).
    """
    if given is not None:
        return CutoffChoice(utc_timestamp(given), "given")
    manifest = tables.meta.get("manifest") or {}
    if manifest.get("cutoff"):
        return CutoffChoice(utc_timestamp(manifest["cutoff"]), "manifest")
    labels = tables.labels
    if labels is not None and "cutoff" in labels and labels["cutoff"].notna().any():
        cutoffs = pd.to_datetime(labels["cutoff"], utc=True).dropna().unique()
        if len(cutoffs) > 1:
            raise ValueError(f"labels.cutoff: {len(cutoffs)} different cutoffs; one per folder is supported")
        return CutoffChoice(utc_timestamp(cutoffs[0]), "labels")
    if fallback == "now":
        return CutoffChoice(pd.Timestamp.now(tz="UTC"), "now")
    if fallback == "end_of_log":
        end = end_of_log(tables)
        return CutoffChoice(end, "end_of_log" if end is not None else "none")
    return CutoffChoice(None, "none")


def evaluation_cutoff(tables: Tables, given=None, *, fallback: Fallback = "end_of_log") -> pd.Timestamp | None:
    """The cutoff to evaluate or score ``tables`` at (see :func:`choose_cutoff`, which also says why)."""
    return choose_cutoff(tables, given, fallback=fallback).at


def labels_cutoff(tables: Tables) -> CutoffChoice:
    """The date a folder's given ``labels`` refer to: as :func:`choose_cutoff`, then the end of the log, then
    :data:`NOMINAL_CUTOFF` (labels without any date). Training on given labels builds features there."""
    choice = choose_cutoff(tables, fallback="none")
    if choice.at is not None:
        return choice
    end = end_of_log(tables)
    if end is not None:
        return CutoffChoice(end, "labels_end_of_log")
    return CutoffChoice(utc_timestamp(NOMINAL_CUTOFF), "labels_nominal")


def scoring_cutoff(tables: Tables, given=None) -> CutoffChoice:
    """The cutoff to score a data folder at: ``given``, the manifest's, the labels' (see :func:`labels_cutoff`:
    a labelled folder is scored where its labels and a model trained on them stand), else now."""
    choice = choose_cutoff(tables, given, fallback="none")
    if choice.at is not None:
        return choice
    if tables.labels is not None and len(tables.labels):
        return labels_cutoff(tables)
    return CutoffChoice(pd.Timestamp.now(tz="UTC"), "now")
