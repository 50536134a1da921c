"""The vector index of one embedding space, over FAISS. Segment id = vector id.

The setting is chosen when an index is created (`mmindex add --vector-index`) and recorded in its meta
(names and factory strings: vector_settings.py):

    auto    the default: exact below vector_settings.AUTO_HNSW_FROM vectors, `hnsw` from there on
    flat    exact inner product ("Flat")
    hnsw    an HNSW graph with 32 links per node; it cannot delete, so removed segments are tombstones,
            filtered out during the search, until `compact` or `rebuild` drops them. Over embeddings of
            more than 256 dimensions the graph links PCA-reduced vectors, 64 links each ("PCA128,HNSW64"),
            else the vectors themselves ("HNSW32"); see HNSW_PCA
    ivfpq   inverted lists of product-quantised codes, "IVF{nlist},PQ{m}np" with nlist ≈ √N and m ≈ D/8
            bytes per vector (at most 256), trained on a sample of the stored embeddings
    any other FAISS index factory string, e.g. "IVF1024,SQ8" or "HNSW32,SQfp16"

The index is persisted in `vectors/NNNNNNNN.faiss` (meta `vector_file`) and memory-mapped (IO_FLAG_MMAP
for inverted lists, IO_FLAG_MMAP_IFC for flat codes and HNSW graphs), so that opening it costs no copy
(a million-vector Flat file: 6 ms instead of 7 s read into memory) and its pages are shared with the page
cache and between processes. That file is the *base*;
a reader also holds an exact in-memory index of the segments committed since it was written (the
*delta*), and filters out base vectors whose segments are gone (*tombstones*, an IDSelector). Writers
(`add`, `remove`, `compact`, `rebuild`) call `update`, which folds the delta and the tombstones into a new
file when they reach MERGE_FRACTION of the base, so an `add` of a few files never rewrites a large index.
The file is derived data: a new one is written under a temporary name and named in the meta in one
transaction, so a crash leaves the old one in force, and a reader never sees an index out of step.

FAISS returns inner products of unit vectors, i.e. cosine similarities: higher is better, as everywhere in
mmindex. Candidates from an approximate index (found by inner product, or by L2 distance after PCA) are
re-ranked with the exact inner product against the stored embeddings, so scores are always exact and
only the candidate set is approximate.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmindex.atomic import atomic_write
from mmindex.errors import IndexDamaged
from mmindex.index.vector_settings import (  # noqa: F401  (re-exported: callers import them from here)
    ALIASES,
    DEFAULT_SETTING,
    HNSW_PCA,
    LEGACY_SETTING,
    auto_outgrown,
    check_matches,
    check_setting,
    factory_for,
    normalise,
    resolve,
)

if TYPE_CHECKING:
    import faiss

    from mmindex.index.snapshot import Snapshot
    from mmindex.index.store import Store

log = logging.getLogger(__name__)


class _Faiss:
    """FAISS, imported on first use: 0.1-0.3 s of every command's start-up, which a query by concept never needs."""

    def __getattr__(self, name: str):
        module = importlib.import_module("faiss")
        globals()["faiss"] = module  # later uses in this module see the module itself
        return getattr(module, name)


if not TYPE_CHECKING:
    faiss = _Faiss()

FOLDER = "vectors"
RERANK_FACTOR = 10  # candidates per hit fetched from an approximate index before exact re-ranking
# ... and at least this many from an index of compressed codes (PQ, SQ), whose distances are coarse:
# at 1M (bench/scale_1m.py), IVF-PQ gave recall@10 0.87 with 200 and 0.80 with 100. A graph over float
# vectors ranks its candidates almost as the exact re-ranking does: PCA128,HNSW32 gave 0.956 with 50, 100
# or 200, and re-ranking 200 rather than 100 (gathering float16 rows from the batch files) cost ~1 ms.
MIN_CANDIDATES = 200
HNSW_EF_SEARCH = 256  # at least the candidates fetched; recall@10 at 1M (PCA128,HNSW64): 256 0.952, 320 0.973
HNSW_EF_CONSTRUCTION = 120  # FAISS's default 40 gave recall@10 0.93 on bench/scale_1m.py's data at 100k
IVF_NPROBE = 64  # lists visited per query: at least this, or a quarter of the lists (recall vs time, same bench:
#                 at 1M, 1024 lists, an eighth gave recall@10 0.78 and a quarter 0.87)
MIN_TRAIN = 2048  # an index that needs training is built once there are this many vectors; exact until then
TRAIN_SAMPLE = 65_536
MERGE_FRACTION = 0.05  # fold the delta and tombstones into a new file once they reach this share of the base
_ADD_CHUNK = 16_384

