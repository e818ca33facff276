"""Output files written together: checked before any work, published all at once, old files kept on failure."""

from __future__ import annotations

import os

import pytest

from features.sources import outputs
from features.sources.outputs import check_outputs, write_outputs


def test_check_outputs_refuses_what_could_not_be_written(tmp_path):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "exists.csv").write_text("old")
    (tmp_path / "folder.csv").mkdir()
    cases = [
        ([(tmp_path / "s.xlsx", "--out")], ValueError, "--out .*use a .parquet"),
        ([(tmp_path / "s.csv", "--out"), (tmp_path / "s.csv", "--defense-out")], ValueError,
         "--out and --defense-out name the same file"),
        ([(tmp_path / "folder.csv", "--out")], ValueError, "is a folder"),
        ([(tmp_path / "a_file" / "d.csv", "--defense-out")], ValueError, "a_file is a file"),
        ([(tmp_path / "exists.csv", "--out")], FileExistsError, "exists; pass --overwrite"),
    ]
    for targets, error, message in cases:
        with pytest.raises(error, match=message):
            check_outputs(targets, overwrite=False)
    assert check_outputs([(tmp_path / "exists.csv", "--out"), (tmp_path / "new" / "d.csv", "-d")], overwrite=True)
    assert not (tmp_path / "new").exists()  # checking creates nothing


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_check_outputs_refuses_an_unwritable_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(ValueError, match="not writable"):
        check_outputs([(locked / "s.csv", "--out")], overwrite=False)


def test_outputs_are_published_together(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "sub" / "b.csv"
    write_outputs({a: b"1", b: b"2"}, overwrite=False)
    assert (a.read_bytes(), b.read_bytes()) == (b"1", b"2")
    with pytest.raises(FileExistsError):
        write_outputs({a: b"3"}, overwrite=False)
    assert a.read_bytes() == b"1"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.csv", "b.csv", "sub"]  # no temporary file left


def test_a_failing_second_file_leaves_the_first_as_it_was(tmp_path):
    a, blocked = tmp_path / "a.csv", tmp_path / "file"
    a.write_bytes(b"old")
    blocked.write_text("x")
    with pytest.raises(OSError):  # the second cannot even be staged: its folder is a file
        write_outputs({a: b"new", blocked / "b.csv": b"new"}, overwrite=True)
    assert a.read_bytes() == b"old"


def test_a_failing_rename_puts_back_the_files_already_replaced(tmp_path, monkeypatch):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    a.write_bytes(b"old a")
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 3 and str(dst).endswith("c.csv"):
            raise OSError("disk gone")
        return real(src, dst)

    monkeypatch.setattr(outputs.os, "replace", flaky)
    with pytest.raises(OSError, match="disk gone"):
        write_outputs({a: b"new a", b: b"new b", c: b"new c"}, overwrite=True)
    monkeypatch.undo()
    assert a.read_bytes() == b"old a" and not b.exists() and not c.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]
