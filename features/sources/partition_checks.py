"""Validating partitioned data folders: the contract per partition, and the checks that span partitions.

Each partition is a complete data folder, so the contract validation (:func:`validate_tables`) runs on each
partition on its own: one Dask task per partition with a ``distributed.Client``, one after the other in this
process without. What no single partition can see is checked by a reduction over what the partition checks
return (their customer ids and the ids their rows refer to that are not their own):

- a customer id in the customers of more than one partition is an error naming the ids and their parts
  (partitioning keeps all of a customer's rows in one partition; a duplicate split across partitions could
  not be merged as the flat validation merges duplicates);
- a touchpoint, outreach, label or truth row whose customer is in another partition's customers is an error
  saying where that customer is; a customer in no partition is the flat validation's "missing from the
  customers table".

The report is aggregated like the flat validation's: rows in and out per table, duplicates, warnings.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract.converters import _id_text, is_blank
from features.contract.errors import MAX_EXAMPLES, DataError, DataProblemsError
from features.contract.report import ValidationReport
from features.contract.schema import TABLES, Tables
from features.contract.validate import validate_tables
from features.sources.files import read_manifest
from features.sources.partitions import HASH_NAME, PART_TEMPLATE, partition_files, partition_of, read_part_frames

REFERRING: tuple[str, ...] = tuple(t for t in TABLES if t != "customers")


def part_name(part: int) -> str:
    return PART_TEMPLATE.format(part).removesuffix(".parquet")


@dataclass
class PartCheck:
    """What checking one partition found: its report (when valid) or its problems, its customer ids, and the ids
    its other tables refer to that are not its own (id -> rows, per table)."""

    part: int
    report: ValidationReport | None = None
    problems: list[DataError] = field(default_factory=list)
    ids: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))
    foreign: dict[str, pd.Series] = field(default_factory=dict)
    misplaced: int = 0
    tables: Tables | None = None

    def summary(self) -> PartCheck:
        """The same check without the ids and tables (what the client needs back from a worker)."""
        return PartCheck(self.part, self.report, self.problems, misplaced=self.misplaced)


@dataclass
class CrossCheck:
    """What the reduction over partitions found: ids in several partitions' customers, rows of another's."""

    shared: dict[str, list[int]] = field(default_factory=dict)  # id -> the parts holding it
    problems: list[DataError] = field(default_factory=list)


def check_part(folder: str | Path, part: int, count: int | None = None, *, keep: bool = False) -> PartCheck:
    """Validate partition ``part`` of a partitioned folder on its own (rows whose customer is not among its
    customers are set aside and returned as ``foreign``); ``keep`` returns the validated tables too."""
    check = PartCheck(part)
    source = f"{folder}/{part_name(part)}"
    try:
        raw = read_part_frames(folder, part)
        ids, foreign, raw = _set_aside_foreign(raw)
    except DataError as exc:
        check.problems = _problems(exc, part)
        return check
    check.ids, check.foreign = ids, foreign
    if count is not None and len(ids):
        check.misplaced = int((partition_of(ids, count) != part).sum())
    try:
        tables, report = validate_tables(raw, source=source)
    except DataError as exc:
        check.problems = _problems(exc, part)
        return check
    for table, counts in foreign.items():
        report.rows_in[table] = report.rows_in.get(table, 0) + int(counts.sum())
    check.report = report
    if keep:
        check.tables = tables
    return check


def _problems(exc: DataError, part: int) -> list[DataError]:
    found = exc.problems if isinstance(exc, DataProblemsError) else [exc]
    # the part goes into the table's name: a list of problems drops each problem's own source
    return [DataError(f"{part_name(part)}/{p.table}", p.column, p.problem, p.examples, p.count, allowed=p.allowed,
                      row=p.row) for p in found]


def _set_aside_foreign(raw: Tables) -> tuple[np.ndarray, dict[str, pd.Series], Tables]:
    """The part's customer ids as text, the ids of its other tables that are not among them (with row counts),
    and the tables without those rows."""
    cus_ids = _ids_text(raw.customers["customer_id"]) if "customer_id" in raw.customers.columns else pd.Series([])
    ids = pd.Index(cus_ids[~is_blank(cus_ids)]).unique()
    foreign: dict[str, pd.Series] = {}
    changes: dict[str, pd.DataFrame] = {}
    for table in REFERRING:
        df = getattr(raw, table)
        if df is None or "customer_id" not in df.columns:
            continue
        text = _ids_text(df["customer_id"])
        away = (~text.isin(ids) & ~is_blank(text)).to_numpy()
        if away.any():
            foreign[table] = text[away].value_counts(sort=False)
            changes[table] = df[~away].reset_index(drop=True)
    return ids.to_numpy(dtype=object), foreign, raw.with_(**changes) if changes else raw


def _ids_text(s: pd.Series) -> pd.Series:
    """Customer ids as the validation reads them (categoricals through their categories: fast)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = _id_text(pd.Series(s.cat.categories)).astype("str").to_numpy(dtype=object)
        codes = s.cat.codes.to_numpy()
        values = np.where(codes >= 0, np.append(cats, None)[codes], None)
        return pd.Series(values, dtype="str")
    return _id_text(s.reset_index(drop=True)).astype("str")


