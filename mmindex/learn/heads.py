"""Classification heads put on pooled features: linear, or an MLP with ReLU and dropout.

Dropout (lecture: "neutralize a given proportion, typically 0.2 to 0.5, of randomly selected
connections") is PyTorch's inverted dropout: activations are scaled by 1/(1−p) while training, so
prediction keeps every connection with no extra factor.
"""

from __future__ import annotations

from torch import Tensor, nn

HEADS = ("linear", "mlp")


class Head(nn.Module):
    """features (B, D) → logits (B, C). `kind` is "linear" or "mlp" (one hidden ReLU layer)."""

    def __init__(self, in_dim: int, num_outputs: int, kind: str = "linear", hidden: int = 512,
                 dropout: float = 0.0):
        super().__init__()
        if kind not in HEADS:
            raise ValueError(f"unknown head {kind!r}; choose one of {', '.join(HEADS)}")
        layers: list[nn.Module] = []
        if kind == "mlp":
            layers += [nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.ReLU(inplace=True)]
            in_dim = hidden
        layers += [nn.Dropout(dropout), nn.Linear(in_dim, num_outputs)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
