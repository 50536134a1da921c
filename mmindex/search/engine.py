"""The engine facade: one object through which the CLI, the Python API and the HTTP API index and search.

    >>> from mmindex import Engine
    >>> engine = Engine("~/photos.mmindex")
    >>> engine.add(["~/Pictures"])
    >>> [h.path for h in engine.search(concepts=["espresso"], k=3)]
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mmindex.concepts import Concept, Vocabulary
from mmindex.config import IngestConfig, default_index_dir
from mmindex.errors import MediaError, QueryError, StoreError
from mmindex.index.ingest import AddReport, ProgressFn, add_paths, read_media
from mmindex.index.store import Snapshot, Store
from mmindex.index.vectors import DEFAULT_FACTORY, VectorIndex
from mmindex.search import fusion, rank
from mmindex.search.query import Query


@dataclass
class Hit:
    """One result. `why` (on request) gives each criterion's raw score for this segment."""

    segment_id: int
    path: str
    start: float | None
    end: float | None
    score: float
    kind: str = "image"
    media_id: int | None = None
    why: dict[str, float] | None = field(default=None)

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["why"] is None:
            del d["why"]
        return d


class Engine:
    """Index and search one index directory.

    Reading needs no lock and sees only committed batches; `add` and `remove` take the index's
    writer lock for their duration (a second writer gets `IndexLocked`).
    """

    def __init__(
        self,
        index: str | os.PathLike | None = None,
        config: IngestConfig | None = None,
        vector_index: str = DEFAULT_FACTORY,
    ):
        """`vector_index` is the FAISS factory string of the in-memory vector index: "Flat" (exact,
        the default) or an approximate index such as "SQ8" whose candidates are re-ranked exactly."""
        self.index_dir = Path(index).expanduser() if index is not None else default_index_dir()
        self.config = config or IngestConfig()
        self.vector_index = vector_index
        self.vocabulary = Vocabulary.imagenet()
        self._reader: Store | None = None
        self._cache: tuple[Snapshot, VectorIndex] | None = None
        self._runtime = None
        self._backbone = None
        self._lock = threading.Lock()

    # ---- writing -------------------------------------------------------------------------------
    def add(self, paths: Iterable[str | os.PathLike], progress: ProgressFn | None = None) -> AddReport:
        """Index files and folders (recursively). Unchanged files are skipped; bad files are recorded."""
        from mmindex.models import model_info

        name = self.config.model
        if Store.exists(self.index_dir):
            store = Store.open(self.index_dir, write=True)
        else:
            concepts = [(c.id, c.name, c.source) for c in self.vocabulary.classes]
            store = Store.create(self.index_dir, name, model_info(name)["embed_dim"], concepts)
        with store:
            built_with = store.meta("model")
            if built_with != name:
                raise StoreError(f"index {self.index_dir} was built with model {built_with!r}, not {name!r}")
            backbone = self._get_backbone()
            return add_paths(store, paths, self.config, self._get_runtime, backbone.data_config, progress)

    def remove(self, paths: Iterable[str | os.PathLike]) -> int:
        """Remove media by file path, or all media under a folder. Returns how many were removed."""
        with Store.open(self.index_dir, write=True) as store:
            return store.remove(os.path.abspath(os.fspath(p)) for p in paths)

    # ---- reading -------------------------------------------------------------------------------
    def search(
        self,
        concepts: Sequence[str] = (),
        like: Sequence[int | str] = (),
        k: int = 10,
        explain: bool = False,
        normalise: str = "minmax",
    ) -> list[Hit]:
        """Rank segments by concept expressions and/or examples (segment ids or image paths), fused.

        Raises QueryError or UnknownConcept for malformed queries.
        """
        query = Query.build(concepts, like, k)
        with self._lock:
            snap, vectors = self._arrays()
            reader = self._store()
            labels, columns, weights = [], [], []
            for text, node, weight in query.concepts:
                for name in rank.term_names(node):
                    self.vocabulary.resolve(name)  # unknown names fail before any work is done
                labels.append(text)
                columns.append(rank.expression_scores(node, lambda n: self._concept_column(snap, n)))
                weights.append(weight)
            for ref, weight in query.like:
                vec = self._example_vector(ref, snap, reader)
                if len(query.concepts) + len(query.like) == 1:  # one example: FAISS top-k is enough
                    ids, sims = vectors.search(vec, query.k)
                    return self._hits(reader, ids, sims, None)
                labels.append(f"like:{ref}")
                columns.append(snap.embeddings @ vec)
                weights.append(weight)
            if not len(snap.ids):
                return []
            fused = fusion.combsum(columns, weights, normalise)
            rows = fusion.top_k(fused, query.k)
            why = [{lab: float(col[r]) for lab, col in zip(labels, columns, strict=True)} for r in rows]
            return self._hits(reader, snap.ids[rows], fused[rows], why if explain else None)

    def info(self) -> dict:
        """Counts of media, segments and concepts, the model, disk use, and every recorded error."""
        store = self._store()
        counts = store.counts()
        return {
            "index": str(self.index_dir),
            **counts,
            "models": [store.meta("model")],
            "embed_dim": int(store.meta("embed_dim") or 0),
            "disk_bytes": store.disk_bytes(),
            "errors": store.errors(),
        }

    def concepts(self, text: str | None = None, limit: int | None = None) -> list[Concept]:
        """The concept vocabulary, or the concepts matching `text`."""
        return self.vocabulary.search(text, limit)

    def embed_image(self, path: str | os.PathLike) -> np.ndarray:
        """The L2-normalised embedding of an image file that need not be in the index."""
        backbone = self._get_backbone()
        decoded = read_media(os.fspath(path), None, backbone.data_config, self.config)
        if decoded.kind != "image":
            raise QueryError(f"{path}: only images that are not indexed can be used as examples")
        _, emb = self._get_runtime().run(np.stack(decoded.segments[0].frames))
        return emb[0]

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # ---- internals -----------------------------------------------------------------------------
    def _store(self) -> Store:
        if self._reader is None:
            self._reader = Store.open(self.index_dir)
        return self._reader

    def _arrays(self) -> tuple[Snapshot, VectorIndex]:
        """The committed arrays and vector index, reloaded only when the store's generation changed."""
        store = self._store()
        if self._cache is None or self._cache[0].generation != store.generation:
            snap = store.snapshot()
            self._cache = (snap, VectorIndex(snap.embeddings, snap.ids, self.vector_index))
        return self._cache

    def _concept_column(self, snap: Snapshot, name: str) -> np.ndarray:
        return rank.concept_column(snap.scores, self.vocabulary.resolve(name).classes)

    def _example_vector(self, ref: int | str, snap: Snapshot, store: Store) -> np.ndarray:
        if isinstance(ref, int):
            row = snap.row_of(ref)
            if row is None:
                raise QueryError(f"no segment with id {ref} in the index")
            return snap.embeddings[row]
        path = os.path.abspath(os.path.expanduser(ref))
        rows = [r for r in (snap.row_of(i) for i in store.segment_ids_of(path)) if r is not None]
        if rows:  # an indexed file: its stored embedding (mean over its segments)
            vec = snap.embeddings[rows].mean(axis=0)
            return vec / max(float(np.linalg.norm(vec)), 1e-12)
        if not os.path.isfile(path):
            raise QueryError(f"--like {ref!r} is neither a segment id nor a readable file")
        try:
            return self.embed_image(path)
        except MediaError as exc:
            raise QueryError(f"--like {ref!r}: {exc}") from None

    def _hits(self, store: Store, ids, scores, why) -> list[Hit]:
        details = store.segments(ids)
        hits = []
        for i, (sid, score) in enumerate(zip(ids, scores, strict=True)):
            d = details.get(int(sid))
            if d is None:  # removed since the snapshot was taken
                continue
            hits.append(Hit(int(sid), d["path"], d["start"], d["end"], float(score), d["kind"], d["media_id"],
                            why[i] if why else None))
        return hits

    def _get_backbone(self):
        if self._backbone is None:
            from mmindex.models import create_model

            self._backbone = create_model(self.config.model)
        return self._backbone

    def _get_runtime(self):
        if self._runtime is None:
            from mmindex.models import Runtime

            self._runtime = Runtime(self._get_backbone(), engine=self.config.engine, threads=self.config.threads)
        return self._runtime