def cross_partitions(checks: list[PartCheck]) -> CrossCheck:
    """The reduction: ids found in several partitions' customers, and rows referring to another partition's
    customer (or to no customer at all)."""
    owners: dict[str, list[int]] = {}
    if checks:
        all_ids = np.concatenate([c.ids for c in checks]) if any(len(c.ids) for c in checks) else np.array([])
        parts = np.concatenate([np.full(len(c.ids), c.part) for c in checks]) if len(all_ids) else np.array([])
        frame = pd.DataFrame({"id": pd.Series(all_ids, dtype="str"), "part": parts})
        counts = frame["id"].value_counts()
        shared_ids = counts.index[counts > 1]
        if len(shared_ids):
            dup = frame[frame["id"].isin(shared_ids)]
            owners = {k: sorted(set(v)) for k, v in dup.groupby("id", sort=True)["part"]}
        owner = pd.Series(frame["part"].to_numpy(), index=pd.Index(frame["id"]))
        owner = owner[~owner.index.duplicated()]
    else:
        owner = pd.Series(dtype=np.int64)
    result = CrossCheck(shared={k: [int(p) for p in v] for k, v in owners.items()})
    if result.shared:
        shown = [f"{k!r} in {' and '.join(part_name(p) for p in v)}" for k, v in list(result.shared.items())[:5]]
        result.problems.append(DataError(
            "customers", "customer_id",
            f"{len(result.shared):,} customer id{'s' if len(result.shared) > 1 else ''} found in more than one "
            f"partition's customers ({'; '.join(shown)}); a partitioned folder holds each customer in exactly one "
            "partition (write it with engage partition, which keeps a customer's records together)"))
    for table in REFERRING:
        elsewhere: list[str] = []
        nowhere: list[str] = []
        rows_elsewhere = rows_nowhere = 0
        for c in checks:
            counts = c.foreign.get(table)
            if counts is None:
                continue
            where = owner.reindex(counts.index)
            known = where.notna().to_numpy()
            rows_elsewhere += int(counts[known].sum())
            rows_nowhere += int(counts[~known].sum())
            elsewhere += [f"{i!r} in {part_name(c.part)} belongs to {part_name(int(p))}"
                          for i, p in where[known].items()][: MAX_EXAMPLES - len(elsewhere)]
            nowhere += [f"{i!r} in {part_name(c.part)}" for i in counts.index[~known]][: MAX_EXAMPLES - len(nowhere)]
        if rows_elsewhere:
            result.problems.append(DataError(
                table, "customer_id",
                f"a customer of another partition ({'; '.join(elsewhere)}): all of a customer's rows belong in "
                "the partition holding the customer", count=rows_elsewhere))
        if rows_nowhere:
            result.problems.append(DataError(
                table, "customer_id", f"a customer id missing from the customers table ({'; '.join(nowhere)})",
                count=rows_nowhere))
    return result


def part_ids(folder: str | Path, part: int) -> PartCheck:
    """Only the id columns of partition ``part``: its customer ids and the foreign ids of its other tables (what
    :func:`cross_partitions` needs), without validating the rest: the Dask engine's workers validate each
    partition as they read it, so a run checks what spans partitions with this cheap pass first."""
    import pyarrow.parquet as pq

    files = partition_files(folder)
    frames = {table: pq.read_table(parts[part], columns=["customer_id"]).to_pandas()
              for table, parts in files.items()
              if "customer_id" in pq.read_schema(parts[part]).names}
    if "customers" not in frames:
        raise DataError(f"{part_name(part)}/customers", "customer_id", "required column missing",
                        source=str(folder))
    check = PartCheck(part)
    raw = Tables(customers=frames["customers"], touchpoints=frames.get("touchpoints", pd.DataFrame()),
                 **{t: frames.get(t) for t in REFERRING if t != "touchpoints"})
    check.ids, check.foreign, _ = _set_aside_foreign(raw)
    return check


def check_across_partitions(folder: str | Path, client=None) -> None:
    """Raise a DataError when a customer id is in several partitions' customers, or a row's customer is in
    another partition (or nowhere): the checks no single partition can make, from the id columns only."""
    count = len(partition_files(folder)["customers"])
    if client is None:
        checks = [part_ids(folder, p) for p in range(count)]
        cross = cross_partitions(checks)
    else:
        futures = client.map(part_ids, [str(Path(folder).resolve())] * count, range(count), pure=False)
        cross = client.submit(cross_partitions, futures, pure=False).result()
        del futures
    if cross.problems:
        problems = cross.problems
        error = problems[0] if len(problems) == 1 else DataProblemsError(problems)
        raise error.with_source(str(folder))


