"""`add --executor ray`: the same reader → mapper → writer pipeline, with its first two stages on a Ray cluster.

- **Reader** (`read_item`, shared with the local executor): Ray Data CPU tasks read, hash, decode and
  preprocess the files, a few per task.
- **Mapper** (`infer`, shared): a fixed pool of `ray_workers` actors, each holding one ONNX Runtime
  (or PyTorch) model, turns decoded media into scored `MediaRecord`s.
- **Writer** (`BatchWriter`, shared): only this process, the driver, writes. It takes the results in
  scan order and commits them batch by batch, exactly as the local executor does, so the index format,
  the segment order and the kill -9 / re-run guarantees are those of the local executor.

Ray retries a task whose worker died and restarts a dead actor (up to `MAX_RETRIES` times each); a
file that fails to decode is recorded as an error like in the local executor. If the job fails anyway,
every batch committed so far stays, the results already received are committed, and `ClusterError`
says to re-run, which resumes. Results travel between stages as pickled `Decoded` / `MediaRecord`.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np

from mmindex.config import IngestConfig
from mmindex.errors import ClusterError, MediaError
from mmindex.extract.mapper import infer
from mmindex.extract.reader import UNCHANGED, read_item
from mmindex.index import detectors
from mmindex.index.ingest import AddReport, BatchWriter, ProgressFn
from mmindex.index.store import Store
from mmindex.media.scan import ScanItem, scan

#: How often Ray retries a decoding task whose worker died, and restarts (and retries on) a dead actor.
MAX_RETRIES = 3
#: Files per decoding task: small enough to spread over the cluster, large enough to amortise a task's cost.
FILES_PER_TASK = 8

_ERROR, _SKIP, _DECODED, _RECORD = "error", "unchanged", "decoded", "record"


def add_paths_ray(
    store: Store,
    paths: Iterable[str | os.PathLike],
    config: IngestConfig,
    data_config,
    progress: ProgressFn | None = None,
    confine_to: Iterable[str] | None = None,
    scorers: dict | None = None,
) -> AddReport:
    """Index `paths` into `store` (opened for writing) on Ray; same result as `ingest.add_paths`.

    Uses the Ray connection of this process if there is one, else connects to `config.ray_address`,
    else starts a local Ray instance for the run. Raises `ClusterError` if Ray cannot start or the job fails.
    """
    t0 = time.perf_counter()
    items = list(scan(paths, confine_to))
    writer = BatchWriter(store, config.batch_size, scorers=scorers)
    if items:
        with ray_session(config):
            rows = _run(items, writer.known, data_config, config, detectors.inputs_taken(writer.scorers))
            for done, (path, result) in enumerate(_results(rows, writer), 1):
                writer.take(path, result)
                if progress:
                    progress(done, len(items))
    writer.flush()
    writer.report.seconds = time.perf_counter() - t0
    return writer.report


@contextmanager
def ray_session(config: IngestConfig) -> Iterator[None]:
    """Connect to Ray for the duration of a run: the caller's connection, `config.ray_address`, or a
    local instance (`num_cpus`: the cores, at least one per worker plus one for decoding) whose temporary
    files live in a folder of their own, removed at the end. Only what this function started is shut down."""
    try:
        import ray
    except ImportError:
        raise ClusterError("the Ray executor needs Ray: pip install 'mmindex[scale]'") from None
    if ray.is_initialized():  # a notebook, a test, or an application that manages its own cluster
        yield
        return
    # Worker output and Ray's notices (token auth enabled, actor arguments in the object store...) would
    # bury the progress bar; failures still arrive as exceptions. RAY_BACKEND_LOG_LEVEL quiets Ray's C++ core.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    temp_dir = None
    try:
        if config.ray_address:
            _probe(config.ray_address)
            ray.init(address=config.ray_address, **quiet)
        else:
            # Ray's socket paths must stay short (108 bytes), so the folder goes under the system temp dir.
            temp_dir = tempfile.mkdtemp(prefix="mmindex-ray-")
            cpus = max(os.cpu_count() or 1, config.ray_workers * _threads(config) + 1)
            ray.init(num_cpus=cpus, include_dashboard=False, _temp_dir=temp_dir, **quiet)
    except Exception as exc:  # ray.init raises ConnectionError, ValueError, RuntimeError...
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)
        where = f"connect to Ray at {config.ray_address}" if config.ray_address else "start a local Ray instance"
        raise ClusterError(f"cannot {where}: {type(exc).__name__}: {exc}") from None
    try:
        yield
    finally:
        ray.shutdown()
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _probe(address: str) -> None:
    """Fail fast on a HOST:PORT nobody listens on: `ray.init` would retry for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if host and port.isdigit():
        try:
            socket.create_connection((host, int(port)), timeout=10).close()
        except OSError as exc:
            raise ConnectionError(f"nothing answers at {host}:{port} ({exc.strerror or exc})") from None


def _threads(config: IngestConfig) -> int:
    """Inference threads per worker: each worker reserves as many CPUs on its node."""
    return config.threads or 1


