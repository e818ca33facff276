"""Output files a command writes together: checked before any work, then published all at once or not at all.

``engage score`` writes the scores and the defense list, ``engage features`` the feature table and its
dictionary. Each set is one result: :func:`check_outputs` refuses, before the (long) work starts, every
output that could not be written (a folder in the way, a file where a folder must be, an unwritable
folder, two options naming one file) and every existing file unless ``overwrite``; :func:`write_outputs`
stages each file as a temporary file beside its target and only then renames them all into place (with
the previous files kept until every rename succeeded), so a failure or a kill leaves the old files as they
were and never half a result.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

FORMATS: tuple[str, ...] = (".parquet", ".csv", ".csv.gz")


def _first_existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_outputs(outputs: Sequence[tuple[str | Path, str]], *, overwrite: bool) -> list[Path]:
    """Check output files (``(path, option naming it)`` pairs) before any work; returns the paths.

    Bad names and places are a ``ValueError`` naming the option; an existing file without ``overwrite`` a
    ``FileExistsError``.
    """
    seen: dict[Path, str] = {}
    paths = []
    for raw, option in outputs:
        path = Path(raw)
        if not path.name.endswith(FORMATS):
            raise ValueError(f"{option} {path}: use a {', '.join(FORMATS)} file name")
        key = path.resolve()
        if key in seen:
            raise ValueError(f"{seen[key]} and {option} name the same file {path}; give each its own file")
        seen[key] = option
        if path.is_dir():
            raise ValueError(f"{option} {path} is a folder; give a file name inside it")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{option} {path} exists; pass --overwrite to replace it")
        anchor = _first_existing(path.parent)
        if not anchor.is_dir():
            raise ValueError(f"{option} {path}: {anchor} is a file, so the folder for {path.name} cannot be made")
        if not os.access(anchor, os.W_OK | os.X_OK):
            raise ValueError(f"{option} {path}: the folder {anchor} is not writable")
        paths.append(path)
    return paths


def _stage(target: Path, data: bytes) -> Path:
    """``data`` in a new temporary file beside ``target`` (same file system, so the rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes owner-only files
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(staged: dict[Path, Path]) -> None:
    """Rename every staged file onto its target; on a failure, put back what the earlier renames replaced."""
    backups: dict[Path, Path] = {}
    done: list[Path] = []
    try:
        for target, tmp in staged.items():
            if target.exists():
                backups[target] = tmp.with_name(tmp.name + ".old")
                os.link(target, backups[target])  # the previous file keeps a name until every rename succeeded
            os.replace(tmp, target)
            done.append(target)
    except BaseException:
        for target in done:
            with contextlib.suppress(OSError):
                if target in backups:
                    os.replace(backups[target], target)
                else:
                    target.unlink()
        raise
    finally:
        for backup in backups.values():
            with contextlib.suppress(FileNotFoundError):
                backup.unlink()


def write_outputs(payloads: Mapping[str | Path, bytes], *, overwrite: bool) -> None:
    """Write every ``{path: bytes}`` together: staged beside the targets, then renamed into place.

    ``overwrite`` is checked again at publication time (a file may have appeared since the check).
    """
    staged: dict[Path, Path] = {}
    try:
        for raw, data in payloads.items():
            staged[Path(raw)] = _stage(Path(raw), data)
        if not overwrite:
            taken = [str(t) for t in staged if t.exists()]
            if taken:
                raise FileExistsError(f"{', '.join(taken)} appeared meanwhile; pass --overwrite to replace it")
        _publish(staged)
    finally:
        for tmp in staged.values():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
