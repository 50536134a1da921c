"""Pure LR schedules, heads, and every registered small architecture (generated from the registry)."""

from __future__ import annotations

import pytest
import torch

from mmindex.errors import ModelError
from mmindex.learn.archs import create_arch, lenet, list_archs, register_arch
from mmindex.learn.heads import Head
from mmindex.learn.schedules import cosine, learning_rate, step_decay


def test_step_decay_is_constant_then_divided():
    assert [step_decay(e, 0.1, 10, 10) for e in (0, 9.99, 10, 19, 20)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])
    assert step_decay(5, 0.1, 0, 10) == 0.1


def test_cosine_runs_from_base_to_min():
    assert cosine(0, 0.1, 10) == pytest.approx(0.1)
    assert cosine(5, 0.1, 10) == pytest.approx(0.05)
    assert cosine(10, 0.1, 10) == pytest.approx(0.0, abs=1e-12)
    assert cosine(20, 0.1, 10) == pytest.approx(0.0, abs=1e-12)


def test_learning_rate_warmup_and_unknown():
    assert learning_rate(0.5, 0.1, "constant", total=10, warmup=1) == pytest.approx(0.05)
    assert learning_rate(3, 0.1, "step", total=10, every=2, factor=2) == pytest.approx(0.05)
    with pytest.raises(ValueError):
        learning_rate(0, 0.1, "exp", total=1)


def test_heads_shapes_and_dropout_only_in_training():
    torch.manual_seed(0)
    x = torch.randn(8, 16)
    for kind in ("linear", "mlp"):
        h = Head(16, 3, kind, hidden=32, dropout=0.5)
        assert h(x).shape == (8, 3)
        h.eval()
        torch.testing.assert_close(h(x), h(x))
    with pytest.raises(ValueError):
        Head(16, 3, "transformer")


@pytest.mark.parametrize("name", list_archs())
def test_every_small_architecture_builds_and_trains_a_step(name):
    torch.manual_seed(0)
    net = create_arch(name, 1)
    x = torch.randn(4, 1, 28, 28)
    out = net(x)
    assert out.shape == (4, net.embed_dim) and torch.isfinite(out).all()
    loss = out.square().mean()
    loss.backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    assert create_arch(name, 3)(torch.randn(2, 3, 28, 28)).shape == (2, net.embed_dim)


def test_arch_registry_errors():
    assert {"lenet", "alexnet_small", "vgg_small", "resnet_small", "densenet_small"} <= set(list_archs())
    with pytest.raises(ModelError, match="known"):
        create_arch("resnet9000")
    with pytest.raises(ModelError, match="already registered"):
        register_arch(lenet)


def test_vgg_small_takes_mosaic_sized_inputs():
    net = create_arch("vgg_small", 1).eval()
    assert net(torch.randn(2, 1, 56, 56)).shape == (2, net.embed_dim)
