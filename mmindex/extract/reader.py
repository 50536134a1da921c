"""The reader stage: a scanned file → read, hashed, decoded and preprocessed (`Decoded`), in threads.

Used alike by `add` (mmindex.index.ingest), its Ray executor and `classify`. A reader never raises for bad
input: a file that cannot be used becomes the `MediaError` that says why, so one bad file never stops a run.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

from mmindex.config import IngestConfig
from mmindex.errors import MediaError
from mmindex.extract import readback
from mmindex.extract.inputs import ModelInput
from mmindex.media import images
from mmindex.media.scan import ScanItem, media_kind
from mmindex.records import Decoded, DecodedSegment, Media

UNCHANGED = object()  # what a reader returns for a file whose content hash is the indexed one


def read_media(path: str, known_sha256: str | None, data_config, config: IngestConfig,
               inputs: Sequence[ModelInput] = ()) -> Decoded | object:
    """Reader + decoder for one file (runs in a worker thread). Raises MediaError on bad input.

    Returns `UNCHANGED` when the file's content hash equals the indexed one. `inputs`: the pixel and clip inputs of
    the applied detectors, made here too (`DecodedSegment.inputs`, see `extract.readback`).
    """
    kind = media_kind(path) or "image"
    try:
        st = os.stat(path)
        if kind == "video":
            from mmindex.media import video  # noqa: PLC0415 (PyAV is imported only when videos show up)

            digest = _hash_file(path)
            if digest == known_sha256:
                return UNCHANGED
            pixels = [i for i in inputs if i.kind == "pixels"]
            decoded = video.decode(path, digest, st, data_config, config,
                                   (lambda img: readback.keyframe_pixels(img, pixels)) if pixels else None)
            for spec in (i for i in inputs if i.kind == "clip"):
                clips = readback.video_clips(path, [(s.start, s.end) for s in decoded.segments], spec)
                for segment, clip in zip(decoded.segments, clips, strict=True):
                    segment.inputs[spec.key] = clip
            return decoded
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest == known_sha256:
        return UNCHANGED
    dc = data_config
    img, (width, height) = images.open_image_sized(data, config.max_pixels, draft_size=dc.resize)
    frame = images.preprocess(img, dc.input_size, dc.resize, dc.mean, dc.std, dc.interpolation)
    return Media(path, "image", digest, st.st_size, st.st_mtime_ns,
                 [DecodedSegment(frames=[frame], inputs=readback.image_inputs(img, inputs, dc, frame))],
                 width=width, height=height)  # the file's size, not the draft-reduced decode's


def _hash_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_item(item: ScanItem, known: dict[str, str], data_config, config: IngestConfig,
              inputs: Sequence[ModelInput] = ()) -> object:
    """Reader stage for one scanned item: `Decoded`, `UNCHANGED`, or the `MediaError` that explains the failure.

    Never raises for bad input, so that one bad file never stops a run (in a thread or a Ray task).
    """
    if item.error:
        return MediaError(item.error)
    try:
        return read_media(item.path, known.get(item.path), data_config, config, inputs)
    except MediaError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - an unexpected decoder failure must not stop the run
        return MediaError(f"unexpected error while decoding: {type(exc).__name__}: {exc}")


def decoding_processes(runtime) -> int:
    """How many processes decode for `runtime`: none (threads) when the model runs on the CPU, where decoding shares
    the cores with it; one per core when it runs on a GPU, which outruns what one process's threads decode."""
    return (os.cpu_count() or 1) if runtime.device.startswith("cuda") else 0


def read_all(items: Iterable[ScanItem], known: dict[str, str], data_config, config: IngestConfig,
             inputs: Sequence[ModelInput] = (), processes: int = 0) -> Iterator[tuple[object, object]]:
    """Yield (item, Decoded | UNCHANGED | MediaError) in scan order, decoding ahead in `config.workers` threads,
    or, with `processes`, in that many processes: a model on a GPU outruns what one process's threads decode."""
    if processes:
        # spawn, not fork: this process may already run ONNX Runtime's or CUDA's threads, which fork does not copy.
        pool = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"))
    else:
        pool = ThreadPoolExecutor(max_workers=max(1, config.workers), thread_name_prefix="mmindex-read")

    def submit(item):  # only this file's known hash travels to a process, not the whole index's
        return item, pool.submit(read_item, item, {item.path: known[item.path]} if item.path in known else {},
                                 data_config, config, inputs)

    window = max(4, 2 * config.batch_size, 2 * processes)
    with pool:
        futures: deque = deque()
        it = iter(items)
        for item in it:
            futures.append(submit(item))
            if len(futures) >= window:
                break
        while futures:
            item, fut = futures.popleft()
            nxt = next(it, None)
            if nxt is not None:
                futures.append(submit(nxt))
            yield item, fut.result()
