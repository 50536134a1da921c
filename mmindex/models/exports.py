"""Cached ONNX exports that run without PyTorch: the sidecar beside an export, and a session over it.

Exporting a backbone needs PyTorch and timm (seconds to import, 700 MB); running the export needs only ONNX
Runtime. So the first run that exports a model's default weights (or finds them exported) also writes,
beside the export, what a later run needs to use it without building the network:

    $MMINDEX_CACHE/onnx/efficientnet_lite0-579344248a93e230.onnx        the graph (runtime.py exports it)
    $MMINDEX_CACHE/onnx/efficientnet_lite0.default-1a2b3c4d.json       its sidecar

The sidecar names the export and holds the weights id, the preprocessing (`DataConfig`), the sizes, and the
weights file the export was made from, with that file's size and modification time: when the file changes
(a package reinstalled), the sidecar no longer applies and the model is built and exported again, as before.
The sidecar's name ends in a digest of the session options (`SESSION`), so changing them changes the key:
a sidecar written under other options is never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mmindex.atomic import write_bytes
from mmindex.config import cache_dir as default_cache_dir
from mmindex.errors import ModelError
from mmindex.models import devices
from mmindex.models.weights import RANDOM_WEIGHTS, DataConfig, WeightsSource, weights_file

log = logging.getLogger(__name__)

#: ONNX opset of the exported graphs (supported by onnxruntime >= 1.14), traced (runtime.py) or built (lite_graph.py).
OPSET = 17
FORMAT = 1  # of the sidecar: a sidecar of another format is ignored (the model is built and it is rewritten)
#: How every ONNX Runtime session over a backbone is made (`Runtime` and `CachedRuntime` alike); threads
#: are per run. Decoding threads share the cores with inference: spinning workers would steal their time.
#: The execution providers are not among them: they follow `--device` (models/devices.py) and change no file.
SESSION = {"graph_optimization_level": "ORT_ENABLE_ALL", "inter_op_num_threads": 1,
           "config": {"session.intra_op.allow_spinning": "0"}}


def session_options(threads: int):
    """ONNX Runtime session options per `SESSION`, with `threads` intra-op threads."""
    import onnxruntime as ort  # deferred: 0.2 s, and only a model run needs it

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = SESSION["inter_op_num_threads"]
    for key, value in SESSION["config"].items():
        opts.add_session_config_entry(key, value)
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, SESSION["graph_optimization_level"])
    return opts


def options_key() -> str:
    """8 hex digits of the session options and the sidecar format: part of every sidecar's name."""
    return hashlib.sha256(json.dumps([FORMAT, SESSION], sort_keys=True).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class ExportInfo:
    """What a run needs of a backbone whose export is cached: as a `Backbone`'s attributes of the same names."""

    name: str
    weights_id: str
    data_config: DataConfig
    embed_dim: int
    num_classes: int
    onnx: Path
    weights_file: str
    weights_size: int
    weights_mtime_ns: int


def sidecar_path(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the sidecar of `name`'s default weights is (under the current session options)."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / "onnx" / f"{name}.default-{options_key()}.json"


def find(name: str, cache_dir: str | os.PathLike | None = None) -> ExportInfo | None:
    """The cached export of `name` with its default weights, if its sidecar, its graph and its (unchanged)
    weights file are all there; else None. Never imports PyTorch."""
    path = sidecar_path(name, cache_dir)
    try:
        doc = json.loads(path.read_text())
        info = ExportInfo(doc["name"], doc["weights_id"], DataConfig(**{**doc["data_config"], "mean": tuple(
            doc["data_config"]["mean"]), "std": tuple(doc["data_config"]["std"])}), int(doc["embed_dim"]),
            int(doc["num_classes"]), path.parent / doc["onnx"], doc["weights_file"], int(doc["weights_size"]),
            int(doc["weights_mtime_ns"]))
        if doc.get("format") != FORMAT or info.name != name:
            return None
        st = os.stat(info.weights_file)
        if (st.st_size, st.st_mtime_ns) != (info.weights_size, info.weights_mtime_ns) or not info.onnx.is_file():
            return None
        return info
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:  # unreadable or garbled: build the model instead
        log.warning("ignoring the ONNX cache sidecar %s (%s)", path, exc)
        return None


def record(backbone, onnx_path: Path, source: WeightsSource | None, cache_dir: str | os.PathLike | None = None) -> None:
    """Write the sidecar of `backbone` (built with its default weights `source`) exported at `onnx_path`.

    Only for an export in the shared cache, with real weights read from a file; best effort (a read-only
    cache only means the next run builds the model again).
    """
    path = sidecar_path(backbone.name, cache_dir)
    wfile = weights_file(source) if source is not None else None
    if backbone.weights_id == RANDOM_WEIGHTS or wfile is None or Path(onnx_path).parent != path.parent:
        return
    st = wfile.stat()
    doc = {"format": FORMAT, "name": backbone.name, "weights_id": backbone.weights_id, "weights": str(source),
           "data_config": asdict(backbone.data_config), "embed_dim": backbone.embed_dim,
           "num_classes": backbone.num_classes, "onnx": Path(onnx_path).name, "weights_file": str(wfile.resolve()),
           "weights_size": st.st_size, "weights_mtime_ns": st.st_mtime_ns, "session": SESSION}
    try:
        write_bytes(path, json.dumps(doc, indent=1).encode())
    except OSError as exc:
        log.warning("cannot write the ONNX cache sidecar %s (%s)", path, exc)


class CachedRuntime:
    """`Runtime`'s ONNX backend over a cached export, without PyTorch: `run`, `backend`, `backbone` (the
    `ExportInfo`), `threads`, `onnx_path`, `device` (where it runs, see models/devices.py). Raises `ModelError`
    when the GPU asked for cannot be used, and what ONNX Runtime raises if the file cannot be loaded."""

    backend = "onnx"

    def __init__(self, info: ExportInfo, threads: int | None = None, device: str = "cpu"):
        self.backbone, self.onnx_path = info, info.onnx
        self.threads = threads or os.cpu_count() or 1
        self._session, self.device = devices.onnx_session(info.onnx, session_options(self.threads), device)

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 3, S, S) float32 -> (probabilities (B, num_classes), L2-normalised embeddings (B, embed_dim))."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        size = self.backbone.data_config.input_size
        if batch.ndim != 4 or batch.shape[1:] != (3, size, size):
            raise ModelError(f"{self.backbone.name} expects a batch of shape (B, 3, {size}, {size}), "
                             f"got {batch.shape}")
        probs, emb = self._session.run(None, {"images": batch})
        return probs.astype(np.float32, copy=False), emb.astype(np.float32, copy=False)
