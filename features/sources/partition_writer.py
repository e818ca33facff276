"""Writing partitioned data folders: validated chunks of whole customers in, one Parquet file per partition out.

:class:`PartitionedWriter` takes the data a chunk of customers at a time (a whole validated data folder, a
chunk of a simulated world, one partition of another partitioned folder), splits every table by the
customer's partition (:func:`features.sources.partitions.partition_of`) and spills each chunk's share of a
partition to a small piece file. :meth:`PartitionedWriter.finish` then combines the pieces of each partition,
in the order they were added, into its part file, writes the manifest and renames the folder into place. Peak
memory is one chunk plus one partition, and the bytes depend only on the customers and their order, never on
how they were chunked: the whole world added at once, or the same world a block at a time, gives the same
files.

Inside a part, rows keep the validated order (customers in the order added; touchpoints and outreach by
customer then time; labels and truth by customer, a customer's rows in their order), and the id columns of the
event tables are categoricals over the part's customers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract.schema import TABLES, Tables
from features.contract.validate import validate_tables
from features.sources.io import make_parents, manifest_text, parquet_bytes, remove_empty, replace_folder, umask
from features.sources.partitions import MANIFEST, PART_TEMPLATE, partition_of, partitioning

_PIECES = ".pieces"
EVENT_TABLES: tuple[str, ...] = ("touchpoints", "outreach")


class PartitionedWriter:
    """Write a partitioned data folder from validated chunks of whole customers (see the module docstring).

    Use as a context manager: leaving the block without :meth:`finish` (an error) removes everything written.
    """

    def __init__(self, out: str | Path, count: int, *, overwrite: bool = False) -> None:
        if count < 1:
            raise ValueError(f"--partitions must be at least 1, got {count}")
        target = Path(out)
        if target.exists() and not target.is_dir():
            raise FileExistsError(f"{target} exists and is not a folder")
        if target.is_dir() and any(target.iterdir()) and not overwrite:
            raise FileExistsError(f"{target} exists and is not empty (use --overwrite to replace it)")
        self.target, self.count = target, count
        self._made = make_parents(target.parent)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        os.chmod(self.tmp, 0o777 & ~umask())  # mkdtemp makes an owner-only folder
        self.chunks = 0
        self.tables: tuple[str, ...] | None = None
        self.empty: dict[str, pd.DataFrame] = {}  # each table's columns and dtypes, for empty partitions
        self.rows: dict[str, int] = {}
        self.finished = False

    def __enter__(self) -> PartitionedWriter:
        return self

    def __exit__(self, *exc) -> None:
        if not self.finished:
            self.discard()

    def discard(self) -> None:
        """Remove everything written so far (the target folder is left as it was)."""
        shutil.rmtree(self.tmp, ignore_errors=True)
        remove_empty(self._made)

    def add(self, tables: Tables) -> None:
        """Add a chunk of whole customers (validated: the event tables' ids are codes over its customers)."""
        present = tuple(t for t in TABLES if getattr(tables, t) is not None)
        if self.tables is None:
            self.tables = present
            self.empty = {t: _empty_like(getattr(tables, t)) for t in present}
        elif present != self.tables:
            raise ValueError(f"every chunk must hold the same tables: the first held {', '.join(self.tables)}, "
                             f"chunk {self.chunks + 1} holds {', '.join(present)}")
        for part, piece in split_by_partition(tables, self.count).items():
            for table, frame in piece.items():
                path = self.tmp / _PIECES / table / PART_TEMPLATE.format(part) / f"chunk-{self.chunks:06d}.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                frame.to_parquet(path, engine="pyarrow", compression="zstd", index=False)
        for t in present:
            self.rows[t] = self.rows.get(t, 0) + len(getattr(tables, t))
        self.chunks += 1

    def finish(self, manifest: dict | None = None) -> dict[str, int]:
        """Combine the pieces into part files, write the manifest (plus ``partitioning``), move the folder into
        place (replacing the old one only now); returns the rows written per table."""
        if self.tables is None:
            raise ValueError("nothing to write: no chunk of customers was added")
        pieces = self.tmp / _PIECES
        for part in range(self.count):
            frames = {t: _read_pieces(pieces / t / PART_TEMPLATE.format(part), self.empty[t]) for t in self.tables}
            for table, frame in combine_pieces(frames).items():
                path = self.tmp / table / PART_TEMPLATE.format(part)
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(parquet_bytes(frame))
            for t in self.tables:
                shutil.rmtree(pieces / t / PART_TEMPLATE.format(part), ignore_errors=True)
        shutil.rmtree(pieces, ignore_errors=True)
        full = {**(manifest or {}), "partitioning": partitioning(self.count)}
        (self.tmp / MANIFEST).write_text(manifest_text(full))
        replace_folder(self.tmp, self.target)
        self.finished = True
        return dict(self.rows)


def write_partitioned(tables: Tables, out: str | Path, count: int, *, overwrite: bool = False) -> dict[str, int]:
    """Validate ``tables`` and write them as a partitioned data folder of ``count`` partitions (atomically; a
    non-empty ``out`` is refused unless ``overwrite``). The manifest is the tables' manifest plus
    ``"partitioning"``. Returns the rows written per table."""
    valid, _ = validate_tables(tables, source="tables to write")
    with PartitionedWriter(out, count, overwrite=overwrite) as writer:
        writer.add(valid)
        return writer.finish(tables.meta.get("manifest"))


def split_by_partition(tables: Tables, count: int) -> dict[int, dict[str, pd.DataFrame]]:
    """Each partition's share of validated ``tables``: customers and event rows in their order, labels and truth in
    customer order (a customer's rows in theirs); event ids re-coded over the share's customers. Partitions
    without customers are left out."""
    cus = tables.customers
    ids = pd.Index(cus["customer_id"].astype("str"))
    part_of_customer = partition_of(ids, count)
    order = np.argsort(part_of_customer, kind="stable")
    parts, starts = np.unique(part_of_customer[order], return_index=True)
    bounds = dict(zip(parts.tolist(), np.append(starts[1:], len(order)).tolist(), strict=True))
    out: dict[int, dict[str, pd.DataFrame]] = {}
    rows_of = {t: _rows_by_part(getattr(tables, t), ids, part_of_customer, count)
               for t in TABLES if t != "customers" and getattr(tables, t) is not None}
    for part, start in zip(parts.tolist(), starts.tolist(), strict=True):
        members = order[start:bounds[part]]
        local = np.full(len(ids) + 1, -1, np.int64)  # index -1 (a missing code) stays -1
        local[members] = np.arange(len(members))
        piece = {"customers": cus.take(members).reset_index(drop=True)}
        piece_ids = ids[members]
        for table, (row_order, row_bounds) in rows_of.items():
            frame = getattr(tables, table).take(row_order[row_bounds[part]:row_bounds[part + 1]])
            frame = frame.reset_index(drop=True)
            if table in EVENT_TABLES:
                codes = local[frame["customer_id"].cat.codes.to_numpy()]
                frame["customer_id"] = pd.Categorical.from_codes(codes.astype(np.int32), categories=piece_ids)
            piece[table] = frame
        out[part] = piece
    return out


def _rows_by_part(df: pd.DataFrame, ids: pd.Index, part_of_customer: np.ndarray,
                  count: int) -> tuple[np.ndarray, np.ndarray]:
    """A stable order of ``df``'s rows by partition, and where each partition's rows start (``count + 1``)."""
    col = df["customer_id"]
    is_event = isinstance(col.dtype, pd.CategoricalDtype) and col.cat.categories.equals(ids)
    pos = col.cat.codes.to_numpy() if is_event else ids.get_indexer(pd.Index(col.astype("str")))
    if (pos < 0).any():
        raise ValueError("split_by_partition: rows whose customer is not in customers (validate the tables first)")
    part = part_of_customer[pos]
    # event tables are in customer order already; labels and truth are put in it (a customer's rows keep theirs),
    # so a part's bytes do not depend on how its customers were chunked
    order = np.argsort(part, kind="stable") if is_event else np.lexsort((pos, part))
    return order, np.searchsorted(part[order], np.arange(count + 1), side="left")


def combine_pieces(frames: dict[str, list[pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """One partition's tables from its pieces (in the order added): concatenated, event ids re-coded over the
    partition's customers."""
    customers = _concat(frames["customers"])
    ids = pd.Index(customers["customer_id"].astype("str"))
    out = {"customers": customers}
    for table, pieces in frames.items():
        if table == "customers":
            continue
        if table in EVENT_TABLES:
            offsets = np.cumsum([0] + [len(p) for p in frames["customers"]])
            codes = np.concatenate([p["customer_id"].cat.codes.to_numpy().astype(np.int64) + offsets[i]
                                    for i, p in enumerate(pieces)] or [np.array([], np.int64)])
            frame = _concat([p.assign(customer_id=0) for p in pieces])
            frame["customer_id"] = pd.Categorical.from_codes(codes.astype(np.int32), categories=ids)
            out[table] = frame[list(pieces[0].columns)]
        else:
            out[table] = _concat(pieces)
    return out


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    return pd.concat(frames, ignore_index=True)


def _empty_like(df: pd.DataFrame) -> pd.DataFrame:
    """No rows, the same columns and dtypes (an id categorical with no categories)."""
    empty = df.iloc[:0].reset_index(drop=True)
    if isinstance(empty["customer_id"].dtype, pd.CategoricalDtype):
        empty["customer_id"] = pd.Categorical.from_codes(np.array([], np.int32),
                                                         categories=pd.Index([], dtype="str"))
    return empty


def _read_pieces(folder: Path, empty: pd.DataFrame) -> list[pd.DataFrame]:
    files = sorted(folder.glob("chunk-*.parquet")) if folder.is_dir() else []
    return [pd.read_parquet(f, engine="pyarrow") for f in files] or [empty]
