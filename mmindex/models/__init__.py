"""Backbones, their weights and their runtimes.

Code outside this package uses only what is exported here:

    from mmindex.models import create_model, Runtime
    backbone = create_model("efficientnet_lite0")            # packaged weights, works offline
    runtime = Runtime(backbone)                               # ONNX Runtime, falling back to PyTorch
    probs, embeddings = runtime.run(batch)                    # batch preprocessed per backbone.data_config
"""

from mmindex.models.backbones import Backbone
from mmindex.models.registry import create_model, list_models, model_info, register_model
from mmindex.models.runtime import Runtime
from mmindex.models.weights import DataConfig

__all__ = ["Backbone", "DataConfig", "Runtime", "create_model", "list_models", "model_info", "register_model"]
