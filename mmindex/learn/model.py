"""The trained detector: input normalisation → (backbone | small network | nothing) → head → calibrated scores.

One module for the three modes, so training, evaluation and `apply` never special-case a mode:
    probe     input = backbone features (N, D) (what the index stores); the network is the identity
    finetune  input = images preprocessed for the backbone (N, 3, S, S); the network is `backbone.pooled`
    scratch   input = pixels in [0, 1] (N, C, S, S); the network is a small architecture from `archs`
Inputs are normalised to zero mean and unit variance (the lecture's recipe) with statistics of the
training set, kept as buffers so they travel in the bundle.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmindex.learn.config import TrainConfig
from mmindex.learn.heads import Head


class Detector(nn.Module):
    """logits(x) → (N, C); scores(x) → calibrated probabilities (N, C)."""

    def __init__(self, config: TrainConfig, labels: list[str], loss: str, in_dim: int | None = None):
        """`loss` is the resolved loss ("softmax", "sigmoid" or "mse"); `in_dim` the feature size in probe mode."""
        super().__init__()
        self.config = config
        self.labels = list(labels)
        self.loss = loss
        self.network: nn.Module
        if config.mode == "probe":
            self.network = nn.Identity()
            dim = int(in_dim or 0)
            shape = (1, dim)
        elif config.mode == "scratch":
            from mmindex.learn.archs import create_arch  # deferred: PyTorch, through mmindex.learn

            self.network = create_arch(config.arch, config.channels)
            dim = self.network.embed_dim
            shape = (1, config.channels, 1, 1)
        else:
            from mmindex.models import create_model  # deferred: the backbone registry builds PyTorch models

            backbone = create_model(config.backbone)
            self.network = _Pooled(backbone)
            dim = backbone.embed_dim
            shape = (1, 3, 1, 1)
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))
        self.head = Head(dim, len(labels), config.head, config.hidden, config.dropout)
        # Calibration (identity until fitted): temperature for softmax, Platt (a, b) per label for sigmoid.
        self.register_buffer("temperature", torch.ones(()))
        self.register_buffer("platt_a", torch.ones(len(labels)))
        self.register_buffer("platt_b", torch.zeros(len(labels)))

    def set_normalisation(self, x: Tensor) -> None:
        """Zero mean, unit variance per feature (probe) or per channel (images), from training inputs `x`."""
        dims = (0,) if x.dim() == 2 else (0, 2, 3)
        self.mean.copy_(x.float().mean(dims, keepdim=True))
        self.std.copy_(x.float().std(dims, keepdim=True).clamp(min=1e-6))

    def logits(self, x: Tensor) -> Tensor:
        return self.head(self.network((x.float() - self.mean) / self.std))

    forward = logits

    def probabilities(self, logits: Tensor) -> Tensor:
        """Calibrated probabilities from logits: softmax(z/T), σ(a·z + b), or clipped outputs for MSE."""
        if self.loss == "softmax":
            return (logits / self.temperature).softmax(-1)
        if self.loss == "sigmoid":
            return torch.sigmoid(self.platt_a * logits + self.platt_b)
        return logits.clamp(0.0, 1.0)

    @torch.inference_mode()
    def scores(self, x: Tensor, batch_size: int = 512) -> Tensor:
        """Calibrated probabilities (N, C) in eval mode, batch by batch on the model's device; returned on the CPU."""
        was = self.training
        self.eval()
        dev = self.mean.device
        try:
            parts = [self.probabilities(self.logits(x[i:i + batch_size].to(dev))).cpu()
                     for i in range(0, len(x), batch_size)]
        finally:
            self.train(was)
        return torch.cat(parts) if parts else torch.zeros(0, len(self.labels))


class _Pooled(nn.Module):
    """A backbone seen as its pooled features (finetune mode)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone.pooled(x)