ProgressFn = Callable[[int, int], None]


@dataclass
class Base:
    """A FAISS index over some segment ids (tombstones included), from a file or built in memory."""

    index: faiss.Index
    ids: np.ndarray  # sorted
    factory: str
    file: str | None = None
    mapped: bool = False

    @property
    def removable(self) -> bool:
        """Whether FAISS can delete from it (graph indexes cannot)."""
        f = self.factory.upper()
        return "HNSW" not in f and "NSG" not in f


def _make(factory: str, dim: int) -> faiss.Index:
    # After PCA (which centres the vectors) inner products no longer rank as the full vectors do, but
    # L2 distances still approximate theirs, and for unit vectors the L2 order is the inner-product order.
    metric = faiss.METRIC_L2 if factory.upper().startswith("PCA") else faiss.METRIC_INNER_PRODUCT
    index = faiss.index_factory(dim, factory, metric)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:  # inverted lists store ids themselves; other indexes need the id map
        hnsw = faiss.downcast_index(index)
        if isinstance(hnsw, faiss.IndexPreTransform):
            hnsw = faiss.downcast_index(hnsw.index)
        if isinstance(hnsw, faiss.IndexHNSW):
            hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        return faiss.IndexIDMap(index)
    ivf.cp.niter = 10  # k-means on a sample: 10 iterations get most of the gain of the default 25
    if hasattr(ivf, "do_polysemous_training"):  # codes are never compared by Hamming distance here, and
        ivf.do_polysemous_training = False  # that training took 25 s for 3000 vectors (vs 1 s without)
    return index


def _ids_of(index: faiss.Index) -> np.ndarray:
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexIDMap):
        return np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))
    ivf = faiss.try_extract_index_ivf(index)
    lists = ivf.invlists
    parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
             for i in range(ivf.nlist) if lists.list_size(i)]
    return np.sort(np.concatenate(parts).astype(np.int64)) if parts else np.empty(0, np.int64)


def _add(index: faiss.Index, embeddings, ids: np.ndarray, rows: np.ndarray, progress: ProgressFn | None) -> None:
    for i in range(0, len(rows), _ADD_CHUNK):
        take = rows[i:i + _ADD_CHUNK]
        index.add_with_ids(np.ascontiguousarray(embeddings[take], dtype=np.float32), ids[take])
        if progress:
            progress(min(i + _ADD_CHUNK, len(rows)), len(rows))


def build_base(embeddings, ids: np.ndarray, setting: str, progress: ProgressFn | None = None,
               seed: int = 0) -> Base | None:
    """Build the index of a setting over every vector, training it on a sample first if it needs it.

    None when it needs training and there are fewer than MIN_TRAIN vectors (search stays exact until then).
    """
    ids = np.asarray(ids, dtype=np.int64)
    dim = embeddings.shape[1]
    factory = factory_for(setting, len(ids), dim)
    index = _make(factory, dim)
    if not index.is_trained:
        if len(ids) < MIN_TRAIN:
            return None
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(len(ids), min(len(ids), TRAIN_SAMPLE), replace=False))
        try:
            index.train(np.ascontiguousarray(embeddings[sample], dtype=np.float32))
        except RuntimeError:  # e.g. more lists than vectors: stay exact until the collection grows
            return None
    _add(index, embeddings, ids, np.arange(len(ids)), progress)
    return Base(index, ids.copy(), factory)


def load_base(root: Path, file: str | None, factory: str | None, mmap: bool = True) -> Base | None:
    """The persisted index named `file`, memory-mapped (read-only) or read into memory (to modify it).

    FileNotFoundError if a writer replaced it since `file` was read: take a new snapshot. `IndexDamaged` if
    it cannot be read (it is derived: `update(..., rebuild=True)` or `mmindex repair` writes it anew).
    """
    if not file:
        return None
    path = root / FOLDER / file
    if not path.is_file():
        raise FileNotFoundError(path)
    # Inverted lists map with IO_FLAG_MMAP; flat codes and graphs with IO_FLAG_MMAP_IFC, which FAISS
    # refuses for inverted lists, so the flag follows the kind.
    kind = faiss.IO_FLAG_MMAP if "IVF" in (factory or "") else faiss.IO_FLAG_MMAP_IFC
    try:
        index = faiss.read_index(str(path), kind | faiss.IO_FLAG_READ_ONLY if mmap else 0)
        return Base(index, _ids_of(index), factory or "?", file, mmap)
    except RuntimeError as exc:  # FAISS's own error for a truncated or garbled file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IndexDamaged(root, f"vector index {FOLDER}/{file} cannot be read ({first[:200]})") from None


