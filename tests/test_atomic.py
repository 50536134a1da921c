"""The one atomic writer: whole old or whole new content under the name, never a temporary file left."""

import os
import pickle
import stat
import threading

import numpy as np
import pytest

from mmindex.atomic import atomic_write, write_bytes


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_successful_write_replaces_the_content_and_leaves_only_the_target(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"new content")
        assert target.read_bytes() == b"old"  # nothing under the name until the block exits
    assert target.read_bytes() == b"new content"
    assert _names(tmp_path) == ["data.bin"]
    assert target.stat().st_mode & 0o777 == 0o644  # shared caches and index files are readable by others


def test_write_bytes_creates_a_new_file(tmp_path):
    write_bytes(tmp_path / "a.jpg", b"\xff\xd8jpeg")
    assert (tmp_path / "a.jpg").read_bytes() == b"\xff\xd8jpeg"
    assert _names(tmp_path) == ["a.jpg"]


@pytest.mark.parametrize("exc", [ValueError, KeyboardInterrupt])
def test_a_write_that_raises_leaves_the_old_file_and_no_temporary_file(tmp_path, exc):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with pytest.raises(exc), atomic_write(target) as tmp, open(tmp, "wb") as f:
        f.write(b"half of the new")
        raise exc("interrupted mid-way")
    assert target.read_bytes() == b"old"
    assert _names(tmp_path) == ["data.bin"]


def test_a_rename_that_fails_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "taken"
    (target / "inside").mkdir(parents=True)  # a non-empty folder cannot be replaced by a file
    with pytest.raises(OSError), atomic_write(target) as tmp:
        tmp.write_bytes(b"x")
    assert _names(tmp_path) == ["taken"]


def test_concurrent_writers_of_one_target_both_succeed_and_one_whole_content_wins(tmp_path):
    target = tmp_path / "thumb.jpg"
    contents = [bytes([65 + i]) * 1_000_000 for i in range(2)]
    both_writing = threading.Barrier(2, timeout=60)
    errors = []

    def writer(i):
        try:
            with atomic_write(target) as tmp, open(tmp, "wb") as f:
                f.write(contents[i][:500_000])
                both_writing.wait()  # both temporary files exist at once: their names must differ
                f.write(contents[i][500_000:])
        except BaseException as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_bytes() in contents
    assert _names(tmp_path) == ["thumb.jpg"]


def test_a_library_writing_by_name_is_fsynced_and_renamed(tmp_path):
    target = tmp_path / "arrays.npy"
    with atomic_write(target) as tmp, open(tmp, "wb") as f:
        np.save(f, np.arange(5))  # np.save(str) would append ".npy" to the temporary name
    assert np.load(target).tolist() == [0, 1, 2, 3, 4]
    assert _names(tmp_path) == ["arrays.npy"]


def test_the_concept_bank_cache_leaves_no_temporary_file_when_saving_fails(tmp_path):
    from mmindex.text.bank import _save

    unpicklable = np.array([lambda: None], dtype=object)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        _save(tmp_path / "bank.npz", names=unpicklable)
    assert _names(tmp_path) == []



def test_the_file_and_then_its_folder_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        st = os.fstat(fd)
        synced.append(("dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    write_bytes(tmp_path / "x.bin", b"data")
    assert synced == [("file", (tmp_path / "x.bin").stat().st_ino), ("dir", tmp_path.stat().st_ino)]
