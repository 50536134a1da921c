"""The engine facade: one object through which the CLI, the Python API and the HTTP API index and search.

    >>> from mmindex import Engine
    >>> engine = Engine("~/photos.mmindex")
    >>> engine.add(["~/Pictures"])
    >>> [h.path for h in engine.search(concepts=["espresso"], k=3)]
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from mmindex.concepts import Concept, Vocabulary
from mmindex.config import IngestConfig, default_index_dir
from mmindex.errors import ClusterError, IndexDamaged, MediaError, QueryError, StoreError
from mmindex.extract.reader import read_media
from mmindex.index import vectors
from mmindex.index.arrays import concept_column
from mmindex.index.ingest import AddReport, ProgressFn, add_paths
from mmindex.index.store import Snapshot, Store
from mmindex.index.vectors import Base, VectorIndex, check_matches, check_setting, load_base
from mmindex.search import fusion, rank
from mmindex.search.feedback import FeedbackParams, QuerySpec, SavedQueries, refine
from mmindex.search.query import Query

log = logging.getLogger(__name__)


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
    parts: dict[str, float] | None = field(default=None)  # on request: each criterion's share of `score`

    def to_dict(self) -> dict:
        """The JSON form (`search --json`, the HTTP API); `why` and `parts` only when set."""
        # Not dataclasses.asdict: it deep-copies every field, and the service calls this for every hit.
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("why", "parts"):
            if d[key] is None:
                del d[key]
        return d


class Results(list):
    """Hits, best first (a plain list), with `explanation`: the fusion, each criterion and its weight, and
    for a text criterion the concepts it was mapped to; and `message`: why there are no hits, when a
    text query matched no concept (an empty result, never the top of a random ranking)."""

    def __init__(self, hits: Iterable[Hit] = (), explanation: dict | None = None, message: str | None = None):
        super().__init__(hits)
        self.explanation = explanation or {}
        self.message = message


class Engine:
    """Index and search one index directory.

    Reading needs no lock and sees only committed batches; `add` and `remove` take the index's
    writer lock for their duration (a second writer gets `IndexLocked`).
    """

    def __init__(
        self,
        index: str | os.PathLike | None = None,
        config: IngestConfig | None = None,
        vector_index: str | None = None,
        text_encoder: str | None = None,
    ):
        """`vector_index` is the vector-index setting ("flat", "hnsw", "ivfpq" or a FAISS factory string, see
        mmindex.index.vectors): recorded when `add` creates the index (default "flat"), and checked against
        the recorded one otherwise (VectorIndexError if they differ); None takes the index's own.
        `text_encoder` names the encoder of free-text queries (mmindex.text; default "minilm")."""
        from mmindex.text import DEFAULT_TEXT_ENCODER

        self.text_encoder = text_encoder or DEFAULT_TEXT_ENCODER
        self._banks: dict = {}
        self.feedback_params = FeedbackParams()
        self.index_dir = Path(index).expanduser() if index is not None else default_index_dir()
        self.config = config or IngestConfig()
        self.vector_index = vector_index
        self._base_vocabulary = Vocabulary.imagenet()
        self._trained_vocabulary: tuple[int, Vocabulary] | None = None  # (store generation, vocabulary)
        self._extra_columns: tuple[int, tuple] | None = None  # (generation, the bank's non-ImageNet columns)
        self._local = threading.local()  # each thread's read-only Store: searches run in parallel threads
        self._readers: list[Store] = []
        self._cache: tuple[Snapshot, VectorIndex] | None = None
        self._base: Base | None = None  # the mapped vector-index file, kept while the store still names it
        self._runtime = None
        self._backbone = None
        self._lock = threading.Lock()  # guards the cached arrays
        self._model_lock = threading.Lock()  # guards loading the image model and the text concept banks

    # ---- writing -------------------------------------------------------------------------------
    def add(self, paths: Iterable[str | os.PathLike], progress: ProgressFn | None = None,
            confine_to: Iterable[str] | None = None) -> AddReport:
        """Index files and folders (recursively). Unchanged files are skipped; bad files are recorded.

        With `confine_to` (folders), symbolic links whose real path lies outside them are not followed
        but recorded as errors (the HTTP API passes its media roots).
        """
        # The writer lock comes first: a locked index is reported at once, not after importing the model.
        name = self.config.model
        if Store.exists(self.index_dir) and not Store.unfinished(self.index_dir):
            store = Store.open(self.index_dir, write=True)
        else:
            from mmindex.models import model_info

            embed_dim = model_info(name)["embed_dim"]
            setting = check_setting(self.vector_index or "flat", embed_dim)
            concepts = [(c.id, c.name, c.source) for c in self.vocabulary.classes]
            store = Store.create(self.index_dir, name, embed_dim, concepts, vector_index=setting)
        with store:
            built_with = store.meta("model")
            if built_with != name:
                raise StoreError(f"index {self.index_dir} was built with model {built_with!r}, not {name!r}")
            check_matches(store.meta("vector_index"), self.vector_index)
            if progress:
                progress(0, 0)  # the index is ours: work starts (the total is not known before the scan)
            backbone = self._get_backbone()
            if self.config.executor == "ray":
                from mmindex.index.ray_ingest import add_paths_ray

                report = add_paths_ray(store, paths, self.config, backbone.data_config, progress, confine_to)
            elif self.config.executor == "local":
                report = add_paths(store, paths, self.config, self._get_runtime, backbone.data_config, progress,
                                   confine_to)
            else:
                raise ClusterError(f"unknown executor {self.config.executor!r}; choose local or ray")
            from mmindex.index.compact import compact, worth_compacting

            # Even when nothing was new: a run killed before its compaction left the files for this one.
            try:  # upkeep: every batch is committed by now, and searches work without it
                compacting = worth_compacting(store, self.config.auto_compact)
                if compacting:
                    merged = compact(store)
                    report.compacted = merged.files_before - merged.files_after
                if report.added or report.updated or compacting:
                    vectors.update(store, store.snapshot(), drop_dead=bool(report.compacted))
            except StoreError as exc:
                if isinstance(exc, IndexDamaged):
                    raise
                report.warnings.append(f"every file was committed, but the upkeep after it failed: {exc}")
            return report

    def apply(self, detector: str | os.PathLike, name: str | None = None) -> dict:
        """Score every segment with a trained detector bundle and add its labels as concepts (source "trained").

        Media added later are scored by it too. Returns {name, concepts: [{id, name, query}], segments,
        replaced}, where `query` is the name that resolves to the concept (the label, or "detector:label"
        when the label already names another concept). Raises `DetectorError` if it does not fit the index.
        """
        from mmindex.index import detectors

        with Store.open(self.index_dir, write=True) as store:
            report = detectors.apply(store, detector, name)
        vocabulary = self.vocabulary
        report["concepts"] = [
            {"id": cid, "name": label, "query": label if vocabulary.resolve(label).id == cid else cid}
            for cid, label in report["concepts"]]
        return report

    def remove(self, paths: Iterable[str | os.PathLike]) -> int:
        """Remove media by file path, or all media under a folder. Returns how many were removed."""
        with Store.open(self.index_dir, write=True) as store:
            removed = store.remove(os.path.abspath(os.fspath(p)) for p in paths)
            if removed:
                vectors.update(store, store.snapshot())
            return removed

    def compact(self, target_rows: int | None = None, progress: ProgressFn | None = None) -> dict:
        """Merge small batch files and drop dead rows (see mmindex.index.compact), then fold the vector
        index's pending changes and tombstones into a new file. Returns the CompactReport's fields and the
        vector index's {"action", "factory", "vectors"} under "vector_index"."""
        from dataclasses import asdict

        from mmindex.index.compact import DEFAULT_TARGET_ROWS, compact

        with Store.open(self.index_dir, write=True) as store:
            check_matches(store.meta("vector_index"), self.vector_index)
            report = asdict(compact(store, target_rows or DEFAULT_TARGET_ROWS, progress))
            report["vector_index"] = vectors.update(store, store.snapshot(), drop_dead=True)
            return report

    def rebuild(self, vector_index: str | None = None, progress: ProgressFn | None = None) -> dict:
        """Rebuild the vector index from the stored embeddings, with a new setting if given (then queries must
        ask for it, or for nothing). Returns {"action", "factory", "vectors", "seconds"}."""
        import time

        t0 = time.perf_counter()
        with Store.open(self.index_dir, write=True) as store:
            setting = check_setting(vector_index, int(store.meta("embed_dim") or 0)) if vector_index else None
            report = vectors.update(store, store.snapshot(), setting=setting, rebuild=True, progress=progress)
        if vector_index:
            self.vector_index = vector_index
        return {**report, "seconds": time.perf_counter() - t0}

    # ---- reading -------------------------------------------------------------------------------
    def search(
        self,
        concepts: Sequence[str] = (),
        like: Sequence[int | str] = (),
        k: int = 10,
        explain: bool = False,
        normalise: str = "minmax",
        text: str | Sequence[str] = (),
        fusion_method: str = "combsum",
        remember: bool = True,
    ) -> Results:
        """Rank segments by concept expressions, free texts and/or examples (segment ids or image paths),
        fused by `fusion_method` ("combsum", "wsum", "combmnz", "rrf"; see search/fusion.py).

        Raises QueryError or UnknownConcept for malformed queries. `remember` keeps the query as the
        index's last query, which `feedback` refines.
        """
        texts = [text] if isinstance(text, str) else list(text)
        spec = QuerySpec([str(c) for c in concepts], [str(r) for r in like], texts, k, normalise, fusion_method,
                         self.text_encoder)
        result = self._run(spec, explain)
        if remember:
            SavedQueries(self.index_dir).set_last(spec)
        return result

    def _run(self, spec: QuerySpec, explain: bool, judged: bool = False) -> Results:
        """Run a query spec; with `judged`, refine it by its relevance judgments (see feedback.py)."""
        query = Query.build(spec.concepts, spec.like, spec.k, spec.text)
        if spec.fusion not in fusion.FUSION_METHODS:
            raise QueryError(f"unknown fusion method {spec.fusion!r}; choose from {', '.join(fusion.FUSION_METHODS)}")
        # Only the cached arrays need the lock (a reload replaces them); the arrays are immutable and each
        # thread has its own SQLite reader, so the ranking itself runs in parallel (NumPy and FAISS free the GIL).
        with self._lock:
            snap, nearest = self._arrays()
        reader = self.reader()
        labels, columns, weights, mapped = [], [], [], []
        for text, node, weight in query.concepts:
            for name in rank.term_names(node):
                self.vocabulary.resolve(name)  # unknown names fail before any work is done
            labels.append(text)
            columns.append(rank.expression_scores(node, lambda n: self._concept_column(snap, n)))
            weights.append(weight)
        for text, weight in query.text:
            mapping = self._bank(spec.text_encoder, reader, snap).map(text)
            mapped.append(mapping)
            if not mapping.concepts:
                return Results([], self._explanation(spec, query, mapped), mapping.reason)
            labels.append(f"text:{mapping.text}")
            columns.append(mapping.scores(snap.scores))
            weights.append(weight)
        explanation = self._explanation(spec, query, mapped)
        for ref, weight in query.like:
            vec = self._example_vector(ref, snap, reader)
            if len(labels) + len(query.like) == 1 and not judged:  # one example: FAISS top-k is enough
                ids, sims = nearest.search(vec, query.k)
                return Results(self._hits(reader, ids, sims, None), explanation)
            labels.append(f"like:{ref}")
            columns.append(snap.embeddings @ vec)
            weights.append(weight)
        if not len(snap.ids):
            return Results([], explanation)
        fused, parts = fusion.fuse(columns, weights, spec.fusion, spec.normalise)
        part_labels = labels
        if judged:
            fused, parts, part_labels, keep = self._refine(spec, snap, fused)
            fused = np.where(keep, fused, -np.inf)
        rows = fusion.top_k(fused, query.k)
        rows = rows[np.isfinite(fused[rows])]
        why = [self._why(r, labels, columns, mapped, snap, part_labels, parts) for r in rows] if explain else None
        return Results(self._hits(reader, snap.ids[rows], fused[rows], why), explanation)

    def feedback(self, positive: Sequence[int] = (), negative: Sequence[int] = (), k: int | None = None,
                 explain: bool = False, name: str | None = None) -> Results:
        """Refine the last query (or the saved query `name`) with relevance judgments on segment ids.

        Judgments add up over rounds; segments already judged are not shown again. The refined query,
        with all its judgments, becomes the last query (save it with `save_query`). QueryError for ids
        not in the index, or when there is no query to refine.
        """
        saved = SavedQueries(self.index_dir)
        spec = saved.get(name) if name else saved.last()
        ids = [int(i) for i in (*positive, *negative)]
        if not ids:
            raise QueryError("feedback needs at least one --positive or --negative segment id")
        with self._lock:
            snap, _ = self._arrays()
        missing = [i for i in ids if snap.row_of(i) is None]
        if missing:
            raise QueryError(f"segment ids not in the index: {', '.join(map(str, missing))}")
        spec = spec.judge(positive, negative)
        if k is not None:
            spec.k = k
        result = self._run(spec, explain, judged=True)
        saved.set_last(spec)
        return result

    def save_query(self, name: str) -> QuerySpec:
        """Save the last query (with its judgments) under `name`, to re-run with `run_saved`."""
        saved = SavedQueries(self.index_dir)
        spec = saved.last()
        saved.save(name, spec)
        return spec

    def saved_queries(self) -> dict[str, QuerySpec]:
        """The saved queries of this index, by name."""
        return SavedQueries(self.index_dir).all()

    def delete_saved(self, name: str) -> None:
        SavedQueries(self.index_dir).delete(name)

    def run_saved(self, name: str, k: int | None = None, explain: bool = False) -> Results:
        """Run a saved query again on the current index (with its judgments, if it has any)."""
        spec = SavedQueries(self.index_dir).get(name)
        if k is not None:
            spec.k = k
        return self._run(spec, explain, judged=bool(spec.positive or spec.negative))

    def run_spec(self, spec: QuerySpec, explain: bool = False) -> Results:
        """Run a query spec as given, with its judgments if it has any, touching no saved query.

        For callers that keep the query themselves (the HTTP API: one index, many users, no shared "last query").
        """
        return self._run(spec, explain, judged=bool(spec.positive or spec.negative))

    def info(self) -> dict:
        """Counts of media, segments and concepts, the model, batch files, the vector index, memory and disk
        use, and every recorded error.

        Loads the arrays and the vector index as a search would, so `memory` is what searching costs:
        `rss_bytes` this process's resident memory, `mapped_bytes` the files mapped (shared with the page
        cache), `resident_bytes` what the arrays and indexes hold in this process's own memory.
        """
        store = self.reader()
        counts = store.counts()
        with self._lock:
            snap, index = self._arrays()
        described = index.describe()
        file_bytes = (self.index_dir / vectors.FOLDER / described["file"]).stat().st_size if described["file"] else 0
        index_mapped = file_bytes if described["mapped"] else 0
        return {
            "index": str(self.index_dir),
            **counts,
            "models": [store.meta("model")],
            "embed_dim": int(store.meta("embed_dim") or 0),
            "batch_files": store.batch_files(),
            "vector_index": {"setting": store.meta("vector_index") or "flat", **described, "file_bytes": file_bytes},
            "memory": {"rss_bytes": _rss_bytes(), "mapped_bytes": snap.mapped_bytes() + index_mapped,
                       "resident_bytes": snap.resident_bytes() + len(index.pending) * snap.embeddings.shape[1] * 4
                       + (0 if described["mapped"] else file_bytes)},
            "disk": store.disk_usage(),
            "disk_bytes": store.disk_bytes(),
            "errors": store.errors(),
        }

    def health(self) -> str | None:
        """None when the index can be searched, else what is damaged. Cheap: it reads what every search reads
        (the database and the batch files' headers, cached until the next commit), not the checksums."""
        try:
            self.reader().counts()
            with self._lock:
                self._arrays()
            return None
        except IndexDamaged as exc:
            return exc.what
        except sqlite3.DatabaseError as exc:
            return f"index.sqlite: {exc}"

    def check(self) -> list:
        """Every problem of the index, damage first (`mmindex.index.check.Problem`); reads only."""
        from mmindex.index.check import check

        return check(self.index_dir)

    def repair(self) -> list[str]:
        """Mend the index (see `mmindex.index.check.repair`); returns what was done, one line each."""
        from mmindex.index.check import repair

        self.close()  # drop cached readers and arrays: repair may replace the files they map
        self._cache, self._base = None, None
        return repair(self.index_dir)

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
        with self._lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
            self._local = threading.local()

    @property
    def vocabulary(self) -> Vocabulary:
        """ImageNet classes + WordNet nodes + this index's trained concepts: every concept name resolves here.

        A trained concept's names are its label and "detector:label"; on a clash the existing concept
        keeps the plain name (see `Vocabulary.extended`). Rebuilt only when the index's detectors change.
        """
        if not Store.exists(self.index_dir):
            return self._base_vocabulary
        store = self.reader()
        generation = store.generation  # one small read; the concept table is read only when it changed
        if self._trained_vocabulary is None or self._trained_vocabulary[0] != generation:
            trained = [c for c in store.concept_columns() if c[3] == "trained"]
            extra = [Concept(cid, label, tuple(dict.fromkeys((label, cid))), f"trained detector {cid.split(':')[0]}",
                             "trained", (col,)) for col, cid, label, _ in trained]
            self._trained_vocabulary = (generation, self._base_vocabulary.extended(extra) if extra
                                        else self._base_vocabulary)
        return self._trained_vocabulary[1]

    # ---- internals -----------------------------------------------------------------------------
    def reader(self) -> Store:
        """This thread's read-only Store (opened on first use; `close` closes them all): searches and
        service requests run in parallel threads, each on its own SQLite connection."""
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = self._local.reader = Store.open(self.index_dir)
            self._readers.append(reader)  # list.append is atomic; not under _lock, which _arrays() holds
        return reader

    def _arrays(self) -> tuple[Snapshot, VectorIndex]:
        """The committed arrays and vector index, reloaded only when the store's generation changed.

        The vector-index file is mapped once and kept while the store names it; segments committed since
        it was written are searched exactly in memory, removed ones are filtered out (see vectors.py).
        """
        store = self.reader()
        if self._cache is None or self._cache[0].generation != store.generation:
            check_matches(store.meta("vector_index"), self.vector_index)
            for _attempt in range(5):
                snap = store.snapshot()
                try:
                    if self._base is None or self._base.file != snap.vector_file:
                        self._base = load_base(self.index_dir, snap.vector_file, store.meta("vector_factory"))
                    break
                except FileNotFoundError as exc:
                    if store.generation == snap.generation:  # gone for good, not replaced by a writer
                        self._base = self._damaged_vectors(IndexDamaged(self.index_dir, f"{exc.filename} is missing"))
                        break
                    continue  # replaced by a writer since this snapshot: take a new one
                except IndexDamaged as exc:
                    self._base = self._damaged_vectors(exc)
                    break
            else:
                raise StoreError("index changed too often while reading; try again")
            self._cache = (snap, VectorIndex(snap.embeddings, snap.ids, base=self._base, build=False))
        return self._cache

    @staticmethod
    def _damaged_vectors(exc: IndexDamaged) -> None:
        """The vector index is derived from the stored embeddings: search them exactly until it is rebuilt."""
        log.warning("%s; searching the stored embeddings exactly until `mmindex repair` rebuilds it", exc)
        return None

    def _bank(self, encoder: str | None, store: Store, snap: Snapshot):
        """The concept bank of an encoder over this index's concept columns (built once, cached on disk)."""
        from mmindex.text import create_text_encoder
        from mmindex.text.bank import ConceptBank, entries_from_vocabulary

        encoder = encoder or self.text_encoder
        if self._extra_columns is None or self._extra_columns[0] != snap.generation:  # read once per change
            self._extra_columns = (snap.generation, tuple(
                c for c in store.concept_columns() if c[3] != "imagenet" and c[0] < snap.scores.shape[0]))
        extra = self._extra_columns[1]
        key = (encoder, extra)
        with self._model_lock:  # built once, even when parallel searches ask for it together
            if key not in self._banks:
                self._banks[key] = ConceptBank(entries_from_vocabulary(self.vocabulary, extra),
                                               create_text_encoder(encoder))
        return self._banks[key]

    def _explanation(self, spec: QuerySpec, query: Query, mapped: list) -> dict:
        criteria = [{"label": t, "kind": "concept", "weight": w} for t, _, w in query.concepts]
        criteria += [{"label": f"text:{m.text}", "kind": "text", "weight": w, "encoder": spec.text_encoder,
                      **m.to_dict()} for m, (_, w) in zip(mapped, query.text, strict=False)]
        criteria += [{"label": f"like:{r}", "kind": "like", "weight": w} for r, w in query.like]
        out = {"fusion": spec.fusion, "normalise": spec.normalise, "criteria": criteria}
        if spec.positive or spec.negative:
            out["feedback"] = {"positive": spec.positive, "negative": spec.negative,
                               "params": vars(self.feedback_params)}
        return out

    @staticmethod
    def _why(row, labels, columns, mapped, snap, part_labels, parts) -> tuple[dict, dict]:
        """Each criterion's raw score (and each text concept's w·p) and each criterion's share of the score."""
        why = {lab: float(col[row]) for lab, col in zip(labels, columns, strict=True)}
        for m in mapped:
            for c in m.concepts:
                why[f"text:{m.text} > {c.name}"] = c.weight * float(concept_column(snap.scores[:, row:row + 1],
                                                                                        c.columns)[0])
        return why, {lab: float(p[row]) for lab, p in zip(part_labels, parts, strict=True)}

    def _refine(self, spec: QuerySpec, snap: Snapshot, base: np.ndarray):
        """Feedback scores, their parts, and which rows may be shown (not yet judged)."""
        pos = np.array([r for r in map(snap.row_of, spec.positive) if r is not None], dtype=np.int64)
        neg = np.array([r for r in map(snap.row_of, spec.negative) if r is not None], dtype=np.int64)
        fused, parts = refine(base, snap.embeddings, pos, neg, self.feedback_params)
        keep = np.ones(len(fused), dtype=bool)
        keep[np.concatenate([pos, neg])] = False
        return fused, list(parts.values()), list(parts), keep

    def _concept_column(self, snap: Snapshot, name: str) -> np.ndarray:
        return concept_column(snap.scores, self.vocabulary.resolve(name).classes)

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
            w, p = why[i] if why else (None, None)
            hits.append(Hit(int(sid), d["path"], d["start"], d["end"], float(score), d["kind"], d["media_id"], w, p))
        return hits

    def _get_backbone(self):
        if self._backbone is None:
            from mmindex.models import create_model

            self._backbone = create_model(self.config.model)
        return self._backbone

    def _get_runtime(self):
        with self._model_lock:  # searches run in parallel threads: load the model once
            if self._runtime is None:
                from mmindex.models import Runtime

                self._runtime = Runtime(self._get_backbone(), engine=self.config.engine, threads=self.config.threads)
        return self._runtime


def _rss_bytes() -> int:
    """This process's resident memory (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
