"""Backbones, their weights and their runtimes.

Code outside this package uses only what is exported here:

    from mmindex.models import create_model, Runtime
    backbone = create_model("efficientnet_lite0")            # packaged weights, works offline
    runtime = Runtime(backbone)                               # ONNX Runtime, falling back to PyTorch
    probs, embeddings = runtime.run(batch)                    # batch preprocessed per backbone.data_config
"""

from __future__ import annotations

import importlib

__all__ = ["Backbone", "DataConfig", "Runtime", "create_model", "list_models", "model_info", "register_model"]

_WHERE = {"Backbone": "backbones", "DataConfig": "weights", "Runtime": "runtime", "create_model": "registry",
          "list_models": "registry", "model_info": "registry", "register_model": "registry"}


def __getattr__(name: str):
    # Imported on first use: PyTorch and timm take seconds and 700 MB, and importing a submodule such as
    # `mmindex.models.loader` (which every Engine does) runs this file first.
    if name in _WHERE:
        return getattr(importlib.import_module(f"mmindex.models.{_WHERE[name]}"), name)
    raise AttributeError(name)
