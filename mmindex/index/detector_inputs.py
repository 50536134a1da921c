"""What each applied detector scores (issue 18), gathered for a batch of segments.

A `Scorer` says what it takes (`extract.inputs.ModelInput`) and scores a batch of it; the index hands it:
    embedding   the segments' embeddings (at `add` from the new records, at `apply` from the batch files)
    sequence    each segment's keyframe embeddings, sampled at the model's rate (`extract.inputs.sample_sequence`);
                a segment indexed without them is the sequence of its one pooled embedding
    pixels      each keyframe's pixels; a segment's score is its keyframes' scores pooled (max or mean)
    clip        one clip around each segment's middle, or several spread over it (their scores averaged)
At `add` the reader makes the pixels and clips of new media (`extract.readback`, in its threads); at `apply` they
are read back from the indexed files in a thread pool, a few batches ahead of the model. A file that is gone or
changed is an error: its segments score 0, and `apply` records why. This module runs no SQL (the store's
`MediaRows` reads the rows) and never imports the learning layer: the indexer builds the scorers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Set
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mmindex.errors import MediaError
from mmindex.extract import readback
from mmindex.extract.inputs import ModelInput, sample_sequence
from mmindex.index.arrays import read_batch_file, to_float32

if TYPE_CHECKING:
    from mmindex.index.store import Store
    from mmindex.records import MediaRecord

ProgressFn = Callable[[int, int], None]  # (segments done, segments in all)


@dataclass(frozen=True)
class Scorer:
    """An applied detector's scoring function and what it takes: `score(batch)` → float16 (n, labels), the batch
    being (n, D) embeddings, (n, C, S, S) keyframes, (n, T, C, H, W) clips, or ((n, T, D) sequences, (n,) lengths)."""

    input: ModelInput
    score: Callable[..., np.ndarray]
    labels: int
    pool: str = "max"  # how a segment's keyframe scores are pooled (pixels), as `add --pool` does for concepts

    @property
    def takes(self) -> str:
        return self.input.kind

    def __call__(self, *batch) -> np.ndarray:
        return self.score(*batch)


@dataclass(frozen=True)
class ReadOptions:
    """How `apply` reads media back: the decoding limits and JPEG draft size of `add` (`IngestConfig.max_pixels`,
    the index backbone's resize), and the decoding threads."""

    max_pixels: int = 89_478_485
    draft_size: int | None = None
    workers: int = 2


# ---- scoring what was gathered -----------------------------------------------------------------------------
def score_inputs(scorer: Scorer, inputs: list[np.ndarray | None]) -> np.ndarray:
    """Scores (segments, labels) of pixel inputs (k, C, S, S), or of clips (T, C, H, W) or (n, T, C, H, W), one per
    segment, pooled over a segment's keyframes (max or mean, `scorer.pool`) or clips (mean of the probabilities);
    None (a file that could not be read back) scores 0."""
    out = np.zeros((len(inputs), scorer.labels), np.float16)
    have = [i for i, x in enumerate(inputs) if x is not None]
    if not have:
        return out
    items = [inputs[i] for i in have]
    pool = scorer.pool
    if scorer.takes == "clip":
        items, pool = [x if x.ndim == 5 else x[None] for x in items], "mean"
    counts = [len(x) for x in items]
    scores = scorer.score(np.concatenate(items)).astype(np.float32)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pooled = (np.maximum.reduceat if pool == "max" else np.add.reduceat)(scores, starts, axis=0)
    out[have] = pooled if pool == "max" else pooled / np.asarray(counts, np.float32)[:, None]
    return out


def score_sequences(scorer: Scorer, keyframes: list[tuple[list[float], np.ndarray]]) -> np.ndarray:
    """Scores (segments, labels) of each segment's keyframes (times, embeddings (k, D)) as one sequence each."""
    if not keyframes:
        return np.zeros((0, scorer.labels), np.float16)
    spec = scorer.input
    seqs = [sample_sequence(times, emb, spec.frames or len(times), spec.rate) for times, emb in keyframes]
    lengths = np.array([len(s) for s in seqs], np.int64)
    x = np.zeros((len(seqs), int(lengths.max()), seqs[0].shape[1]), np.float32)
    for i, s in enumerate(seqs):
        x[i, :len(s)] = s  # padding after a sequence's end is never read (causal models, read at length − 1)
    return scorer.score(x, lengths)


def score_records(scorer: Scorer, records: list[MediaRecord]) -> np.ndarray:
    """At `add`: scores (segments, labels) of every segment of `records`, in order."""
    segments = [s for m in records for s in m.segments]
    if scorer.takes == "embedding":
        return scorer.score(np.stack([s.embedding for s in segments]).astype(np.float32))
    if scorer.takes == "sequence":
        return score_sequences(scorer, [([t or 0.0 for t, _ in s.keyframes], s.keyframe_embeddings)
                                        for s in segments])
    return score_inputs(scorer, [s.inputs[scorer.input.key] for s in segments])


# ---- gathering from the index ---------------------------------------------------------------------------------
def score_batches(store: Store, scorer: Scorer, read: ReadOptions, progress: ProgressFn | None = None,
                  skip: Set[int] = frozenset()) -> Iterator[tuple[int, np.ndarray, list[tuple[str, str]]]]:
    """At `apply`: (batch id, scores (rows, labels), [(path, why) of files not read back]) for every batch but those
    of `skip` (scored by an interrupted apply); progress in segments (per file read back, or per batch of stored
    inputs), counting the skipped batches as done."""
    files = {b: f for b, f in store.batch_file_names().items() if b not in skip}
    sizes = {b: n for b, n in store.batch_sizes().items() if b not in skip}
    if scorer.takes in ("pixels", "clip"):
        live = {b: n for b, _, _, n in store.live_batches()}
        total = sum(live.values())
        yield from _read_scored(store, scorer, sizes, read, progress, total - sum(live.get(b, 0) for b in sizes), total)
        return
    total = sum(store.batch_sizes().values())  # rows of the batch files: a score file has one per row, dead ones too
    done = total - sum(sizes.values())
    for batch_id, file in files.items():
        scores = _from_store(store, scorer, batch_id, file)
        done += len(scores)
        if progress:
            progress(done, total)
        yield batch_id, scores, []


def _from_store(store: Store, scorer: Scorer, batch_id: int, file: str) -> np.ndarray:
    emb = np.asarray(read_batch_file(store.root / "batches" / file).embeddings)
    emb = to_float32(emb) if emb.dtype == np.float16 else emb.astype(np.float32)
    if scorer.takes == "embedding":
        return scorer.score(emb)
    keyframes = store.batch_keyframes(batch_id, embeddings=True)
    # a dead row, or a segment indexed before keyframe embeddings were kept: its pooled embedding is its one frame
    sequences = [([0.0], emb[row:row + 1]) for row in range(len(emb))]
    for row, segment_id, *_ in store.batch_media(batch_id):
        kf = keyframes.get(segment_id, [])
        if kf and all(e is not None for _, e in kf):
            sequences[row] = ([t or 0.0 for t, _ in kf], np.stack([np.frombuffer(e, np.float16) for _, e in kf]))
    return score_sequences(scorer, sequences)


def _media_of(store: Store, batch_id: int) -> Iterator[tuple[str, list[int], readback.IndexedMedia]]:
    """(path, its segments' rows, what the index knows of it) of every file of a batch."""
    keyframes = store.batch_keyframes(batch_id)
    files: dict[int, list] = {}
    for row, segment_id, media_id, path, kind, sha256, size, mtime_ns, start, end in store.batch_media(batch_id):
        entry = files.setdefault(media_id, [(path, kind, sha256, size, mtime_ns), [], []])
        entry[1].append(row)
        entry[2].append((start, end, [t for t, _ in keyframes.get(segment_id, [])]))
    for facts, rows, segments in files.values():
        yield facts[0], rows, readback.IndexedMedia(*facts, segments)


def _read_back(media: readback.IndexedMedia, spec: ModelInput, read: ReadOptions) -> list[np.ndarray]:
    try:
        return readback.read_back(media, spec, read.max_pixels, read.draft_size)
    except MediaError:
        raise
    except Exception as exc:  # noqa: BLE001 - an unexpected decoder failure must not stop the apply
        raise MediaError(f"unexpected error while decoding: {type(exc).__name__}: {exc}") from None


CHUNK_BYTES = 16 << 20  # inputs scored at once: a compacted batch of 65,536 rows is never all in memory, and a
# forward pass stays the size of `add`'s (26 keyframes of 224×224 for a finetuned backbone, thousands for scratch)


def _read_scored(store: Store, scorer: Scorer, sizes: dict[int, int], read: ReadOptions, progress: ProgressFn | None,
                 done: int, total: int) -> Iterator[tuple[int, np.ndarray, list[tuple[str, str]]]]:
    """Pixels or clips read back file by file in a thread pool (a bounded window of files ahead, across batch
    boundaries), scored in chunks as they arrive; (batch id, scores, errors) per batch."""
    def files() -> Iterator[tuple[int, str | None, list[int], readback.IndexedMedia | None]]:
        for batch_id in sizes:
            yield from ((batch_id, path, rows, media) for path, rows, media in _media_of(store, batch_id))
            yield batch_id, None, [], None  # the batch ends here

    held = 0
    with ThreadPoolExecutor(max_workers=max(1, read.workers), thread_name_prefix="mmindex-readback") as pool:
        ahead: deque = deque()
        todo = files()

        def fill() -> None:
            while len(ahead) < 8 * max(1, read.workers) and (job := next(todo, None)) is not None:
                b, path, rows, media = job
                ahead.append((b, path, rows, None if media is None else pool.submit(_read_back, media, scorer.input,
                                                                                   read)))
        fill()
        out: dict[int, np.ndarray] = {}
        chunk_rows: list[int] = []
        chunk: list[np.ndarray] = []
        errors: list[tuple[str, str]] = []
        while ahead:
            batch_id, path, rows, job = ahead.popleft()
            fill()
            scores = out.setdefault(batch_id, np.zeros((sizes[batch_id], scorer.labels), np.float16))
            if job is not None:
                try:
                    for row, x in zip(rows, job.result(), strict=True):
                        chunk_rows.append(row)
                        chunk.append(x)
                        held += x.nbytes
                except MediaError as exc:
                    errors.append((path, str(exc)))
                done += len(rows)
            if chunk and (job is None or held >= CHUNK_BYTES):
                scores[chunk_rows] = score_inputs(scorer, chunk)
                chunk_rows, chunk, held = [], [], 0
            if progress and job is not None:
                progress(done, total)
            if job is None:
                yield batch_id, out.pop(batch_id), errors
                errors = []
