"""The memory-mapped snapshot that queries read the batch files through.

A `Snapshot` is the committed state seen by one read transaction: segment ids sorted, and lazy
`ScoreMatrix` / `EmbeddingMatrix` views that gather rows from the mapped batch files (`arrays.py`) on demand.
A concept query touches one run of 2·n bytes per file; a WordNet node reads its precomputed sums.
"""

from __future__ import annotations

import mmap
import resource
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmindex.errors import IndexDamaged
from mmindex.index.arrays import _CHUNK, BatchArrays, _sum_runs, read_batch_file, to_float32
from mmindex.index.detectors import FOLDER


@dataclass
class Part:
    """The rows of one batch file that a snapshot sees: `take` in the file, `dest` in the snapshot."""

    batch_id: int
    arrays: BatchArrays
    take: slice | np.ndarray
    dest: slice | np.ndarray

    @property
    def size(self) -> int:
        return self.take.stop - self.take.start if isinstance(self.take, slice) else len(self.take)


class ScoreMatrix:
    """Concept-major (C, N) scores over a snapshot's parts. `m[c]` is concept c for every segment
    (float32, read from one run per batch file); `m[:, rows]` is every concept for some segments;
    `m.combine(...)` weighs and sums class sets (hierarchy nodes, text queries) in one pass over the files."""

    def __init__(self, parts: list[Part], n: int, n_columns: int, rows: RowMap,
                 trained: dict[int, np.ndarray] | None = None, hierarchy: Sequence[Sequence[int]] = ()):
        self.parts, self.rows, self.trained = parts, rows, trained or {}
        self.node_row = {tuple(sorted(classes)): h for h, classes in enumerate(hierarchy)}
        self.shape = (n_columns, n)
        self.dtype = np.dtype(np.float32)

    def column(self, c: int) -> np.ndarray:
        if c in self.trained:
            return self.trained[c].astype(np.float32)
        out = np.zeros(self.shape[1], dtype=np.float32)
        for p in self.parts:
            if c < p.arrays.scores.shape[0]:
                out[p.dest] = to_float32(p.arrays.scores[c, p.take])
        return out

    def combine(self, terms: Sequence[tuple[Sequence[int], float]]) -> np.ndarray:
        """Σ_t w_t · min(1, Σ_{c ∈ classes_t} p_c) for every segment (float32), for terms (classes_t, w_t);
        a one-class term is not capped. A class set that a batch file stores summed (`Store.hierarchy`)
        is read from it as one run; the other classes are read run by run and summed per file."""
        out = np.zeros(self.shape[1], dtype=np.float32)
        stored: list[tuple[tuple[int, ...], float]] = []
        for classes, weight in terms:
            classes = tuple(sorted(classes))
            if any(c in self.trained for c in classes):  # applied detectors' columns: in memory already
                col = sum(self.column(c) for c in classes)
                out += weight * (np.minimum(col, 1.0) if len(classes) > 1 else col)
            else:
                stored.append((classes, weight))
        for p in self.parts if stored else ():
            out[p.dest] += self._combine_part(p, stored)
        return out

    def _combine_part(self, p: Part, terms: list[tuple[tuple[int, ...], float]]) -> np.ndarray:
        scores, nodes = p.arrays.scores, p.arrays.nodes
        acc = np.zeros(p.size, dtype=np.float32)
        for classes, weight in terms:
            h = self.node_row.get(classes)
            if h is not None and nodes is not None and h < nodes.shape[0]:
                col = to_float32(nodes[h, p.take])
            else:
                col = _sum_runs(scores, classes, p.take)
                if col is None:
                    continue
                if h is not None:  # a file without sums: round as a stored sum would be
                    col = to_float32(col.astype(np.float16))
            if len(classes) > 1:
                np.minimum(col, 1.0, out=col)
            if weight != 1.0:
                np.multiply(col, np.float32(weight), out=col)
            np.add(acc, col, out=acc)
        return acc

    def columns_at(self, rows: np.ndarray) -> np.ndarray:
        """(C, len(rows)) float32: every concept's score for the given snapshot rows."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros((self.shape[0], len(rows)), dtype=np.float32)
        for p, sel, local in self.rows.split(rows):
            s = p.arrays.scores
            out[: s.shape[0], sel] = s[:, local]
        for c, col in self.trained.items():
            out[c] = col[rows]
        return out

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self.column(int(key))
        if isinstance(key, tuple) and len(key) == 2 and key[0] == slice(None):
            cols = key[1]
            if isinstance(cols, (int, np.integer)):
                return self.columns_at(np.array([cols]))[:, 0]
            if isinstance(cols, slice):
                return self.columns_at(np.arange(self.shape[1])[cols])
            return self.columns_at(np.asarray(cols))
        return np.asarray(self)[key]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.columns_at(np.arange(self.shape[1]))
        return out if dtype is None else out.astype(dtype)


class EmbeddingMatrix:
    """(N, D) embeddings over a snapshot's parts: `m[rows]` gathers rows (float32), `m @ q` scans in chunks."""

    def __init__(self, parts: list[Part], n: int, dim: int, rows: RowMap):
        self.parts, self.rows = parts, rows
        self.shape = (n, dim)
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            p, local = self.rows.locate(int(key) % max(self.shape[0], 1))
            return p.arrays.embeddings[local].astype(np.float32)
        rows = np.arange(self.shape[0])[key] if isinstance(key, slice) else np.asarray(key, dtype=np.int64)
        out = np.empty((len(rows), self.shape[1]), dtype=np.float32)
        for p, sel, local in self.rows.split(rows):
            out[sel] = p.arrays.embeddings[local]
        return out

    def __matmul__(self, q: np.ndarray) -> np.ndarray:
        # Summed in float64, then rounded: the result does not depend on how rows are split into files
        # and chunks (float32 BLAS sums depend on alignment), so compaction leaves every score unchanged.
        q = np.asarray(q, dtype=np.float64)
        out = np.empty(self.shape[0], dtype=np.float32)
        for p in self.parts:
            rows = np.arange(p.arrays.embeddings.shape[0])[p.take]
            dest = np.arange(self.shape[0])[p.dest]
            for i in range(0, len(rows), _CHUNK):
                out[dest[i:i + _CHUNK]] = p.arrays.embeddings[rows[i:i + _CHUNK]].astype(np.float64) @ q
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[np.arange(self.shape[0])]
        return out if dtype is None else out.astype(dtype)


