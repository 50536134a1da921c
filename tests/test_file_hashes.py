"""The four file hashes (issue 23: hashlib.file_digest instead of chunked loops) are the SHA-256 of the
whole file, across chunk boundaries; the text encoder's short id of a large file stays size + first MiB."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from mmindex.extract.reader import _hash_file
from mmindex.learn.features import source_key
from mmindex.models.weights import file_digest
from mmindex.text.encoders import _file_id


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> tuple[Path, bytes]:
    data = np.random.default_rng(0).integers(0, 256, 3 * (1 << 20) + 12345, dtype=np.uint8).tobytes()
    path = tmp_path_factory.mktemp("hash") / "blob.bin"
    path.write_bytes(data)
    return path, data


def test_file_hashes_are_the_whole_files_sha256(big_file):
    path, data = big_file
    want = hashlib.sha256(data).hexdigest()
    assert _hash_file(str(path)) == want
    assert source_key(str(path)) == want
    assert file_digest(path) == want[:16]
    assert _file_id(path, full=True) == want[:16]


def test_text_encoder_short_id_is_size_and_first_mib(big_file):
    path, data = big_file
    assert _file_id(path) == hashlib.sha256(str(len(data)).encode() + data[: 1 << 20]).hexdigest()[:16]
    assert _file_id(path) != _file_id(path, full=True)


def test_empty_file(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    assert _hash_file(str(tmp_path / "empty")) == hashlib.sha256(b"").hexdigest()
