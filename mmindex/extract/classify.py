"""The ILSVRC task itself: rank the 1000 ImageNet categories of every image (or video shot), most probable first.

Files go through the same reader and model as `mmindex add` (`extract.reader.read_item` and `infer`: decoding
in threads, batched inference on ONNX Runtime or PyTorch), without an index. A video is cut into shots as
`add` cuts it; a shot's ranking is its keyframes' mean probabilities (a mean of distributions is one; the
max pooling that `add` may use for retrieval scores is not). A file that cannot be read is reported and
skipped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from mmindex.concepts import Vocabulary
from mmindex.config import DEFAULT_MODEL, IngestConfig
from mmindex.errors import MediaError
from mmindex.extract.mapper import infer
from mmindex.extract.reader import decoding_processes, read_all
from mmindex.media.scan import scan
from mmindex.media.shots import require_detector
from mmindex.records import Media, Segment

ProgressFn = Callable[[int, int], None]  # (files done, files total)


@dataclass(frozen=True)
class Category:
    """One ranked ImageNet category."""

    index: int  # model output index, 0..999
    wnid: str  # WordNet id, e.g. "n02123045"
    name: str  # e.g. "tabby"
    probability: float


@dataclass
class SegmentResult(Segment):
    """The ranking of one image, or of one video shot (`start`/`end` in seconds)."""

    top: list[Category]


FileResult = Media[SegmentResult]  # a classified file: one segment for an image, one per shot for a video


@dataclass
class ClassifyReport:
    """What `classify_paths` did; `errors` lists (path, reason) for every file that could not be classified."""

    model: str
    backend: str
    results: list[FileResult] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """A JSON-ready dict: {"model", "runtime", "results": [{"path", "kind", "segments": [{"start", "end",
        "top": [{"rank", "index", "wnid", "name", "probability"}]}]}], "errors": [{"path", "error"}], "seconds"}."""
        return {
            "model": self.model,
            "runtime": self.backend,
            "results": [{"path": r.path, "kind": r.kind, "segments": [
                {"start": s.start, "end": s.end,
                 "top": [{"rank": i, **vars(c)} for i, c in enumerate(s.top, 1)]} for s in r.segments]}
                for r in self.results],
            "errors": [{"path": p, "error": why} for p, why in self.errors],
            "seconds": round(self.seconds, 3),
        }


def make_runtime(model: str = DEFAULT_MODEL, weights: str | None = "default", backend: str = "auto",
                 threads: int | None = None, device: str = "cpu", precision: str = "fp32"):
    """The backbone `model` with `weights` ("default", None for random, a file or URL) in a `Runtime` on `device`
    ("cpu", "cuda[:N]" or "auto", see models/devices.py), in `precision` ("int8": default weights only)."""
    from mmindex.models.loader import load_runtime  # deferred: ONNX Runtime (PyTorch unless the export is cached)

    return load_runtime(model, weights, backend, threads, device, precision)


def score_files(paths: Iterable[str | os.PathLike], runtime, config: IngestConfig,
                progress: ProgressFn | None = None) -> Iterator[tuple[str, object]]:
    """Yield (path, `MediaRecord` | `MediaError`) for every media file under `paths`, in scan order.

    A record's segments carry the keyframe-averaged class probabilities (`scores`). Decoding runs ahead
    in `config.workers` threads; inference runs on batches of about `config.batch_size` keyframes.
    """

    items = list(scan(paths))
    data_config = runtime.backbone.data_config
    pending: list = []  # (path, Decoded | MediaError) in scan order, flushed once enough keyframes wait
    frames = 0

    def flush() -> Iterator[tuple[str, object]]:
        decoded = [d for _, d in pending if not isinstance(d, MediaError)]
        records = iter(infer(decoded, runtime, config.batch_size, pool="mean"))
        for path, d in pending:
            yield path, d if isinstance(d, MediaError) else next(records)

    for done, (item, result) in enumerate(read_all(items, {}, data_config, config,
                                                   processes=decoding_processes(runtime)), 1):
        pending.append((item.path, result))
        if not isinstance(result, MediaError):
            frames += sum(len(s.frames) for s in result.segments)
        if frames >= config.batch_size:
            yield from flush()
            pending, frames = [], 0
        if progress:
            progress(done, len(items))
    yield from flush()


def top_categories(probs: np.ndarray, k: int) -> list[Category]:
    """The k most probable ImageNet classes of a (1000,) probability vector, best first (ties: lower index)."""
    classes = Vocabulary.imagenet().classes
    k = max(1, min(k, len(probs)))
    order = np.argsort(-np.asarray(probs, np.float64), kind="stable")[:k]
    return [Category(int(i), classes[i].id, classes[i].name, float(probs[i])) for i in order]


def classify_paths(paths: Iterable[str | os.PathLike], model: str = DEFAULT_MODEL, *, weights: str | None = "default",
                   top: int = 5, batch_size: int = 32, workers: int = 2, backend: str = "auto",
                   progress: ProgressFn | None = None, runtime=None, shots: str = "builtin") -> ClassifyReport:
    """Classify every image and video shot under `paths` (files and folders, recursively) into the ILSVRC classes.

    Returns the `top` categories of each image / shot with their probabilities, WordNet ids and names.
    Bad files are reported in `errors` and skipped. `ModelError` if the model or its weights cannot be
    loaded; pass `runtime` to reuse a model already loaded. `shots` names the shot detector that cuts videos
    (`mmindex.media.shots.DETECTORS`); `MediaError` if it cannot run here.
    """
    t0 = time.perf_counter()
    require_detector(shots)  # before the model loads: a missing package is said at once, not per video
    runtime = runtime or make_runtime(model, weights, backend)
    config = IngestConfig(model=runtime.backbone.name, batch_size=batch_size, workers=workers, backend=backend,
                          shots=shots)
    report = ClassifyReport(runtime.backbone.name, runtime.backend)
    for path, rec in score_files(paths, runtime, config, progress):
        if isinstance(rec, MediaError):
            report.errors.append((path, str(rec)))
            continue
        report.results.append(replace(rec, segments=[
            SegmentResult(top=top_categories(s.scores, top), start=s.start, end=s.end, keyframes=s.keyframes)
            for s in rec.segments]))
    report.seconds = time.perf_counter() - t0
    return report