class RowMap:
    """Which part and which row of its file each snapshot row comes from."""

    def __init__(self, parts: list[Part], n: int):
        self.parts = parts
        self.part_of = np.empty(n, dtype=np.int32)
        self.local = np.empty(n, dtype=np.int64)
        for i, p in enumerate(parts):
            dest = np.arange(n)[p.dest]
            self.part_of[dest] = i
            self.local[dest] = np.arange(p.arrays.scores.shape[1])[p.take]

    def locate(self, row: int) -> tuple[Part, int]:
        return self.parts[self.part_of[row]], int(self.local[row])

    def split(self, rows: np.ndarray):
        """Yield (part, positions in `rows`, rows in the part's file) for the parts that `rows` touch."""
        which = self.part_of[rows]
        for i in np.unique(which):
            sel = np.flatnonzero(which == i)
            yield self.parts[i], sel, self.local[rows[sel]]


@dataclass
class Snapshot:
    """The committed state of the arrays, rows sorted by segment id.

    `scores` (C, N) and `embeddings` (N, D) read the memory-mapped batch files lazily: a concept query
    reads one concept's run from each file, a similarity query only its candidates' rows.
    """

    generation: int
    ids: np.ndarray  # (N,) int64, sorted
    scores: ScoreMatrix
    embeddings: EmbeddingMatrix
    parts: list[Part] = field(default_factory=list, repr=False)
    vector_file: str | None = None  # the persisted vector index this state refers to (see vectors.py)

    def row_of(self, segment_id: int) -> int | None:
        """Row of a segment id in the arrays, or None if it is not in this snapshot."""
        i = int(np.searchsorted(self.ids, segment_id))
        return i if i < len(self.ids) and self.ids[i] == segment_id else None

    def mapped_bytes(self) -> int:
        """Bytes of batch files mapped (paged in on demand, shared with the page cache)."""
        return sum(p.arrays.nbytes for p in self.parts if _is_mapped(p.arrays))

    def resident_bytes(self) -> int:
        """Bytes held in this process's own memory: the row map, trained columns, legacy batches read whole."""
        own = sum(p.arrays.nbytes for p in self.parts if not _is_mapped(p.arrays))
        trained = sum(c.nbytes for c in self.scores.trained.values())
        return own + trained + self.ids.nbytes + self.scores.rows.part_of.nbytes + self.scores.rows.local.nbytes


