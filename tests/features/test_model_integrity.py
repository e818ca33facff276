"""Model files carry their SHA-256: a changed, truncated or foreign file is a clear ModelIntegrityError."""

from __future__ import annotations

import pickle

import pytest

from features.contract.errors import ModelIntegrityError
from features.models.churn import ChurnModel
from features.system import (
    CHECKSUM_SUFFIX,
    DecisionSystem,
    file_sha256,
    load_pickle_file,
    load_system_file,
    save_system,
)


def test_saved_system_loads_and_a_changed_byte_is_refused(tmp_path):
    target = save_system(DecisionSystem(None, ChurnModel(), metadata={"k": "v"}), tmp_path / "system")
    sidecar = target.with_name(target.name + CHECKSUM_SUFFIX)
    assert sidecar.read_text().split()[0] == file_sha256(target)
    assert load_system_file(tmp_path / "system").metadata == {"k": "v"}
    assert load_system_file(target, expected_sha256=file_sha256(target)).metadata == {"k": "v"}

    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="does not match the recorded"):
        load_system_file(tmp_path / "system")
    sidecar.unlink()  # no digest beside it: the registry's digest still catches the change
    with pytest.raises(ModelIntegrityError, match="models:/m/3: SHA-256"):
        from features.system import verify_sha256

        verify_sha256(target, "0" * 64, name="models:/m/3")


@pytest.mark.parametrize("content", [b"garbage\n", b"", pickle.dumps({"a": 1})[:-3]], ids=["text", "empty", "cut"])
def test_corrupt_pickles_are_integrity_errors(tmp_path, content):
    path = tmp_path / "model.pkl"
    path.write_bytes(content)
    with pytest.raises(ModelIntegrityError, match="corrupt, truncated or not a pickle"):
        load_pickle_file(path)
