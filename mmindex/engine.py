"""The facade: one object through which the CLI, the Python API and the HTTP API index and search.

    >>> from mmindex import Engine
    >>> engine = Engine("~/photos.mmindex")
    >>> engine.add(["~/Pictures"])
    >>> [h.path for h in engine.search(concepts=["espresso"], k=3)]

`Engine` composes an `Indexer` (mmindex/indexer.py: add, apply, teach, judgments, remove, compact, rebuild,
check, repair) and a `Searcher` (mmindex/search/searcher.py: search, feedback, label, saved queries, info), which
share the index folder, the ingest configuration and one lazily loaded model. It holds no logic of its own.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from mmindex.concepts import BUILTIN_PREFIX, Concept, Vocabulary
from mmindex.config import IngestConfig, default_index_dir
from mmindex.errors import MmindexError
from mmindex.index.check import Problem
from mmindex.index.export import export as export_table
from mmindex.index.ingest import AddReport, ProgressFn
from mmindex.index.store import Store
from mmindex.index.tables import DEFAULT_BATCH, SegmentTable
from mmindex.indexer import Indexer
from mmindex.models.loader import LazyModel
from mmindex.search.hits import Hit, Results
from mmindex.search.requests import QuerySpec
from mmindex.search.searcher import Searcher

__all__ = ["Engine", "Hit", "Results"]


class Engine:
    """Index and search one index directory.

    Reading needs no lock and sees only committed batches; `add` and `remove` take the index's
    writer lock for their duration (a second writer gets `IndexLocked`).
    """

    def __init__(self, index: str | os.PathLike | None = None, config: IngestConfig | None = None,
                 vector_index: str | None = None, text_encoder: str | None = None):
        """`vector_index` is the vector-index setting ("flat", "hnsw", "ivfpq" or a FAISS factory string, see
        mmindex.index.vectors): recorded when `add` creates the index (default "flat"), and checked against
        the recorded one otherwise (VectorIndexError if they differ); None takes the index's own.
        `text_encoder` names the encoder of free-text queries (mmindex.text; default "minilm")."""
        self.index_dir = Path(index).expanduser() if index is not None else default_index_dir()
        self.config = config or IngestConfig()
        if self.config.precision is None:  # the index's own: an int8 index adds, and embeds query images, in int8
            self.config = dataclasses.replace(self.config, precision=_stored_precision(self.index_dir))
        model = LazyModel(self.config.model, self.config.backend, self.config.threads, self.config.precision,
                          self.config.device)
        self.indexer = Indexer(self.index_dir, self.config, model, vector_index)
        self.searcher = Searcher(self.index_dir, self.config, model, vector_index, text_encoder)

    # ---- writing -------------------------------------------------------------------------------
    def add(self, paths: Iterable[str | os.PathLike], progress: ProgressFn | None = None,
            confine_to: Iterable[str] | None = None) -> AddReport:
        """Index files and folders (recursively). Unchanged files are skipped; bad files are recorded.

        With `confine_to` (folders), symbolic links whose real path lies outside them are not followed
        but recorded as errors (the HTTP API passes its media roots).
        """
        return self.indexer.add(paths, progress, confine_to)

    def apply(self, detector: str | os.PathLike, name: str | None = None, progress: ProgressFn | None = None,
              clips_per_shot: int = 1) -> dict:
        """Score every segment with a trained model and add its labels as concepts (source "trained").

        Any model mmindex trains: a detector bundle (probe, finetune, scratch), a temporal model (`train-sequence`,
        on the keyframe embeddings of an index built with `--keyframe-embeddings`) or a clip model (`train-clips`);
        the last three read the media back (`progress(segments done, in all)`), and a file gone or changed since it
        was indexed is listed in `errors` ([path, why]) and scores 0. Media added later are scored by it too.
        `detector` is a model file, or the name of a detector applied to the index (its own copy is applied again).
        `clips_per_shot` > 1 (clip models): that many clips spread over each shot, their probabilities averaged.
        Resumable: the scores are committed in chunks, invisible until the last commit, and an interrupted apply of
        the same model and options goes on from there (`resumed`: the batches scored before).
        Returns {name, version, concepts: [{id, name, query, shadows}], segments, replaced, resumed, errors,
        messages}:
        `query` is the name that resolves to the concept (its label: the user's names win), `shadows` the built-in
        concept of that name ({id, query: "wordnet:NAME"}) or None, and `messages` says which names now mean the
        user's detector. `DetectorError` if it does not fit the index, saying why.
        """
        return self._named(self.indexer.apply(detector, name, progress, clips_per_shot))

    def training_sequences(self, labels: str | os.PathLike | None = None, fmt: str | None = None,
                           concepts: Sequence[str] = ()) -> tuple:
        """Training sequences for a temporal model (`learn.sequence.SequenceData`) made from the index: each judged
        segment's keyframe embeddings (an index built with `add --keyframe-embeddings`), labelled by its judgments:
        those of the CSV or qrels file `labels` (`judgments export`'s formats), else the index's own, of `concepts`
        only when given. Returns (data, segments left out for want of keyframe embeddings, [why] of the file's lines
        that name no segment of the index). `DataError` when there is nothing to learn from."""
        return self.indexer.training_sequences(labels, fmt, concepts)

    def applied_bundle(self, name: str) -> Path | None:
        """The index's own copy of the model applied under `name` (what `apply NAME` applies again), or None."""
        return self.indexer.applied_bundle(name)

    def teach(self, name: str, positive: Sequence[int] = (), negative: Sequence[int] = (), origin: str = "cli",
              from_feedback: bool = False, seed: int = 0) -> dict:
        """Teach the index a concept from judged segments, in seconds: record the judgments (origin "cli",
        "feedback", "ui", "import" or "active"; with `from_feedback`, also the last query's, as "feedback"), fit a
        probe detector on the stored embeddings of every segment judged for `name` so far, with negatives
        sampled from the unjudged ones (learn/teach.py), and apply it under `name` (`--concept NAME`), replacing
        an earlier one and bumping its version. All under the writer lock: a second writer gets `IndexLocked`.

        Returns `apply`'s report (with `version`) plus {judgments: {added, changed, unchanged}, training: {c,
        folds, positives, negatives, sampled_negative, ...}}. `DetectorError` for a name that cannot name a
        concept, `QueryError` naming segment ids not in the index, `DataError` when `name` has no positive.
        """
        feedback = self.searcher.last_judgments() if from_feedback else None
        return self._named(self.indexer.teach(name, positive, negative, origin, feedback, seed))

    def label(self, name: str, n: int = 20, strategy: str = "uncertain", seed: int = 0) -> dict:
        """Propose the `n` unjudged segments whose judgment for `name` helps its detector most (active learning):
        "uncertain" (scores nearest the decision boundary), "probable" (highest scores) or "random" (seeded).
        Without a detector for `name` the draw is random, and `message` says so. Judge them with `teach`.
        Returns {name, strategy, requested, detector, judged: {positive, negative}, message, segments: [{segment_id,
        path, kind, start, end, score}]} (see search/active.py)."""
        return self.searcher.label(name, n, strategy, seed)

    def judge(self, name: str, positive: Sequence[int] = (), negative: Sequence[int] = (), origin: str = "cli") -> dict:
        """Record judgments of segments for the concept `name` without training (`teach` trains on them later).
        A segment judged again takes the new label. Returns {name, added, changed, unchanged}."""
        return self.indexer.judge(name, positive, negative, origin)

    def forget_judgments(self, name: str, segment_ids: Sequence[int] | None = None) -> int:
        """Delete the judgments of `name` (all, or those of `segment_ids`); returns how many."""
        return self.indexer.forget_judgments(name, segment_ids)

    def judgments(self, concept: str | None = None) -> list[dict]:
        """Every judgment (of one concept, or all): {segment_id, path, start, end, concept, label, origin, at}."""
        return self.reader().judgments(concept)

    def export_judgments(self, concept: str | None = None, fmt: str = "csv") -> str:
        """The judgments (of one concept, or all) as the text of a file: "csv" (`segment_path,start,end,concept,
        label`) or "qrels" (TRECVID style); see mmindex/evaluate/judgments.py."""
        return self.indexer.export_judgments(concept, fmt)

    def import_judgments(self, path: str | os.PathLike, fmt: str | None = None) -> dict:
        """Record the judgments of a CSV or qrels file (format from its name unless given), origin "import". A line
        naming a segment that is not in the index is reported in `unknown`, not fatal; importing again adds
        nothing. Returns {lines, added, changed, unchanged, skipped, unknown: [message], concepts}."""
        return self.indexer.import_judgments(path, fmt)

    def import_labels(self, path: str | os.PathLike, fmt: str | None = None, teach: bool = False) -> dict:
        """`import_judgments`, then with `teach` each concept of the file that has a positive judgment taught from
        all its judgments (`mmindex import-labels`). Adds to the import's report `taught` (each `teach` report)
        and `not_taught` (the file's concepts without a positive judgment)."""
        report = self.import_judgments(path, fmt)
        if teach:
            judged = self.reader().judged_concepts()
            ready = [name for name in report["concepts"] if judged.get(name, (0, 0))[0] > 0]
            report["taught"] = [self.teach(name, origin="import") for name in ready]
            report["not_taught"] = [name for name in report["concepts"] if name not in ready]
        return report

    def detectors(self) -> list[dict]:
        """The detectors applied to or taught in the index: {id, name, labels, version, kind ("applied" or
        "taught"), details, applied, judgments: {positive, negative}}."""
        return self.searcher.detectors()

    def _named(self, report: dict) -> dict:
        """An apply's or teach's report with each concept's query name and the built-in concept it shadows."""
        vocabulary, builtin = self.vocabulary, Vocabulary.imagenet()
        report["concepts"] = [_concept_names(cid, label, vocabulary, builtin) for cid, label in report["concepts"]]
        report["messages"] = [f"{c['name']!r} now means your detector; the built-in concept is "
                              f"{c['shadows']['query']} ({c['shadows']['id']})" for c in report["concepts"]
                              if c["shadows"] and c["query"] == c["name"]]
        return report

    def remove(self, paths: Iterable[str | os.PathLike]) -> int:
        """Remove media by file path, or all media under a folder. Returns how many were removed."""
        return self.indexer.remove(paths)

    def compact(self, target_rows: int | None = None, progress: ProgressFn | None = None) -> dict:
        """Merge small batch files and drop dead rows (see mmindex.index.compact), then fold the vector
        index's pending changes and tombstones into a new file. Returns the CompactReport's fields and the
        vector index's {"action", "factory", "vectors"} under "vector_index"."""
        return self.indexer.compact(target_rows, progress)

    def rebuild(self, vector_index: str | None = None, progress: ProgressFn | None = None) -> dict:
        """Rebuild the vector index from the stored embeddings, with a new setting if given (then queries must
        ask for it, or for nothing). Returns {"action", "factory", "vectors", "seconds"}."""
        report = self.indexer.rebuild(vector_index, progress)
        if vector_index:
            self.searcher.vector_index = vector_index
        return report

    def check(self) -> list[Problem]:
        """Every problem of the index, damage first; reads only (`mmindex check`)."""
        return self.indexer.check()

    def repair(self) -> list[str]:
        """Mend the index (`mmindex repair`); returns what was done, one line each."""
        self.searcher.close()  # drop cached readers and arrays: repair may replace the files they map
        return self.indexer.repair()

    # ---- reading -------------------------------------------------------------------------------
    def search(self, concepts: Sequence[str] = (), like: Sequence[int | str] = (), k: int = 10,
               explain: bool = False, normalise: str = "minmax", text: str | Sequence[str] = (),
               fusion_method: str = "combsum", remember: bool = True, then: Sequence[str] = (),
               within: float = 10.0, group: str = "segment") -> Results:
        """Rank segments by concept expressions, free texts and/or examples (segment ids or image paths),
        fused by `fusion_method` ("combsum", "wsum", "combmnz", "rrf"; see search/fusion.py).

        `then`: later steps of a temporal query, in order, each a concept expression, "text:WORDS" or "like:ID":
        the hits are video shots matching the first criteria that are followed in the same video, each within
        `within` seconds of the step before, by a shot matching each step; each hit's `then` holds its chain
        (search/temporal.py). `group="video"`: one hit per media file, its best segment, with its `matches`.
        Raises QueryError or UnknownConcept for malformed queries. `remember` keeps the query as the
        index's last query, which `feedback` refines.
        """
        return self.searcher.search(concepts, like, k, explain, normalise, text, fusion_method, remember, then,
                                    within, group)

    def feedback(self, positive: Sequence[int] = (), negative: Sequence[int] = (), k: int | None = None,
                 explain: bool = False, name: str | None = None) -> Results:
        """Refine the last query (or the saved query `name`) with relevance judgments on segment ids.

        Judgments add up over rounds; segments already judged are not shown again. The refined query,
        with all its judgments, becomes the last query (save it with `save_query`). QueryError for ids
        not in the index, or when there is no query to refine.
        """
        return self.searcher.feedback(positive, negative, k, explain, name)

    def save_query(self, name: str) -> QuerySpec:
        """Save the last query (with its judgments) under `name`, to re-run with `run_saved`."""
        return self.searcher.save_query(name)

    def saved_queries(self) -> dict[str, QuerySpec]:
        """The saved queries of this index, by name."""
        return self.searcher.saved_queries()

    def delete_saved(self, name: str) -> None:
        self.searcher.delete_saved(name)

    def run_saved(self, name: str, k: int | None = None, explain: bool = False) -> Results:
        """Run a saved query again on the current index (with its judgments, if it has any)."""
        return self.searcher.run_saved(name, k, explain)

    def run_spec(self, spec: QuerySpec, explain: bool = False) -> Results:
        """Run a query spec as given, with its judgments if it has any, touching no saved query
        (the HTTP API: one index, many users, no shared "last query")."""
        return self.searcher.run_spec(spec, explain)

    def info(self) -> dict:
        """Counts, the model, batch files, the vector index, memory and disk use, and every recorded error."""
        return self.searcher.info()

    def health(self) -> str | None:
        """None when the index can be searched, else what is damaged (cheap; `check` is the full one)."""
        return self.searcher.health()

    def concepts(self, text: str | None = None, limit: int | None = None) -> list[Concept]:
        """The concept vocabulary (the index's trained concepts first), or the concepts matching `text`."""
        return self.searcher.concepts(text, limit)

    def embed_image(self, path: str | os.PathLike) -> np.ndarray:
        """The L2-normalised embedding of an image file that need not be in the index."""
        return self.searcher.embed_image(path)

    @property
    def vocabulary(self) -> Vocabulary:
        """ImageNet classes + WordNet nodes + this index's trained concepts: every concept name resolves here."""
        return self.searcher.vocabulary

    @property
    def text_encoder(self) -> str:
        return self.searcher.text_encoder

    @property
    def feedback_params(self):
        return self.searcher.feedback_params

    # what the service and the CLI read about the index, beside searches (each thread its own connection)
    def counts(self) -> dict[str, int]:
        """Counts of media, segments, keyframes, concepts and batch files."""
        return self.reader().counts()

    def generation(self) -> int:
        """Bumped by every committed change (a cache of anything read from the index is stale when it moves)."""
        return self.reader().generation

    def segment_details(self, ids: Iterable[int]) -> dict[int, dict]:
        """Details of segments by id: path, kind, start, end, media_id (removed ones are left out)."""
        return self.reader().segments(ids)

    def segments(self, what: str | Sequence[str] = "segments", batch_size: int = DEFAULT_BATCH) -> SegmentTable:
        """The index's segments as a lazy table (mmindex/index/tables.py): iterate it for `pyarrow.RecordBatch`es
        of `batch_size` rows, or call `to_reader()`, `to_arrow()`, `to_pandas()`. `what` is a comma-separated
        list of parts: "segments" (ids, path, kind, start, end), "embeddings", "scores" ("scores:K": the top K
        concepts of each) and "detectors" (your concepts' scores). Needs pyarrow (`pip install 'mmindex[data]'`).
        The table keeps a connection to the index: `close()` it, or use it as a context manager."""
        store = Store.open(self.index_dir)
        try:
            return SegmentTable(store, what, batch_size=batch_size, info=_table_info(store, self.searcher.model))
        except BaseException:
            store.close()
            raise

    def export(self, path: str | os.PathLike, fmt: str = "parquet", what: str | Sequence[str] = "segments",
               progress: ProgressFn | None = None) -> dict:
        """Write `segments(what)` to `path` as "parquet" or "npz", one batch at a time (mmindex/index/export.py),
        under a temporary name renamed when complete. `progress(segments written, in all)`. Returns {path,
        format, segments, columns}. `DataError` for an unknown format or part, or a folder that does not exist."""
        with self.segments(what) as table:
            return export_table(table, path, fmt, progress)

    def media_paths(self) -> list[str]:
        """The path of every indexed media file."""
        return self.reader().media_paths()

    def disk_bytes(self) -> int:
        """The bytes the index folder holds on disk."""
        return self.reader().disk_bytes()

    def reader(self) -> Store:
        """This thread's read-only Store (see `Searcher.reader`)."""
        return self.searcher.reader()

    def close(self) -> None:
        self.searcher.close()


def _concept_names(cid: str, label: str, vocabulary: Vocabulary, builtin: Vocabulary) -> dict:
    """{id, name, query, shadows} of a trained concept: the name that reaches it, the built-in concept it hides."""
    shadowed = builtin.shadowed(label)
    return {"id": cid, "name": label, "query": label if vocabulary.resolve(label).id == cid else cid,
            "shadows": {"id": shadowed.id, "query": f"{BUILTIN_PREFIX}{label}"} if shadowed else None}


def _table_info(store: Store, model: LazyModel) -> dict:
    """What a table of segments says of how it was made: the model, its precision and preprocessing."""
    name = store.meta("model")
    if name != model.name:
        model = LazyModel(name)
    try:
        preprocessing = dataclasses.asdict(model.data_config)
    except MmindexError:  # a model this installation cannot build: the table is still the index's
        preprocessing = None
    from mmindex import __version__

    return {"model": name, "precision": store.meta("precision") or "fp32", "preprocessing": preprocessing,
            "mmindex": __version__}


def _stored_precision(index_dir: Path) -> str:
    """The model precision `index_dir` was built with: "fp32" for an index made before issue 20, or none yet."""
    if not Store.exists(index_dir) or Store.unfinished(index_dir):
        return "fp32"
    try:
        with Store.open(index_dir) as store:
            return store.meta("precision") or "fp32"
    except (MmindexError, sqlite3.Error, OSError):  # damaged or unreadable: the command itself says what is wrong
        return "fp32"
