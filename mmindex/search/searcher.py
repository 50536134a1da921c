"""The searcher: a query's rankers over the committed arrays, fused into hits (the reading half of `Engine`).

    spec ──▶ rankers (concept expressions, texts, examples) ──▶ fusion ──▶ [feedback] ──▶ top k ──▶ hits

Reading needs no lock and sees only committed batches. Each thread has its own SQLite reader; the mapped
arrays and the vector index are shared and reloaded only when the store's generation changes.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmindex.concepts import Concept, Vocabulary
from mmindex.config import IngestConfig
from mmindex.errors import IndexDamaged, MediaError, QueryError, StoreError
from mmindex.extract.reader import read_media
from mmindex.index.snapshot import Snapshot
from mmindex.index.store import Store
from mmindex.index.vectors import Base, VectorIndex, check_matches, load_base
from mmindex.models.loader import LazyModel
from mmindex.search import active, fusion, temporal
from mmindex.search.feedback import FeedbackParams, SavedQueries, refine
from mmindex.search.fused import FusedColumns
from mmindex.search.hits import Results, make_hits
from mmindex.search.info import describe
from mmindex.search.query import Query
from mmindex.search.rank import ConceptRanker, ExampleRanker, Ranker, TextRanker
from mmindex.search.requests import QuerySpec

log = logging.getLogger(__name__)


class Searcher:
    """Search one index directory: rank, fuse, refine by feedback, and describe the index."""

    def __init__(self, index_dir: Path, config: IngestConfig, model: LazyModel, vector_index: str | None = None,
                 text_encoder: str | None = None):
        from mmindex.text import DEFAULT_TEXT_ENCODER  # deferred: the text encoders load transformers

        self.index_dir, self.config, self.model = index_dir, config, model
        self.vector_index = vector_index
        self.text_encoder = text_encoder or DEFAULT_TEXT_ENCODER
        self.feedback_params = FeedbackParams()
        self._banks: dict = {}
        self._base_vocabulary = Vocabulary.imagenet()
        self._trained_vocabulary: tuple[int, Vocabulary] | None = None  # (store generation, vocabulary)
        self._extra_columns: tuple[int, tuple] | None = None  # (generation, the bank's non-ImageNet columns)
        self._local = threading.local()  # each thread's read-only Store: searches run in parallel threads
        self._readers: list[Store] = []
        self._cache: tuple[Snapshot, VectorIndex] | None = None
        self._base: Base | None = None  # the mapped vector-index file, kept while the store still names it
        self._lock = threading.Lock()  # guards the cached arrays
        self._bank_lock = threading.Lock()  # guards building the text concept banks
        self._fused = FusedColumns()  # fused queries with examples: the exact top k, fast (search/fused.py)
        self._timelines = temporal.Timelines()  # shot times by video, for temporal queries and --group video

    def search(self, concepts: Sequence[str] = (), like: Sequence[int | str] = (), k: int = 10, explain: bool = False,
               normalise: str = "minmax", text: str | Sequence[str] = (), fusion_method: str = "combsum",
               remember: bool = True, then: Sequence[str] = (), within: float = temporal.DEFAULT_WITHIN,
               group: str = "segment") -> Results:
        """See `Engine.search`."""
        texts = [text] if isinstance(text, str) else list(text)
        spec = QuerySpec([str(c) for c in concepts], [str(r) for r in like], texts, k, normalise, fusion_method,
                         self.text_encoder, then=[str(s) for s in then], within=within, group=group)
        result = self._run(spec, explain)
        if remember:
            SavedQueries(self.index_dir).set_last(spec)
        return result

    def _rankers(self, spec: QuerySpec, query: Query, snap: Snapshot, reader: Store) -> tuple[list[Ranker], str | None]:
        """The query's rankers, in the order concepts, texts, examples; and why there can be no hits (a text
        that maps to no concept), in which case the rankers after it are left out."""
        vocabulary = self.vocabulary
        rankers: list[Ranker] = [ConceptRanker(t, node, w, vocabulary) for t, node, w in query.concepts]
        for text, weight in query.text:
            mapping = self._bank(spec.text_encoder, reader, snap).map(text)
            rankers.append(TextRanker(mapping, weight, spec.text_encoder))
            if not mapping.concepts:
                return rankers, mapping.reason
        rankers += [ExampleRanker(ref, self._example_vector(ref, snap, reader), w) for ref, w in query.like]
        return rankers, None

    def _steps(self, spec: QuerySpec, snap: Snapshot, reader: Store) -> tuple[list[Ranker], str | None]:
        """A temporal query's later steps: one ranker each (a query of one criterion), and why there can be no hits."""
        steps: list[Ranker] = []
        for kind, value in map(temporal.parse_step, spec.then):
            one = {"concept": ([value], [], []), "like": ([], [value], []), "text": ([], [], [value])}[kind]
            rankers, no_hits = self._rankers(QuerySpec(text_encoder=spec.text_encoder),
                                             Query.build(one[0], one[1], 1, one[2]), snap, reader)
            steps += rankers
            if no_hits:
                return steps, no_hits
        return steps, None

    def _run(self, spec: QuerySpec, explain: bool, judged: bool = False) -> Results:
        """Run a query spec; with `judged`, refine it by its relevance judgments (see feedback.py)."""
        query = Query.build(spec.concepts, spec.like, spec.k, spec.text)
        temporal.check_steps(spec.then, True, spec.within)
        for name, value, known in (("fusion method", spec.fusion, fusion.FUSION_METHODS),
                                   ("group", spec.group, temporal.GROUPS)):
            if value not in known:
                raise QueryError(f"unknown {name} {value!r}; choose from {', '.join(known)}")
        # Only the cached arrays need the lock (a reload replaces them); the arrays are immutable and each
        # thread has its own SQLite reader, so the ranking itself runs in parallel (NumPy and FAISS free the GIL).
        whole = judged or bool(spec.then) or spec.group != "segment"  # every segment's fused score is needed
        single = len(query.like) == 1 and not query.concepts and not query.text and not whole
        with self._lock:
            snap, nearest = self._arrays(vectors=single)  # only one example's query reads the vector index
        reader = self.reader()
        rankers, no_hits = self._rankers(spec, query, snap, reader)
        steps, no_hits = self._steps(spec, snap, reader) if not no_hits else ([], no_hits)
        explanation = self._explanation(spec, rankers, query, steps)
        if no_hits:
            return Results([], explanation, no_hits)
        if single and len(rankers) == 1 and isinstance(rankers[0], ExampleRanker):
            ids, sims = rankers[0].nearest(nearest, query.k)  # one example: the vector index's top k is enough
            return Results(make_hits(reader, ids, sims), explanation)
        if not len(snap.ids):
            return Results([], explanation)
        # `at`: the snapshot row of each row of the columns (fused.py may fuse only the rows the top k depends on)
        columns, at = (([r.scores(snap) for r in rankers], None) if whole  # feedback, chains, grouping read all
                       else self._fused.columns(rankers, snap, query.k, spec.fusion, spec.normalise))
        fused, parts = fusion.fuse(columns, [r.weight for r in rankers], spec.fusion, spec.normalise)
        part_labels = [r.label for r in rankers]
        if judged:
            fused, parts, part_labels, keep = self._refine(spec, snap, fused)
            fused = np.where(keep, fused, -np.inf)
        rows, scores, then, matches = temporal.ranking(self._timelines, spec, snap, reader, fused, steps)
        found = rows if at is None else at[rows]
        why = None
        if explain:  # each criterion's raw score (and a text's concepts' w·p), and its share of the score
            why = [({**{r.label: float(c[row]) for r, c in zip(rankers, columns, strict=True)},
                     **{k: v for r in rankers for k, v in r.why(snap, int(seg)).items()}},
                    {lab: float(p[row]) for lab, p in zip(part_labels, parts, strict=True)})
                   for row, seg in zip(rows, found, strict=True)]
        return Results(make_hits(reader, snap.ids[found], scores, why, then, matches), explanation)

    def _explanation(self, spec: QuerySpec, rankers: list[Ranker], query: Query, steps: list[Ranker]) -> dict:
        criteria = [r.explain() for r in rankers if not isinstance(r, ExampleRanker)]
        criteria += [{"label": f"like:{r}", "kind": "like", "weight": w} for r, w in query.like]
        out = {"fusion": spec.fusion, "normalise": spec.normalise, "criteria": criteria}
        if spec.then:
            out["then"] = {"within": spec.within, "steps": [r.explain() for r in steps]}
        if spec.group != "segment":
            out["group"] = spec.group
        if spec.positive or spec.negative:
            out["feedback"] = {"positive": spec.positive, "negative": spec.negative,
                               "params": vars(self.feedback_params)}
        return out

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
            snap, _ = self._arrays(vectors=False)
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
        """Counts, the model, batch files, the vector index, memory and disk use, every recorded error: see
        `search/info.py`. Loads the arrays and the vector index as a search would."""
        store = self.reader()
        with self._lock:
            snap, index = self._arrays()
        return describe(self.index_dir, store, snap, index, self.detectors())

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

    def concepts(self, text: str | None = None, limit: int | None = None) -> list[Concept]:
        """The concept vocabulary (the index's trained concepts first), or the concepts matching `text`."""
        found = self.vocabulary.search(text, None if text is None or not text.strip() else limit)
        if text is None or not text.strip():
            found = [c for c in found if c.source == "trained"] + [c for c in found if c.source != "trained"]
        return found[:limit]

    def detectors(self) -> list[dict]:
        """The detectors applied to or taught in the index (see `Store.detector_list`), each with the judgments
        of its name: {"positive": n, "negative": n}."""
        if not Store.exists(self.index_dir):
            return []
        store = self.reader()
        judged = store.judged_concepts()
        return [{**d, "details": json.loads(d["details"]) if d["details"] else None,
                 "judgments": dict(zip(("positive", "negative"), judged.get(d["name"], (0, 0)), strict=True))}
                for d in store.detector_list()]

    def label(self, name: str, n: int = 20, strategy: str = "uncertain", seed: int = 0) -> dict:
        """See `Engine.label` (search/active.py chooses)."""
        with self._lock:
            snap, _ = self._arrays(vectors=False)
        return active.propose(self.reader(), snap, self.vocabulary, name, n, strategy, seed)

    def last_judgments(self) -> tuple[list[int], list[int]]:
        """(positive, negative) segment ids judged on the last query (`mmindex feedback`); `QueryError` if none."""
        spec = SavedQueries(self.index_dir).last()
        if not spec.positive and not spec.negative:
            raise QueryError("the last query has no judgments: mark hits with `mmindex feedback` first")
        return list(spec.positive), list(spec.negative)

    def embed_image(self, path: str | os.PathLike) -> np.ndarray:
        """The L2-normalised embedding of an image file that need not be in the index."""
        decoded = read_media(os.fspath(path), None, self.model.data_config, self.config)
        if decoded.kind != "image":
            raise QueryError(f"{path}: only images that are not indexed can be used as examples")
        _, emb = self.model.runtime.run(np.stack(decoded.segments[0].frames))
        return emb[0]

    def close(self) -> None:
        with self._lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
            self._local = threading.local()
            self._cache, self._base, self._fused = None, None, FusedColumns()  # unmapped once nothing holds them

    @property
    def vocabulary(self) -> Vocabulary:
        """ImageNet classes + WordNet nodes + this index's trained concepts: every concept name resolves here.

        A trained concept's names are its label and "detector:label"; on a clash the user's concept takes the
        plain name and the built-in one stays reachable as "wordnet:NAME" or by its WordNet id (see
        `Vocabulary.extended`). Rebuilt only when the index's detectors change.
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

    def _arrays(self, vectors: bool = True) -> tuple[Snapshot, VectorIndex]:
        """The committed arrays and vector index, reloaded only when the store's generation changed.

        The vector-index file is mapped once and kept while the store names it; segments committed since
        it was written are searched exactly in memory, removed ones are filtered out (see vectors.py). Without
        `vectors` the index may be None: a query without a single example never loads it (nor FAISS).
        """
        store = self.reader()
        cached = self._cache if self._cache is not None and self._cache[0].generation == store.generation else None
        if cached is None or vectors and cached[1] is None:
            check_matches(store.meta("vector_index"), self.vector_index)
            for _attempt in range(5):
                snap = cached[0] if cached is not None else store.snapshot()
                if not vectors:
                    break
                try:
                    if self._base is None or self._base.file != snap.vector_file:
                        self._base = load_base(self.index_dir, snap.vector_file, store.meta("vector_factory"))
                    break
                except FileNotFoundError as exc:
                    if store.generation == snap.generation:  # gone for good, not replaced by a writer
                        self._base = self._damaged_vectors(IndexDamaged(self.index_dir, f"{exc.filename} is missing"))
                        break
                    cached = None
                    continue  # replaced by a writer since this snapshot: take a new one
                except IndexDamaged as exc:
                    self._base = self._damaged_vectors(exc)
                    break
            else:
                raise StoreError("index changed too often while reading; try again")
            self._cache = (snap, VectorIndex(snap.embeddings, snap.ids, base=self._base, build=False) if vectors
                           else None)
        return self._cache  # type: ignore[return-value]

    @staticmethod
    def _damaged_vectors(exc: IndexDamaged) -> None:
        """The vector index is derived from the stored embeddings: search them exactly until it is rebuilt."""
        log.warning("%s; searching the stored embeddings exactly until `mmindex repair` rebuilds it", exc)
        return None

    def _bank(self, encoder: str | None, store: Store, snap: Snapshot):
        """The concept bank of an encoder over this index's concept columns (built once, cached on disk)."""
        from mmindex.text import create_text_encoder  # deferred: the text encoders load transformers
        from mmindex.text.bank import ConceptBank, entries_from_vocabulary  # deferred: as above

        encoder = encoder or self.text_encoder
        if self._extra_columns is None or self._extra_columns[0] != snap.generation:  # read once per change
            self._extra_columns = (snap.generation, tuple(
                c for c in store.concept_columns() if c[3] != "imagenet" and c[0] < snap.scores.shape[0]))
        extra = self._extra_columns[1]
        key = (encoder, extra)
        with self._bank_lock:  # built once, even when parallel searches ask for it together
            if key not in self._banks:
                vocabulary = self.vocabulary
                self._banks[key] = ConceptBank(entries_from_vocabulary(vocabulary, extra),
                                               create_text_encoder(encoder), vocabulary=vocabulary)
        return self._banks[key]

    def _refine(self, spec: QuerySpec, snap: Snapshot, base: np.ndarray):
        """Feedback scores, their parts, and which rows may be shown (not yet judged)."""
        pos = np.array([r for r in map(snap.row_of, spec.positive) if r is not None], dtype=np.int64)
        neg = np.array([r for r in map(snap.row_of, spec.negative) if r is not None], dtype=np.int64)
        fused, parts = refine(base, snap.embeddings, pos, neg, self.feedback_params)
        keep = np.ones(len(fused), dtype=bool)
        keep[np.concatenate([pos, neg])] = False
        return fused, list(parts.values()), list(parts), keep

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
