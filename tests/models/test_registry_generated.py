"""Generated from the registry: every registered network builds with random weights, runs forward at a small
input, exports to ONNX (ONNX Runtime agrees with PyTorch), trains from scratch (a few SGD steps lower the
loss), and has the depth its authors count.

Small inputs keep the big networks cheap (VGG-19 and ResNet-152 at 64 px, batch 2): the size is 64 px,
or the smallest size the network accepts when that is larger (67 px for the original AlexNet). Only the
ONNX export of AlexNet and VGG runs at their own input size (see `onnx_size`).
"""

from __future__ import annotations

import dataclasses
import gc

import pytest
import torch
import torch.nn.functional as F

from mmindex.errors import ModelError
from mmindex.models import Runtime, create_model, list_models, model_info
from mmindex.models.describe import describe_model, smallest_input

MODELS = list_models()
SMALL = 64


def small_size(name: str) -> int:
    try:
        describe_model(name, (3, SMALL, SMALL))
        return SMALL
    except ModelError:
        return smallest_input(name)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These batches are tiny: two OpenMP threads only meet at every op's barrier, and on a busy 2-core
    machine that made DenseNet-169's forward pass 100× slower (10 s instead of 0.1 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", params=MODELS)
def built(request):
    """(name, random-weights backbone, small input size, a batch of 2 at that size); built once per model."""
    name = request.param
    torch.manual_seed(0)
    model = create_model(name, weights=None)
    size = small_size(name)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    yield name, model, size, x
    del model
    gc.collect()


def test_registry_offers_the_networks_that_went_deeper():
    assert {"alexnet", "alexnet2012", "vgg16", "vgg19", "googlenet", "resnet18", "resnet50", "resnet152",
            "resnet50_sd", "densenet121", "densenet169", "efficientnet_lite0", "efficientnet_lite1",
            "efficientnet_lite2"} <= set(MODELS)


def test_forward_at_a_small_input(built):
    name, model, size, x = built
    assert size == (67 if name == "alexnet2012" else SMALL)
    with torch.inference_mode():
        probs, emb = model(x)
    assert probs.shape == (2, 1000) and emb.shape == (2, model.embed_dim)
    assert torch.isfinite(probs).all() and torch.isfinite(emb).all()
    torch.testing.assert_close(probs.sum(1), torch.ones(2))


def onnx_size(model, small: int) -> int:
    """ONNX's exporter takes an adaptive average pool only when its output size divides its input size: the
    6×6 / 7×7 pools of AlexNet and VGG export at their own input size only (where they are the identity)."""
    grids = [m.output_size for m in model.modules() if isinstance(m, torch.nn.AdaptiveAvgPool2d)]
    return model.data_config.input_size if any(g not in (1, (1, 1)) for g in grids) else small


def test_onnx_export_agrees_with_torch(built, tmp_path):
    name, model, size, x = built
    if (size := onnx_size(model, size)) != x.shape[-1]:
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    dc = model.data_config
    model.data_config = dataclasses.replace(dc, input_size=size)  # export at the small size
    try:
        runtime = Runtime(model, backend="onnx", cache_dir=tmp_path, threads=1)
        assert runtime.backend == "onnx" and runtime.onnx_path.is_file()
        probs, emb = runtime.run(x.numpy())
        with torch.inference_mode():
            p_ref, e_ref = model(x)
        torch.testing.assert_close(torch.from_numpy(probs), p_ref, atol=1e-4, rtol=1e-3)
        torch.testing.assert_close(torch.from_numpy(emb), e_ref, atol=1e-4, rtol=1e-3)
    finally:
        model.data_config = dc
        runtime = None
        gc.collect()


def test_scratch_training_steps_lower_the_loss(built):
    name, model, size, x = built
    y = torch.tensor([3, 7])
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    first = next(p for p in model.parameters() if p.requires_grad)
    start = first.detach().clone()

    def loss() -> torch.Tensor:
        torch.manual_seed(2)  # the same dropout / stochastic-depth draws each time: one loss function
        return F.cross_entropy(model.logits(model.pooled(x)), y)

    with torch.no_grad():
        before = loss().item()
    for _ in range(2):
        opt.zero_grad()
        loss().backward()
        opt.step()
    with torch.no_grad():
        after = loss().item()
    model.eval()
    assert after < before, (name, before, after)
    assert not torch.equal(first.detach(), start), "the first layer did not learn"


@pytest.mark.parametrize("name", MODELS)
def test_depth_is_the_weighted_layers_the_authors_count(name):
    d = describe_model(name)
    depth = model_info(name)["depth"]
    # ResNets' 1×1 projection shortcuts sit beside the path, not on it; the authors do not count them.
    shortcuts = sum(1 for r in d.layers if r.kernel and ".downsample." in r.name + ".")
    if name == "googlenet":
        # Inception modules run branches side by side: 22 is its deepest path (Szegedy et al. 2015), fewer
        # than its 57 convolutions + 1 fully connected layer.
        assert (depth, d.weighted_layers) == (22, 58)
    else:
        assert d.weighted_layers - shortcuts == depth, (d.weighted_layers, shortcuts)
    assert d.params == model_info(name)["params"]