def validate_partitioned(folder: str | Path, client=None, *,
                         keep: bool = False) -> tuple[list[PartCheck], ValidationReport]:
    """Validate a partitioned data folder: each partition on its own (one Dask task each with ``client``), the
    checks spanning partitions as a reduction over them. Raises a DataError listing every problem found (the
    spanning ones first); returns the checks (with validated tables when ``keep``) and the aggregated report."""
    start = time.perf_counter()
    folder = Path(folder)
    files = partition_files(folder)
    count = len(files["customers"])
    manifest_count = _manifest_count(folder)
    hashed = count if manifest_count == count else None
    if client is None:
        checks = [check_part(folder, p, hashed, keep=keep) for p in range(count)]
        cross = cross_partitions(checks)
        summaries = checks if keep else [c.summary() for c in checks]
    else:
        where = str(folder.resolve())
        futures = client.map(check_part, [where] * count, range(count), [hashed] * count, keep=keep, pure=False)
        reduced = client.submit(cross_partitions, futures, pure=False)
        small = futures if keep else client.map(PartCheck.summary, futures, pure=False)
        summaries, cross = client.gather(small), reduced.result()
        del futures
    problems = cross.problems + [p for c in summaries for p in c.problems]
    if problems:
        error = problems[0] if len(problems) == 1 else DataProblemsError(problems[:50], truncated=len(problems) > 50)
        raise error.with_source(str(folder))
    report = aggregate_reports([c.report for c in summaries], source=str(folder))
    misplaced = sum(c.misplaced for c in summaries)
    if misplaced:
        report.warnings.append(
            f"{misplaced:,} customers are not in the partition the manifest's hash ({HASH_NAME}) gives them; each "
            "customer's rows are together, so the folder works, but engage partition would place them elsewhere")
    report.seconds = time.perf_counter() - start
    return summaries, report


def _manifest_count(folder: Path) -> int | None:
    entry = read_manifest(folder).get("partitioning")
    if isinstance(entry, dict) and entry.get("hash") == HASH_NAME and isinstance(entry.get("count"), int):
        return entry["count"]
    return None


def aggregate_reports(reports: list[ValidationReport | None], *, source: str) -> ValidationReport:
    """One report for the whole folder: counts summed, examples and warnings gathered (a warning every
    partition gives is listed once, with how many partitions gave it)."""
    out = ValidationReport(source=source)
    seen: Counter[str] = Counter()
    for r in reports:
        if r is None:
            continue
        for table, n in r.rows_in.items():
            out.rows_in[table] = out.rows_in.get(table, 0) + n
        for table, n in r.rows_out.items():
            out.rows_out[table] = out.rows_out.get(table, 0) + n
        out.duplicate_touchpoints_dropped += r.duplicate_touchpoints_dropped
        out.duplicate_customer_ids += r.duplicate_customer_ids
        out.duplicate_customer_records_merged += r.duplicate_customer_records_merged
        room = MAX_EXAMPLES - len(out.duplicate_customer_examples)
        out.duplicate_customer_examples += r.duplicate_customer_examples[:room]
        seen.update(r.warnings)
    out.warnings = [w if n == 1 else f"{w} (in each of {n} partitions)" for w, n in seen.items()]
    return out


def read_partitioned(folder: str | Path) -> Tables:
    """A partitioned folder validated (:func:`validate_partitioned`) and read as one set of tables: customers
    in partition order, event ids re-coded over all customers."""
    checks, report = validate_partitioned(folder, keep=True)
    parts = [c.tables for c in checks]
    customers = pd.concat([t.customers for t in parts], ignore_index=True)
    ids = pd.Index(customers["customer_id"])
    offsets = np.cumsum([0] + [len(t.customers) for t in parts])
    out: dict[str, pd.DataFrame | None] = {"customers": customers}
    for table in REFERRING:
        frames = [getattr(t, table) for t in parts]
        if all(f is None for f in frames):
            out[table] = None
            continue
        if table in ("touchpoints", "outreach"):
            codes = np.concatenate([f["customer_id"].cat.codes.to_numpy().astype(np.int64) + offsets[i]
                                    for i, f in enumerate(frames)])
            frame = pd.concat([f.assign(customer_id=0) for f in frames], ignore_index=True)
            frame["customer_id"] = pd.Categorical.from_codes(codes.astype(np.int32), categories=ids)
            out[table] = frame
        else:
            out[table] = pd.concat(frames, ignore_index=True)
    meta = dict(parts[0].meta)
    meta.pop("partition", None)
    meta["source"] = str(folder)
    meta["partitions"] = len(parts)
    meta["validation"] = report
    return Tables(**out, meta=meta)
