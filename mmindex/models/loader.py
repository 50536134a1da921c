"""A model loaded on first use and shared by the threads that need it (the indexer's and the searcher's)."""

from __future__ import annotations

import threading


class LazyModel:
    """The backbone `name` and its inference `Runtime`, each created once, when first asked for.

    Nothing heavy is imported until then: a search by concept never loads PyTorch.
    """

    def __init__(self, name: str, backend: str = "auto", threads: int | None = None):
        self.name, self._backend, self._threads = name, backend, threads
        self._backbone = None
        self._runtime = None
        self._lock = threading.Lock()

    @property
    def backbone(self):
        with self._lock:
            if self._backbone is None:
                from mmindex.models.registry import create_model  # deferred: builds the network (PyTorch)

                self._backbone = create_model(self.name)
            return self._backbone

    @property
    def runtime(self):
        backbone = self.backbone
        with self._lock:
            if self._runtime is None:
                from mmindex.models.runtime import Runtime  # deferred: PyTorch and ONNX Runtime

                self._runtime = Runtime(backbone, backend=self._backend, threads=self._threads)
            return self._runtime
