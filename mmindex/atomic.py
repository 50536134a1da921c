"""Atomic file replacement: a file under its final name is always whole, old or new, never half.

`atomic_write(path)` yields a new temporary file beside `path` to write; when the block exits without
an exception the file is fsynced, renamed onto `path` and the folder is fsynced, so that the rename
itself survives a power loss. On any exception (KeyboardInterrupt included) the temporary file is
removed and `path` is left as it was. Every writer gets its own temporary name (`mkstemp`), so
concurrent writers of the same target never collide: each succeeds and the last rename wins whole.

Temporary files are named `.<name>.<random>.tmp` in the target's folder. A writer killed before its
rename leaves one behind; folders whose orphans are swept (batches/, vectors/, detectors/) delete
any file no committed row names, so these too.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write", "fsync_dir", "write_bytes"]

# Folders on some file systems cannot be opened or fsynced; the rename has happened by then, so a
# folder fsync that is not supported is skipped rather than reported as a failed write.
_DIR_FSYNC_UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EACCES, errno.EPERM,
                          errno.EISDIR}


def _fsync_path(path: str | os.PathLike, flags: int = os.O_RDONLY, mode: int | None = None) -> None:
    fd = os.open(path, flags)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: str | os.PathLike) -> None:
    """fsync a folder, so that a rename or a new file in it is durable (skipped where unsupported)."""
    try:
        _fsync_path(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise


@contextmanager
def atomic_write(path: str | os.PathLike, mode: int = 0o644) -> Iterator[Path]:
    """Yield the path of a new, empty temporary file beside `path`; on a clean exit it becomes `path`.

    Write to the yielded path by any means (`open(tmp, "wb")`, `torch.save`, `faiss.write_index`, an
    mmap ...); the file is fsynced after the block, whichever descriptor wrote it. `mode` is the
    permission of the final file (mkstemp's own is 0600; index files and caches are shared).
    """
    target = Path(path)
    folder = target.parent
    # Cut to 60 characters (240 bytes at most): the temporary name stays within NAME_MAX (255 bytes).
    fd, name = tempfile.mkstemp(dir=folder, prefix=f".{target.name[:60]}.", suffix=".tmp")
    tmp = Path(name)
    try:
        os.close(fd)
        yield tmp
        # Reopened by name: the data may have been written through another descriptor (a library's own).
        _fsync_path(tmp, mode=mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(folder)


def write_bytes(path: str | os.PathLike, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` atomically with `data` (see `atomic_write`)."""
    with atomic_write(path, mode) as tmp, open(tmp, "wb") as f:
        f.write(data)
