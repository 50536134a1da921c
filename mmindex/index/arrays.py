"""Batch array files: their format, and writing and mapping them (the snapshot over them: `snapshot.py`).

A batch file `batches/NNNNNNNN.arrays` holds .npy arrays back to back, each at a 64-byte aligned offset:

    scores      (C, n) float16, concept-major: one concept's scores for the batch are one contiguous run
    embeddings  (n, D) float16, one row per segment
    nodes       (H, n) float16, optional: Σ of the scores of each of the store's hierarchy class sets

`nodes` holds, precomputed, what a WordNet-node query would otherwise sum at query time ('dog' is 118
ImageNet classes; see `Store.hierarchy`). A query for such a node reads one run per file instead of 118,
which at a million segments is the difference between 1.6 s and 7 ms (bench/scale_1m.py).

Files are written under a temporary name, fsynced and renamed (`new_batch_file`), and never modified
afterwards, so readers map them read-only and a concept query touches one run of 2·n bytes per file,
not the whole matrix. Indexes written before schema v3 have `NNNNNNNN.npz` files (scores (n, C),
embeddings (n, D)); those are read into memory, and `mmindex compact` rewrites them in the new format.
"""

from __future__ import annotations

import io
import mmap
import os
import zipfile
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mmindex.atomic import atomic_write
from mmindex.errors import IndexDamaged

SUFFIX = ".arrays"
LEGACY_SUFFIX = ".npz"
_ALIGN = 64
_CHUNK = 1 << 16  # rows per step in full scans (embeddings @ q): bounds the float32 temporaries
# float16 -> float32 through a 256 KB table: 5-6x faster than NumPy's cast here (bench/scale_1m.py, 'dog')
_F16_TO_F32 = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)


def to_float32(run: np.ndarray) -> np.ndarray:
    """A float16 array (contiguous along its last axis) as float32."""
    return np.take(_F16_TO_F32, run.view(np.uint16))


class BatchArrays(NamedTuple):
    scores: np.ndarray  # (C, n) float16, concept-major
    embeddings: np.ndarray  # (n, D) float16
    nodes: np.ndarray | None = None  # (H, n) float16: hierarchy sums, None in files written without them

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self if a is not None)


def batch_file_name(batch_id: int) -> str:
    return f"{batch_id:08d}{SUFFIX}"


def _header(shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    # version 1.0 headers are padded so that the data starts at a multiple of 64 bytes from the header
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)), "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN


def _layout(n: int, n_concepts: int, dim: int) -> tuple[int, int, int, int, bytes, bytes]:
    """Offsets (scores data, embeddings header, embeddings data, end of embeddings) and both headers."""
    h1, h2 = _header((n_concepts, n)), _header((n, dim))
    scores_at = len(h1)
    emb_header_at = _aligned(scores_at + 2 * n_concepts * n)
    emb_at = emb_header_at + len(h2)
    return scores_at, emb_header_at, emb_at, emb_at + 2 * n * dim, h1, h2


@contextmanager
def new_batch_file(path: Path, n: int, n_concepts: int, dim: int, hierarchy: Sequence[Sequence[int]] = ()):
    """Create a batch file and yield writable (scores (C, n), embeddings (n, D)) views to fill.

    On exit the sums of the `hierarchy` class sets are computed from the filled scores and stored after
    the embeddings. The file is written under a temporary name and becomes `path` (fsynced, renamed) only
    when the block exits without an exception, so a file under its final name is always whole.
    """
    scores_at, emb_header_at, emb_at, emb_end, h1, h2 = _layout(n, n_concepts, dim)
    h3 = _header((len(hierarchy), n)) if hierarchy else b""
    nodes_header_at = _aligned(emb_end)
    end = nodes_header_at + len(h3) + 2 * len(hierarchy) * n if hierarchy else emb_end
    with atomic_write(path) as tmp:
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.ftruncate(fd, end)
            os.pwrite(fd, h1, 0)
            os.pwrite(fd, h2, emb_header_at)
            os.pwrite(fd, h3, nodes_header_at)
            # Not closed here: the caller may still hold views on it; it is unmapped when they are gone.
            mm = mmap.mmap(fd, end, access=mmap.ACCESS_WRITE)
            out = BatchArrays(np.frombuffer(mm, np.float16, n_concepts * n, scores_at).reshape(n_concepts, n),
                              np.frombuffer(mm, np.float16, n * dim, emb_at).reshape(n, dim))
            yield out
            if hierarchy:
                at = nodes_header_at + len(h3)
                _sum_sets(out.scores, hierarchy,
                          np.frombuffer(mm, np.float16, len(hierarchy) * n, at).reshape(-1, n))
            mm.flush()
        finally:
            os.close(fd)


