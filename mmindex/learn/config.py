"""`TrainConfig`: every option of the lecture's recipe with its default; saved resolved beside each detector.

Defaults follow the lecture (G. Quénot, after Y. LeCun's recommendations): softmax cross-entropy for
exclusive classes and per-label sigmoid cross-entropy for multi-label sets; shuffled mini-batches
(32–256); inputs normalised to zero mean and unit variance; SGD with momentum; a step decay of the
learning rate ("constant for n epochs, then divide by k"); a bit of L2 (or L1) that switches on after a
couple of epochs; dropout; early stopping on the validation metric.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from mmindex.config import DEFAULT_MODEL
from mmindex.errors import DataError

MODES = ("probe", "finetune", "scratch")
LOSSES = ("auto", "softmax", "sigmoid", "mse")


@dataclass
class TrainConfig:
    """How a detector is trained.

    mode: "probe" (frozen backbone features, cached, + head), "finetune" (backbone + head end to end) or
        "scratch" (a small architecture from `mmindex.learn.archs`, random weights, raw pixels).
    backbone: the ImageNet backbone for probe / finetune (see `mmindex models`).
    arch: the small architecture for scratch (see `mmindex.learn.archs.list_archs`).
    input_size, channels: scratch-mode input (images are resized and, for 1 channel, made grey).
    head: "linear" or "mlp"; hidden: MLP width; dropout: dropout rate in the head (0.2–0.5 in the lecture).
    loss: "softmax" (exclusive classes), "sigmoid" (multi-label, soft labels allowed), "mse", or
        "auto" (softmax for class folders, sigmoid for annotation files).
    epochs, batch_size: training length and mini-batch size (shuffled every epoch).
    lr, momentum: SGD. backbone_lr: the LR of the backbone's parameter group relative to `lr`
        (finetune; the head learns at `lr`).
    schedule: "step" | "cosine" | "constant"; step_every, step_factor: "constant for step_every epochs,
        then divide by step_factor"; warmup: linear warm-up epochs.
    l2, l1: weight penalties λ·Σw² and λ·Σ|w| on weights (not biases or BN), active from epoch `penalty_from`.
    patience: early stopping after this many epochs without a better validation metric (0: never).
    val_fraction: the split held out for validation when no `--val` set is given (stratified for classes).
    calibrate: fit temperature (softmax) or Platt (sigmoid) scaling on the validation split.
    seed: seeds Python, NumPy and PyTorch, the split and the shuffling: the same seed gives the same run.
    """

    mode: str = "probe"
    backbone: str = DEFAULT_MODEL
    arch: str = "vgg_small"
    input_size: int = 28
    channels: int = 1
    head: str = "linear"
    hidden: int = 512
    dropout: float = 0.0
    loss: str = "auto"
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    backbone_lr: float = 0.1
    schedule: str = "step"
    step_every: int = 10
    step_factor: float = 10.0
    warmup: float = 0.0
    l2: float = 1e-4
    l1: float = 0.0
    penalty_from: int = 2
    patience: int = 5
    val_fraction: float = 0.2
    calibrate: bool = True
    seed: int = 0

    def validate(self) -> TrainConfig:
        """Raise `DataError` for values no run could use; returns self."""
        from mmindex.learn.heads import HEADS
        from mmindex.learn.schedules import SCHEDULES

        checks = [
            (self.mode in MODES, f"mode must be one of {', '.join(MODES)}"),
            (self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}"),
            (self.head in HEADS, f"head must be one of {', '.join(HEADS)}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (1 <= self.batch_size <= 65536, "batch size must be between 1 and 65536"),
            (self.lr > 0, "learning rate must be > 0"),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.l1 >= 0 and self.l2 >= 0, "penalties must be >= 0"),
            (0 < self.val_fraction < 1, "validation fraction must be in (0, 1)"),
            (self.channels in (1, 3), "channels must be 1 or 3"),
            (self.input_size >= 8, "input size must be >= 8"),
        ]
        for ok, message in checks:
            if not ok:
                raise DataError(f"bad training option: {message}")
        return self

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """From a saved dict; unknown keys (from a newer mmindex) are ignored, missing keys take defaults."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