class VectorIndex:
    """Nearest neighbours by inner product over (N, D) unit vectors with int64 ids (sorted).

    `embeddings` is an (N, D) array or a snapshot's lazy `EmbeddingMatrix`, rows in the order of `ids`.
    With `base` (a persisted index), the ids it lacks go to an exact in-memory delta and the ids it has
    but `ids` lacks are filtered out. Without, the index of `factory` is built in memory when `build`
    (tests, small collections); else every vector is in the exact delta. The delta is built by the first
    search, so that opening an index for concept queries copies no vectors.
    """

    def __init__(self, embeddings, ids: np.ndarray, factory: str = "Flat", base: Base | None = None,
                 build: bool = True):
        self.embeddings = embeddings
        self.ids = np.asarray(ids, dtype=np.int64)
        if base is None and build and len(self.ids):
            base = build_base(embeddings, self.ids, factory)
        self.base = base
        self.factory = base.factory if base else "Flat"
        self.exact = self.factory == "Flat"
        self.coarse = any(code in self.factory.upper() for code in ("PQ", "SQ", "RQ", "LSH"))
        known = base.ids if base is not None else np.empty(0, np.int64)
        delta = np.setdiff1d(self.ids, known, assume_unique=True)
        self.tombstones = np.setdiff1d(known, self.ids, assume_unique=True)
        self.pending = np.searchsorted(self.ids, delta)  # rows of the vectors the base lacks
        self._delta: faiss.Index | None = None
        self._delta_lock = threading.Lock()
        self._sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(self.tombstones)) if len(self.tombstones) else None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def delta(self) -> faiss.Index:
        """The exact in-memory index of the `pending` vectors, built on first use (once, for all threads)."""
        if self._delta is None:
            with self._delta_lock:
                if self._delta is None:
                    delta = faiss.IndexIDMap(faiss.IndexFlatIP(self.embeddings.shape[1]))
                    if len(self.pending):
                        _add(delta, self.embeddings, self.ids, self.pending, None)
                    self._delta = delta
        return self._delta

    def describe(self) -> dict:
        """What `mmindex info` shows: the FAISS index, its vectors, the delta and the tombstones."""
        base = self.base
        return {"factory": self.factory if base else "exact (no index built yet)", "vectors": len(self.ids),
                "in_index": int(base.index.ntotal) if base else 0, "pending": len(self.pending),
                "tombstones": len(self.tombstones), "mapped": bool(base and base.mapped),
                "file": base.file if base else None}

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (segment ids, cosine similarities) for one query vector, best first."""
        k = min(k, len(self.ids))
        if k == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        q = np.ascontiguousarray(query, dtype=np.float32)[None, :]
        fetch = k if self.exact else max(RERANK_FACTOR * k, MIN_CANDIDATES if self.coarse else 0)
        # One query is memory-bound: a second OpenMP thread only adds synchronisation (measured 3x
        # slower on 2 cores in bench/query_latency.py), so single queries run on one thread.
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            found = []
            if self.base is not None and self.base.index.ntotal:
                params, _keep = self._params(fetch)
                found.append(self.base.index.search(q, min(fetch, self.base.index.ntotal), params=params)[1][0])
            if self.delta.ntotal:
                found.append(self.delta.search(q, min(fetch, self.delta.ntotal))[1][0])
        finally:
            faiss.omp_set_num_threads(threads)
        cand = np.unique(np.concatenate(found))
        cand = cand[cand >= 0]
        rows = np.searchsorted(self.ids, cand)
        ok = rows < len(self.ids)
        ok[ok] = self.ids[rows[ok]] == cand[ok]
        cand, rows = cand[ok], rows[ok]
        exact = self.embeddings[rows] @ q[0]
        best = np.argsort(-exact, kind="stable")[:k]
        return cand[best], exact[best]

    def _params(self, fetch: int):
        """Search parameters of the base's kind, with the tombstone filter (and what must outlive them)."""
        inner = faiss.downcast_index(self.base.index)
        if isinstance(inner, faiss.IndexIDMap):  # the id map passes parameters through, translating the filter
            inner = faiss.downcast_index(inner.index)
        wrapped = isinstance(inner, faiss.IndexPreTransform)
        if wrapped:
            inner = faiss.downcast_index(inner.index)
        if isinstance(inner, faiss.IndexHNSW):
            p = faiss.SearchParametersHNSW()
            p.efSearch = max(HNSW_EF_SEARCH, fetch)
        elif isinstance(inner, faiss.IndexIVF):
            p = faiss.SearchParametersIVF()
            p.nprobe = min(inner.nlist, max(IVF_NPROBE, inner.nlist // 4))
        else:
            p = faiss.SearchParameters()
        if self._sel is not None:
            p.sel = self._sel
        if not wrapped:
            return p, p
        outer = faiss.SearchParametersPreTransform()
        outer.index_params = p
        if self._sel is not None:
            outer.sel = self._sel
        return outer, p


# ---- the writer's side ---------------------------------------------------------------------------------
def update(store: Store, snap: Snapshot, setting: str | None = None, rebuild: bool = False,
           drop_dead: bool = False, progress: ProgressFn | None = None) -> dict:
    """Bring the persisted index of `store` (opened for writing) up to `snap`, its committed state.

    Folds new segments and removed ones into a new file when they reach MERGE_FRACTION of it (always with
    `drop_dead`, which also rebuilds an index that cannot delete if it has tombstones). `rebuild` builds
    from the stored embeddings; `setting` changes the index's setting (with `rebuild`). Returns
    {"action": "none" | "built" | "merged" | "rebuilt" | "untrained", "factory", "vectors"}.
    """
    setting = normalise(setting or store.meta("vector_index") or LEGACY_SETTING)
    file, factory = store.meta("vector_file"), store.meta("vector_factory")
    try:
        base = None if rebuild else load_base(store.root, file, factory)  # mapped: most adds change nothing here
    except (IndexDamaged, FileNotFoundError) as exc:  # the writer holds the lock: nobody replaced it
        log.warning("%s; rebuilding it from the stored embeddings", exc)
        base, rebuild = None, True
    if base is not None and auto_outgrown(setting, base.factory, len(snap.ids), snap.embeddings.shape[1]):
        log.info("vector index: %s vectors, rebuilding %s as %s (auto)", len(snap.ids), base.factory,
                 factory_for(setting, len(snap.ids), snap.embeddings.shape[1]))
        base, rebuild = None, True
    build_as = setting  # `auto` picks by size where it builds anew; it keeps a graph it rebuilds for tombstones
    if base is not None:
        new = np.setdiff1d(snap.ids, base.ids, assume_unique=True)
        dead = np.setdiff1d(base.ids, snap.ids, assume_unique=True)
        changed = len(new) + len(dead)
        if not changed or not drop_dead and changed < MERGE_FRACTION * max(len(base.ids), 1):
            return {"action": "none", "factory": base.factory, "vectors": len(snap.ids)}
        if len(dead) and not base.removable and drop_dead:
            build_as = "hnsw" if setting == "auto" else setting  # (only auto_outgrown changes its kind)
            base, action = None, "rebuilt"
        else:
            base = load_base(store.root, file, factory, mmap=False)  # read into memory, to modify
            if len(dead) and base.removable:
                base.index.remove_ids(faiss.IDSelectorBatch(dead))
            _add(base.index, snap.embeddings, snap.ids, np.searchsorted(snap.ids, new), progress)
            base.ids = _ids_of(base.index)
            action = "merged"
    else:
        action = "rebuilt" if rebuild else "built"
    if base is None:
        base = build_base(snap.embeddings, snap.ids, build_as, progress) if len(snap.ids) else None
        if base is None:
            action = "untrained" if len(snap.ids) else "none"
            if not store.meta("vector_file") and store.meta("vector_index") == setting:
                return {"action": action, "factory": None, "vectors": len(snap.ids)}  # nothing to record
    _save(store, base, setting)
    return {"action": action, "factory": base.factory if base else None, "vectors": len(snap.ids)}


def _save(store: Store, base: Base | None, setting: str) -> None:
    """Write `base` as the index's vector file (or none) and record it with `setting`, in one transaction."""
    folder = store.root / FOLDER
    folder.mkdir(exist_ok=True)
    old = store.meta("vector_file")
    with store.transaction():
        name = ""
        if base is not None:
            seq = int(store.meta("vector_seq") or 0) + 1
            name = f"{seq:08d}.faiss"
            with atomic_write(folder / name) as tmp:
                faiss.write_index(base.index, str(tmp))
            store._set_meta("vector_seq", str(seq))
            store._set_meta("vector_factory", base.factory)
        store._set_meta("vector_file", name)
        store._set_meta("vector_index", setting)
    if old and old != name:  # after the commit: a reader may still map it (its pages stay valid)
        (folder / old).unlink(missing_ok=True)