def _is_mapped(arrays: BatchArrays) -> bool:
    base = arrays.scores
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(getattr(base, "obj", base), mmap.mmap)  # frombuffer's base is a memoryview of the map


def assemble(root: Path, generation: int, seg: np.ndarray, files: dict[int, str], embed_dim: int, n_columns: int,
             trained_layout: Sequence = (), vector_file: str | None = None,
             hierarchy: Sequence[Sequence[int]] = ()) -> Snapshot:
    """Map the batch files of a segment table `seg` ((N, 3): id, batch id, row; sorted by id).

    Raises FileNotFoundError if a file went away (a writer deleted it after this state was read).
    """
    n = len(seg)
    ids = np.ascontiguousarray(seg[:, 0]) if n else np.empty(0, np.int64)
    order = np.argsort(seg[:, 1], kind="stable") if n else np.empty(0, np.int64)
    batch_ids, starts = np.unique(seg[order, 1], return_index=True) if n else (np.empty(0, np.int64), [])
    _ensure_fd_limit(len(batch_ids))
    parts = []
    for b, s, e in zip(batch_ids, starts, [*starts[1:], n][:len(starts)], strict=True):
        dest = order[s:e]  # ascending: a stable sort of rows already sorted by id
        arrays = read_batch_file(root / "batches" / files[int(b)])
        parts.append(Part(int(b), arrays, as_slice(seg[dest, 2]), as_slice(dest)))
    parts.sort(key=lambda p: np.arange(n)[p.dest][0])  # file order = id order: sequential scans
    rows = RowMap(parts, n)
    trained = _trained_columns(root, trained_layout, parts, n)
    scores = ScoreMatrix(parts, n, max(n_columns, max((p.arrays.scores.shape[0] for p in parts), default=0)),
                         rows, trained, hierarchy)
    return Snapshot(generation, ids, scores, EmbeddingMatrix(parts, n, embed_dim, rows), parts, vector_file)


def concept_column(scores: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    """Probability of a concept for every segment: its class column, or for a hierarchy node the sum
    of its hyponym classes' probabilities (they are exclusive outcomes of one softmax)."""
    if hasattr(scores, "combine"):  # a snapshot's mapped matrix: precomputed node sums, one pass per file
        return scores.combine([(classes, 1.0)])
    col = scores[classes[0]].astype(np.float32)  # a copy: we add into it
    for c in classes[1:]:  # row by row: no (len(classes), N) temporary
        col += scores[c]
    return np.minimum(col, 1.0, out=col) if len(classes) > 1 else col


def as_slice(idx: np.ndarray) -> slice | np.ndarray:
    """A run of consecutive integers as a slice (a plain read of the mapped run), else the array."""
    if len(idx) and idx[-1] - idx[0] + 1 == len(idx) and np.all(np.diff(idx) == 1):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


def _trained_columns(root: Path, layout, parts: list[Part], n: int) -> dict[int, np.ndarray]:
    """Columns of applied detectors, {col: (N,) float16}, from their per-batch score files (small: read whole)."""
    out: dict[int, np.ndarray] = {}
    for _det, first, count, files in layout:
        block = np.zeros((count, n), dtype=np.float16)
        for p in parts:
            name = files.get(p.batch_id)
            if name is not None:  # always there through apply/add
                try:
                    block[:, p.dest] = np.load(root / FOLDER / name)[p.take].T
                except FileNotFoundError:
                    raise
                except (OSError, ValueError, EOFError, IndexError) as exc:
                    raise IndexDamaged(root, f"detector score file {FOLDER}/{name} cannot be read ({exc})") from None
        out.update({first + j: block[j] for j in range(count)})
    return out


def _ensure_fd_limit(n_files: int) -> None:
    """Each mapped file holds a descriptor: raise the soft limit (up to the hard one) for many batch files.

    `mmindex compact` keeps the count small; this only keeps an uncompacted index readable.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n_files + 1024
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