def _run(items: list[ScanItem], known: dict[str, str], data_config, config: IngestConfig,
         inputs: list | None = None) -> Iterator[dict]:
    """The Ray Data plan: file list → decoding tasks → inference actor pool, streamed back in scan order. `inputs`:
    what the applied detectors take besides embeddings, made by the decoding tasks too.

    Ray Data's process-wide settings are changed for the run only, for a caller that shares its Ray.
    """
    import ray.data
    from ray.util.annotations import RayDeprecationWarning

    ctx = ray.data.DataContext.get_current()
    saved = ctx.execution_options.preserve_order, ctx.enable_progress_bars, ctx.print_on_execution_start
    data_log = logging.getLogger("ray.data")
    saved_level = data_log.level
    ctx.execution_options.preserve_order = True  # the writer commits in scan order: same ids as the local executor
    ctx.enable_progress_bars = ctx.print_on_execution_start = False  # the CLI draws its own bar
    data_log.setLevel(logging.ERROR)
    try:
        rows = [{"path": it.path, "error": it.error or "", "known": known.get(it.path, "")} for it in items]
        ds = ray.data.from_items(rows, override_num_blocks=max(1, math.ceil(len(rows) / FILES_PER_TASK)))
        with warnings.catch_warnings():
            # Ray 2.60 has no named parameter for retries yet (hence ray<2.64 in pyproject.toml), and its
            # defaults retry forever: a file that kills its worker every time would never end the job.
            warnings.simplefilter("ignore", RayDeprecationWarning)
            ds = ds.map_batches(_decode_batch, batch_size=FILES_PER_TASK, fn_args=(data_config, config, inputs or []),
                                num_cpus=1, max_retries=MAX_RETRIES)
            ds = ds.map_batches(_InferWorker, batch_size=config.batch_size, fn_constructor_args=(config,),
                                compute=ray.data.ActorPoolStrategy(size=config.ray_workers),
                                num_cpus=_threads(config), max_restarts=MAX_RETRIES, max_task_retries=MAX_RETRIES,
                                # Ray hides the GPUs from an actor that reserves none: "auto" then runs on the CPU.
                                num_gpus=1 if config.device.startswith("cuda") else 0)
        yield from ds.iter_batches(batch_size=None, batch_format="numpy")
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars, ctx.print_on_execution_start = saved
        data_log.setLevel(saved_level)


def _results(batches, writer: BatchWriter) -> Iterator[tuple[str, object]]:
    """(path, MediaError | UNCHANGED | MediaRecord) per file; a failed job becomes `ClusterError`."""
    it = iter(batches)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except Exception as exc:  # whatever Ray raises, the job is over: keep what arrived, then say so
            writer.flush()
            raise ClusterError(
                f"the Ray job failed ({type(exc).__name__}: {_first_line(exc)}); every batch committed so far is "
                f"kept, re-run the same `mmindex add` to resume") from exc
        for path, status, message, payload in zip(batch["path"], batch["status"], batch["message"],
                                                  batch["payload"], strict=True):
            if status == _ERROR:
                yield str(path), MediaError(str(message))
            elif status == _SKIP:
                yield str(path), UNCHANGED
            else:
                yield str(path), pickle.loads(payload)


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _decode_batch(batch: dict[str, np.ndarray], data_config, config: IngestConfig,
                  inputs: list | None = None) -> dict[str, np.ndarray]:
    """Reader stage, as a Ray task: a few files read and decoded with the local executor's `read_item`."""
    out: dict[str, list] = {"path": [], "status": [], "message": [], "payload": []}
    for path, error, known in zip(batch["path"], batch["error"], batch["known"], strict=True):
        path = str(path)
        result = read_item(ScanItem(path, str(error) or None), {path: str(known)}, data_config, config, inputs or ())
        out["path"].append(path)
        if isinstance(result, MediaError):
            out["status"].append(_ERROR)
            out["message"].append(str(result))
            out["payload"].append(b"")
        elif result is UNCHANGED:
            out["status"].append(_SKIP)
            out["message"].append("")
            out["payload"].append(b"")
        else:
            out["status"].append(_DECODED)
            out["message"].append("")
            out["payload"].append(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    return _columns(out)


class _InferWorker:
    """Mapper stage, as a Ray actor: holds one model for its lifetime and scores batches of decoded files.

    The model is created on the first batch that has something new, as in the local executor: a re-run over
    unchanged files never pays for loading it.
    """

    def __init__(self, config: IngestConfig):
        self.config = config
        self.runtime = None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {key: list(batch[key]) for key in ("path", "status", "message", "payload")}
        todo = [i for i, status in enumerate(out["status"]) if status == _DECODED]
        if not todo:
            return _columns(out)
        if self.runtime is None:
            from mmindex.models.loader import LazyModel  # deferred: ONNX Runtime (or PyTorch), in the Ray actor

            c = self.config  # the model `add` runs locally: cached export, precision and device alike
            self.runtime = LazyModel(c.model, c.backend, _threads(c), c.precision or "fp32", c.device).runtime
        decoded = [pickle.loads(out["payload"][i]) for i in todo]
        records = infer(decoded, self.runtime, self.config.batch_size, self.config.pool)
        for i, record in zip(todo, records, strict=True):
            out["status"][i] = _RECORD
            out["payload"][i] = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        return _columns(out)


def _columns(out: dict[str, list]) -> dict[str, np.ndarray]:
    # object arrays: numpy would otherwise pad the payload bytes to one fixed width
    return {key: np.array(values, dtype=object) for key, values in out.items()}
