"""A model loaded on first use and shared by the threads that need it (the indexer's and the searcher's)."""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import threading

from mmindex.errors import ModelError
from mmindex.models import exports

log = logging.getLogger(__name__)


class LazyModel:
    """The backbone `name` (default weights) and its inference `Runtime`, each created once, when first asked for.

    Nothing heavy is imported until then: a search by concept never loads a model. When the model's ONNX
    export is cached with its sidecar (models/exports.py), `data_config`, `weights_id` and `runtime` come
    from the cache and PyTorch is never imported; `backbone` always builds the network. Where PyTorch is not
    installed, an EfficientNet-Lite's export is built from its weights without it (models/lite_graph.py).
    """

    def __init__(self, name: str, backend: str = "auto", threads: int | None = None, precision: str = "fp32",
                 device: str = "cpu"):
        self.name, self._backend, self._threads, self.precision = name, backend, threads, precision
        self.device = device  # asked for (models/devices.py); the runtime's `device` says where it runs
        self._backbone = None
        self._runtime = None
        self._export: exports.ExportInfo | None | bool = False  # False: not looked up yet
        self._lock = threading.Lock()

    @property
    def export(self) -> exports.ExportInfo | None:
        """The cached export of the default weights (None if there is none, or the backend is "torch")."""
        if self._export is False:
            info = exports.find(self.name) if self._backend in ("auto", "onnx") else None
            if info is None and self._backend in ("auto", "onnx") and importlib.util.find_spec("torch") is None:
                # The install without `mmindex[train]`: build the graph from the weights themselves (lite_graph.py)
                from mmindex.models import lite_graph  # deferred: imports `onnx`

                info = lite_graph.export_default(self.name)
            self._export = info
        return self._export  # type: ignore[return-value]

    @property
    def data_config(self):
        """How images are preprocessed for the model's weights (`DataConfig`)."""
        info = self.export
        return info.data_config if info is not None else self.backbone.data_config

    @property
    def weights_id(self) -> str:
        """The id of the model's weights (the first 16 hex digits of their file's sha256)."""
        info = self.export
        return info.weights_id if info is not None else self.backbone.weights_id

    @property
    def embed_dim(self) -> int:
        """The size of the model's embeddings (from the registry, which builds no network, without a cached export)."""
        info = self.export
        if info is not None:
            return info.embed_dim
        from mmindex.models.registry import model_info  # deferred: the registry imports the model builders

        return int(model_info(self.name)["embed_dim"])

    @property
    def backbone(self):
        """The network itself (PyTorch), with its default weights."""
        with self._lock:
            if self._backbone is None:
                from mmindex.models.registry import create_model  # deferred: builds the network (PyTorch)

                self._backbone = create_model(self.name)
            return self._backbone

    @property
    def runtime(self):
        """`Runtime` (or, from a cached export, `CachedRuntime`, which runs the same graph the same way)."""
        info = self.export
        if info is not None and self.precision == "int8":  # the quantized graph beside the export, if built
            int8 = info.onnx.with_name(f"{info.onnx.stem}-int8.onnx")
            info = dataclasses.replace(info, onnx=int8) if int8.is_file() else None
        if info is not None and self._runtime is None:
            with self._lock:
                if self._runtime is None:
                    try:
                        self._runtime = exports.CachedRuntime(info, self._threads, self._device())
                    except ModelError:
                        raise  # the GPU asked for cannot be used: building the model would not change that
                    except Exception as exc:  # onnxruntime raises many types: build and export as without cache
                        log.warning("cached ONNX model %s cannot be used (%s); building the model", info.onnx, exc)
                        self._export = None
        if self._runtime is not None:
            return self._runtime
        backbone = self.backbone
        with self._lock:
            if self._runtime is None:
                from mmindex.models.registry import get_entry
                from mmindex.models.runtime import Runtime  # deferred: PyTorch and ONNX Runtime

                runtime = Runtime(backbone, backend=self._backend, threads=self._threads, precision=self.precision,
                                  device=self._device())
                if runtime.backend == "onnx" and runtime.onnx_path is not None and self.precision == "fp32":
                    exports.record(backbone, runtime.onnx_path, get_entry(self.name).default_weights)
                self._runtime = runtime
            return self._runtime


    def _device(self) -> str:
        # The int8 model runs on the CPU only: "auto" means the CPU for it, and "cuda" is refused by `Runtime`.
        return "cpu" if self.precision == "int8" and self.device == "auto" else self.device


def load_runtime(name: str, weights: str | None = "default", backend: str = "auto", threads: int | None = None,
                 device: str = "cpu", precision: str = "fp32"):
    """A runtime of the model `name` with `weights` ("default", None for random, a file or URL) on `device`: from
    the cached export when there is one for the default weights (no PyTorch), else `Runtime(create_model(...))`.
    `precision` "int8" (models/quantize.py) is for the default weights only: `ModelError` for others."""
    if weights == "default":
        return LazyModel(name, backend, threads, precision, device).runtime
    if precision != "fp32":
        raise ModelError(f"--precision {precision} quantizes the default weights only, not {weights or 'random'} ones")
    from mmindex.models.registry import create_model
    from mmindex.models.runtime import Runtime  # deferred: PyTorch

    return Runtime(create_model(name, weights), backend=backend, threads=threads, device=device)