def _sum_runs(scores: np.ndarray, classes: Sequence[int], take: slice | np.ndarray = slice(None)) -> np.ndarray | None:
    """Σ_{c ∈ classes} scores[c, take] (float32), added in the order given; None if no class is stored.

    Written and queried the same way, so a stored hierarchy sum and one computed at query time from a
    file without sums are the same float16 numbers (compaction changes no score).
    """
    acc = None
    for c in (c for c in classes if c < scores.shape[0]):
        run = to_float32(scores[c, take])
        acc = run if acc is None else np.add(acc, run, out=acc)
    return acc


def _sum_sets(scores: np.ndarray, sets: Sequence[Sequence[int]], out: np.ndarray) -> None:
    """out[h] = Σ_{c ∈ sets[h]} scores[c], rounded to float16: the additions of `_sum_runs`, in its order,
    on a block converted to float32 once (a class is in ~25 sets on average; 3.5x faster than per run)."""
    step = _CHUNK // 8  # columns per block: bounds the float32 copy of a compaction's large groups
    for i in range(0, scores.shape[1], step):
        block = to_float32(np.ascontiguousarray(scores[:, i:i + step]))
        for h, classes in enumerate(sets):
            stored = [c for c in classes if c < len(block)]
            acc = block[stored[0]].copy() if stored else np.zeros(block.shape[1], np.float32)
            for c in stored[1:]:
                np.add(acc, block[c], out=acc)
            out[h, i:i + step] = acc


def write_batch_file(path: Path, scores: np.ndarray, embeddings: np.ndarray,
                     hierarchy: Sequence[Sequence[int]] = ()) -> None:
    """Write one batch: `scores` (n, C) one row per segment, `embeddings` (n, D); stored float16, with
    the sums of the `hierarchy` class sets."""
    n, n_concepts = scores.shape
    with new_batch_file(path, n, n_concepts, embeddings.shape[1], hierarchy) as out:
        out.scores[:] = scores.T
        out.embeddings[:] = embeddings


def read_batch_file(path: Path) -> BatchArrays:
    """Map a batch file read-only (a legacy .npz is read into memory instead).

    FileNotFoundError if it is gone (a writer deleted it after the caller's snapshot); `IndexDamaged` if it
    is truncated or not a batch file.
    """
    try:
        return _read_batch_file(path)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise IndexDamaged(path.parent.parent, f"batch file {path.parent.name}/{path.name} cannot be read"
                           f" ({exc})") from None


def _read_batch_file(path: Path) -> BatchArrays:
    if path.suffix == LEGACY_SUFFIX:
        with np.load(path) as z:
            return BatchArrays(np.ascontiguousarray(z["scores"].T), z["embeddings"])
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        shape1, _, _ = np.lib.format.read_array_header_1_0(_Reader(mm, 0, skip_magic=True))
        n_concepts, n = shape1
        scores_at, emb_header_at, emb_at, end, _, _ = _layout(n, n_concepts, 0)
        _, dim = np.lib.format.read_array_header_1_0(_Reader(mm, emb_header_at, skip_magic=True))[0]
        scores_at, emb_header_at, emb_at, end, _, _ = _layout(n, n_concepts, dim)
        if len(mm) < end:
            raise ValueError(f"truncated: {len(mm)} bytes, its header needs {end}")
        nodes = None
        if len(mm) > end:  # written with hierarchy sums
            reader = _Reader(mm, _aligned(end), skip_magic=True)
            (n_sets, _), _, _ = np.lib.format.read_array_header_1_0(reader)
            nodes = np.frombuffer(mm, np.float16, n_sets * n, reader.pos).reshape(n_sets, n)
    return BatchArrays(np.frombuffer(mm, np.float16, n_concepts * n, scores_at).reshape(n_concepts, n),
                       np.frombuffer(mm, np.float16, n * dim, emb_at).reshape(n, dim), nodes)


class _Reader:
    """A file-like view of a buffer from an offset (numpy's header parser reads from a file)."""

    def __init__(self, buf, offset: int, skip_magic: bool = False):
        self.buf, self.pos = buf, offset + (8 if skip_magic else 0)  # magic (6) + version (2)

    def read(self, size: int) -> bytes:
        out = bytes(self.buf[self.pos:self.pos + size])
        self.pos += size
        return out
