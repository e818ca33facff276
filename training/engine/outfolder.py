"""A partitioned output (a folder of part files) written as one result: staged, then renamed into place.

The Dask engine's workers write their part files into a hidden staging folder beside the target (on the same
file system, which every worker must see); once every part is there, the client renames the folder into
place, with any files written alongside it (the defense list) published together. A failure or a kill leaves
the previous output as it was and never half a result: at worst a hidden ``.NAME.*.tmp`` folder to remove.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from features.sources.outputs import check_outputs, write_outputs

PART_TEMPLATE = "part-{:05d}.parquet"


def check_out_folder(out: str | Path, option: str, *, overwrite: bool) -> Path:
    """Check an output folder before any work: a file in the way, or an existing folder without
    ``overwrite``, is refused naming ``option``."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file; the Dask engine writes a folder of part files there")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{option} {path} exists; pass --overwrite to replace it")
    anchor = path.parent
    while not anchor.exists() and anchor != anchor.parent:
        anchor = anchor.parent
    if not anchor.is_dir() or not os.access(anchor, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: the folder {anchor} is not writable")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """A new hidden folder beside ``out`` for the parts; removed on the way out unless it was published."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes an owner-only folder; workers may run as others
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish(staged: Path, out: Path, files: Mapping[Path, bytes] | None = None, *, overwrite: bool) -> None:
    """Rename ``staged`` onto ``out`` and write ``files`` (checked beforehand with ``check_outputs``) with it:
    all of them, or on any failure none (the previous folder and files come back)."""
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} appeared meanwhile; pass --overwrite to replace it")
    old = None
    if out.exists():
        old = staged.with_name(staged.name + ".old")
        out.rename(old)
    renamed = False
    try:
        staged.rename(out)
        renamed = True
        if files:
            write_outputs(files, overwrite=overwrite)
    except BaseException:
        if renamed:
            out.rename(staged)  # back where it was staged, removed by staged_folder
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_files(files: list[tuple[Path, str]], *, overwrite: bool) -> None:
    """Check the single files written beside a folder (``(path, option)``), as ``engage score`` does."""
    if files:
        check_outputs(files, overwrite=overwrite)
