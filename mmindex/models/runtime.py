"""Run a backbone on preprocessed batches: ONNX Runtime (exported once, cached) or eager PyTorch.

ONNX Runtime is the default because on this kind of 2-core CPU it ran lite0 at batch 32 about 2.5-3x
faster than eager PyTorch with channels_last (about 90-120 vs 32-40 images/s) and about 4-5x faster than
plain NCHW eager (23 images/s); see `bench/ingest_throughput.py`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from mmindex.atomic import atomic_write
from mmindex.config import cache_dir as default_cache_dir
from mmindex.errors import ModelError
from mmindex.models import devices
from mmindex.models.backbones import Backbone
from mmindex.models.exports import OPSET, session_options
from mmindex.models.weights import RANDOM_WEIGHTS

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnx", "torch")
#: Model precisions (the CLI's `--precision`): "int8" is the statically quantized ONNX model of models/quantize.py.
PRECISIONS = ("fp32", "int8")


class Runtime:
    """Inference on float32 batches (B, 3, S, S) already preprocessed per `backbone.data_config`.

    backend (the CLI's `--runtime`):
      "onnx": export the backbone once with `torch.onnx.export(..., dynamo=False)` (dynamic batch axis)
        to `cache_dir/onnx/<name>-<weights_id>.onnx` and run it with onnxruntime's CPUExecutionProvider;
      "torch": eager PyTorch, channels_last, under inference_mode;
      "auto": "onnx", falling back to "torch" with a logged warning if export or session creation fails.
    device: "cpu" (default), "cuda[:N]" or "auto" (models/devices.py): ONNX Runtime runs on a GPU through its CUDA
      provider (onnxruntime-gpu), PyTorch through its CUDA build; `device` holds where it runs ("cpu", "cuda:N").
    threads: intra-op threads (default: `os.cpu_count()`). For "torch" it sets `torch.set_num_threads`,
      which is process-wide, and only when given.
    cache_dir: default `$MMINDEX_CACHE` (else `~/.cache/mmindex`).
    precision: "fp32", or "int8": the model quantized by models/quantize.py, built once (about a minute) and
      cached as `cache_dir/onnx/<name>-<weights_id>-int8.onnx`; ONNX Runtime on the CPU only, never a fallback.
    `backend` holds the backend actually used after construction. The backbone is put in eval mode.
    """

    def __init__(self, backbone: Backbone, backend: str = "auto", threads: int | None = None,
                 cache_dir: str | os.PathLike | None = None, device: str | torch.device | None = None,
                 precision: str = "fp32"):
        if backend not in BACKENDS:
            raise ModelError(f"unknown runtime {backend!r}; choose one of {', '.join(BACKENDS)}")
        if precision not in PRECISIONS:
            raise ModelError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        self.precision = precision
        device = devices.check(str(device or "cpu"))
        if precision == "int8":
            if backend == "torch" or device.startswith("cuda"):
                raise ModelError("the int8 model runs on ONNX Runtime on the CPU: use --runtime onnx (or auto) "
                                 "and --device cpu (or auto)")
            device = "cpu"
        self.backbone = backbone.eval()
        self.threads = threads or os.cpu_count() or 1
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.onnx_path: Path | None = None
        self._session = None
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        if backend in ("onnx", "auto"):
            try:
                self._session, self.device = self._onnx_session(device)
                self.backend = "onnx"
                return
            except Exception as e:  # export and onnxruntime raise many types; all mean "cannot use ONNX"
                if isinstance(e, ModelError) and (precision == "int8" or backend == "onnx"):
                    raise  # says what is missing (the sample media to calibrate on, a GPU build)
                if backend == "onnx" or precision == "int8":
                    raise ModelError(f"ONNX Runtime unavailable for {backbone.name}: {type(e).__name__}: {e}") from e
                log.warning("ONNX Runtime unavailable for %s on %s (%s: %s); falling back to PyTorch",
                            backbone.name, device, type(e).__name__, e)
        self.device = _torch_device(device)
        if threads:
            torch.set_num_threads(threads)
        if self.device.startswith("cuda"):
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        self.backbone.to(self.device)
        # channels_last lets oneDNN pick its fast convolution kernels (about 1.7x for lite0 on this CPU).
        self.backbone.to(memory_format=torch.channels_last)
        self.backend = "torch"

    # ---- running ---------------------------------------------------------------------------------
    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 3, S, S) float32 -> (probabilities (B, num_classes), L2-normalised embeddings (B, embed_dim)).

        Both outputs are float32. `ModelError` if the batch does not have the backbone's input shape.
        """
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        size = self.backbone.data_config.input_size
        if batch.ndim != 4 or batch.shape[1:] != (3, size, size):
            # The ONNX graph was traced at this size (TF "SAME" padding is baked in), so check for both backends.
            raise ModelError(f"{self.backbone.name} expects a batch of shape (B, 3, {size}, {size}), "
                             f"got {batch.shape}")
        if self._session is not None:
            probs, emb = self._session.run(None, {"images": batch})
        else:
            with torch.inference_mode():
                x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=torch.channels_last)
                p, e = self.backbone(x)
            probs, emb = p.cpu().numpy(), e.cpu().numpy()
        return probs.astype(np.float32, copy=False), emb.astype(np.float32, copy=False)

    # ---- ONNX ------------------------------------------------------------------------------------
    def _onnx_session(self, device: str):
        """(session, the device it runs on) over the exported model, exported first if not cached."""
        path = self._onnx_file()
        opts = session_options(self.threads)  # one definition, shared with cached exports (exports.py)
        try:
            return devices.onnx_session(path, opts, device)
        except ModelError:
            raise  # no GPU build or no GPU: exporting again would not help
        except Exception:
            if path.parent != self._cache_folder():
                raise
            # A cached file that onnxruntime cannot load (truncated by a full disk, another user's unreadable
            # file...): export it again once rather than fail on every run.
            log.warning("cached ONNX model %s cannot be loaded; exporting it again", path)
            try:
                path.unlink(missing_ok=True)
                path = self._onnx_file()
            except OSError:  # not ours to replace: use a private export for this process
                path = self._private_folder() / path.name
                self._export(path)
                self.onnx_path = path
            return devices.onnx_session(path, opts, device)

    def _cache_folder(self) -> Path:
        return self.cache_dir / "onnx"

    def _onnx_file(self) -> Path:
        """The exported model: reused from the cache when present, else exported (atomically) into it."""
        b = self.backbone
        if b.weights_id == RANDOM_WEIGHTS:
            # Random weights differ between models that share the id "random": never cache them.
            folder = self._private_folder()
        else:
            folder = self._cache_folder()
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                log.warning("cannot create ONNX cache %s (%s); exporting to a temporary folder", folder, e)
                folder = self._private_folder()
        path = folder / f"{b.name}-{b.weights_id}{'-int8' if self.precision == 'int8' else ''}.onnx"
        if path.is_file():
            log.info("using cached ONNX model %s", path)
        else:
            if not os.access(folder, os.W_OK):
                log.warning("ONNX cache %s is not writable; exporting to a temporary folder", folder)
                path = self._private_folder() / path.name
            self._export(path)
        self.onnx_path = path
        return path

    def _private_folder(self) -> Path:
        if self._tmpdir is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="mmindex-onnx-")
        return Path(self._tmpdir.name)

    def _export(self, path: Path) -> None:
        """Export to a temporary file beside `path`, then rename: a reader never sees half a file."""
        if self.precision == "int8":
            from mmindex.models.quantize import write_int8  # deferred: ONNX Runtime's quantization tools

            write_int8(self.backbone, path)
            return
        size = self.backbone.data_config.input_size
        # Batch 2, not 1: tracing at batch 1 can let an exporter fold the batch dimension into constants.
        dummy = torch.zeros(2, 3, size, size)
        log.info("exporting %s to ONNX (%s)", self.backbone.name, path)
        # Written 0644 (atomic_write's default): the cache is shared with other users (the server, `nobody` in tests).
        with atomic_write(path) as tmp, torch.no_grad(), warnings.catch_warnings():
            # dynamo=False on purpose: the dynamo exporter needs onnxscript, which is not a dependency.
            # The TorchScript exporter's deprecation notices are therefore not news to the user.
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            torch.onnx.export(
                self.backbone, (dummy,), str(tmp),
                input_names=["images"], output_names=["probs", "embeddings"],
                dynamic_axes={"images": {0: "batch"}, "probs": {0: "batch"}, "embeddings": {0: "batch"}},
                opset_version=OPSET, dynamo=False,
            )


def _torch_device(device: str) -> str:
    """The PyTorch device for `device`: "auto" is CUDA when PyTorch sees a GPU; `ModelError` for a GPU it lacks."""
    has_gpu = device != "cpu" and torch.cuda.is_available()
    if device == "auto":
        return "cuda:0" if has_gpu else "cpu"
    if device.startswith("cuda") and not has_gpu:
        raise ModelError(f"--device {device}: neither ONNX Runtime (its GPU build: {devices.GPU_INSTALL}) nor "
                         "PyTorch can use a CUDA GPU here; use --device cpu or auto")
    return "cuda:0" if device == "cuda" else device
