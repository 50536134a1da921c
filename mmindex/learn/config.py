"""`TrainConfig`: every option of the lecture's recipe with its default; saved resolved beside each detector.

Defaults follow the lecture (G. Quénot, after Y. LeCun's recommendations): softmax cross-entropy for
exclusive classes and per-label sigmoid cross-entropy for multi-label sets; shuffled mini-batches
(32–256); inputs normalised to zero mean and unit variance; SGD with momentum; a step decay of the
learning rate ("constant for n epochs, then divide by k"); a bit of L2 (or L1) that switches on after a
couple of epochs; dropout; early stopping on the validation metric.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from mmindex.config import DEFAULT_MODEL
from mmindex.errors import DataError
from mmindex.learn.schedules import SCHEDULES

MODES = ("probe", "finetune", "scratch")
LOSSES = ("auto", "softmax", "sigmoid", "mse")
#: `--head` also names the output (issue 17): "sigmoid" / "softmax" is a linear head with that loss
OUTPUTS = ("sigmoid", "softmax")
RECIPES = ("auto", "fewshot", "sgd")


def _opt(default, help_text: str, **limits):
    """A field with its command-line help and limits, for `mmindex train` (mmindex/cli/learn.py)."""
    return field(default=default, metadata={"help": help_text, **limits})


@dataclass
class TrainConfig:
    """How a detector is trained.

    mode: "probe" (frozen backbone features, cached, + head), "finetune" (backbone + head end to end) or
        "scratch" (a small architecture from `mmindex.learn.archs`, random weights, raw pixels).
    backbone: the ImageNet backbone for probe / finetune (see `mmindex models`).
    arch: the small architecture for scratch (see `mmindex.learn.archs.list_archs`).
    input_size, channels: scratch-mode input (images are resized and, for 1 channel, made grey).
    head: "linear" or "mlp"; hidden: MLP width; dropout: dropout rate in the head (0.2–0.5 in the lecture).
        "sigmoid" or "softmax" is a linear head with that loss (resolved when the config is made).
    loss: "softmax" (closed-set: exclusive classes), "sigmoid" (one-vs-rest per label: open-set concept detectors,
        multi-label, soft labels allowed), "mse", or "auto" (sigmoid, except softmax for class folders in
        finetune and scratch mode).
    recipe: "fewshot" (`learn.fewshot`: full-batch logistic regression, L2 by cross-validation), "sgd" (the
        lecture's loop), or "auto" (few-shot for probes with a linear head on up to `fewshot.MAX_IMAGES` images).
    epochs, batch_size: training length and mini-batch size (shuffled every epoch).
    lr, momentum: SGD. backbone_lr: the LR of the backbone's parameter group relative to `lr`
        (finetune; the head learns at `lr`).
    schedule: "step" | "cosine" | "constant"; step_every, step_factor: "constant for step_every epochs,
        then divide by step_factor"; warmup: linear warm-up epochs.
    l2, l1: weight penalties λ·Σw² and λ·Σ|w| on weights (not biases or BN), active from epoch `penalty_from`.
    patience: early stopping after this many epochs without a better validation metric (0: never).
    val_fraction: the split held out for validation when no `--val` set is given (stratified for classes).
    calibrate: fit temperature (softmax) or Platt (sigmoid) scaling on the validation split, kept only if it
        lowers the validation ECE.
    seed: seeds Python, NumPy and PyTorch, the split and the shuffling: the same seed gives the same run.
    """

    # The metadata is what `mmindex train` makes its options from: one --kebab-name per field, with this help
    # and these limits (choices, or min / max with min_open / max_open as click's ranges take them).
    mode: str = _opt("probe", "probe: cached backbone features + head; finetune: backbone + head; scratch: a small "
                     "architecture from random weights.", choices=MODES)
    backbone: str = _opt(DEFAULT_MODEL, "Backbone for probe / finetune.")
    arch: str = _opt("vgg_small", "Small architecture for scratch.")
    input_size: int = _opt(28, "Scratch: input side in pixels (images are resized).", min=8)
    channels: int = _opt(1, "Scratch: 1 (grey) or 3 (RGB) input channels.", min=1, max=3)
    head: str = _opt("linear", "Classifier head: linear or mlp; sigmoid (one-vs-rest, open-set: the default output "
                     "of concept detectors) or softmax (closed-set classes) is a linear head with that output.",
                     choices=("linear", "mlp", *OUTPUTS))
    hidden: int = _opt(512, "MLP hidden units.", min=1)
    dropout: float = _opt(0.0, "Dropout rate in the head.", min=0, max=0.95)
    loss: str = _opt("auto", "auto: sigmoid (one-vs-rest), except softmax for class folders in finetune / scratch "
                     "mode.", choices=LOSSES)
    recipe: str = _opt("auto", "fewshot: full-batch logistic regression, L2 chosen by cross-validation (probe, linear "
                       "head); sgd: the lecture's loop; auto: fewshot for probes on up to 5000 images.",
                       choices=RECIPES)
    epochs: int = _opt(30, "Training epochs.", min=1)
    batch_size: int = _opt(128, "Mini-batch size (shuffled every epoch).", min=1, max=65536)
    lr: float = _opt(0.1, "Learning rate (SGD).", min=0, min_open=True)
    momentum: float = _opt(0.9, "SGD momentum.", min=0, max=1, max_open=True)
    backbone_lr: float = _opt(0.1, "Backbone LR / head LR (finetune).")
    schedule: str = _opt("step", "Learning-rate schedule.", choices=SCHEDULES)
    step_every: int = _opt(10, "Step decay: constant for N epochs...", min=1)
    step_factor: float = _opt(10.0, "...then divide the LR by this.")
    warmup: float = _opt(0.0, "Linear warm-up of the LR over this many epochs.", min=0)
    l2: float = _opt(1e-4, "L2 penalty on weights.", min=0)
    l1: float = _opt(0.0, "L1 penalty on weights.", min=0)
    penalty_from: int = _opt(2, "Epoch (0-based) from which L1/L2 are on.", min=0)
    patience: int = _opt(5, "Early stopping after N epochs without a better validation metric (0: never).", min=0)
    val_fraction: float = _opt(0.2, "Share of DATA held out for validation when no --val set is given.", min=0,
                               max=1, min_open=True, max_open=True)
    calibrate: bool = _opt(True, "Fit temperature / Platt scaling on the validation split, kept if it lowers the "
                           "validation ECE (--no-calibrate: do not).")
    seed: int = _opt(0, "Seeds the split, the shuffling and the weights.")

    def __post_init__(self) -> None:
        if self.head in OUTPUTS and self.loss in ("auto", self.head):  # --head softmax: a linear softmax head
            self.head, self.loss = "linear", self.head

    def validate(self) -> TrainConfig:
        """Raise `DataError` for values no run could use; returns self."""
        from mmindex.learn.heads import HEADS  # deferred: PyTorch, through mmindex.learn

        checks = [
            (self.mode in MODES, f"mode must be one of {', '.join(MODES)}"),
            (self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}"),
            (self.head not in OUTPUTS, f"--head {self.head} contradicts --loss {self.loss}"),
            (self.head in HEADS + OUTPUTS, f"head must be one of {', '.join(HEADS + OUTPUTS)}"),
            (self.recipe in RECIPES, f"recipe must be one of {', '.join(RECIPES)}"),
            (self.recipe != "fewshot" or (self.mode == "probe" and self.head == "linear" and self.loss != "mse"),
             "the few-shot recipe fits a linear sigmoid or softmax head on probe features"),
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
