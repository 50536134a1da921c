"""`TrainReport`: what a training run did and measured, one type for detectors, sequences and clips (issue 18)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

#: what each kind's report called a figure before one report type served them all; `TrainReport.as_dict` keeps them
_OLD_NAMES = {"sequence": {}, "clip": {"clips_per_s": "train_items_per_s", "clip_shape": "input_shape"}}
_IMAGE_NAMES = {"images_per_s": "items_per_s"}


@dataclass
class TrainReport:
    """What a training run did and measured, for every kind of model. `fit` fills in the loop's figures; the
    caller (`train`, `train_sequence`, `train_clips`) adds what was trained: name, out, mode, arch, loss, labels.

    mode: "probe", "finetune" or "scratch" (detectors), "sequence" or "clip".
    input_shape: one item's shape: (D,) features, (C, H, W) images, (T, D) sequences or (T, C, H, W) clips.
    best_metric: the validation metric of the kept epoch (detectors: measured again after calibration), named
        `metric_name` (top-1 accuracy for classes, MAP for label sets).
    seconds: the whole loop, validation included; items_per_s: items trained / seconds; train_items_per_s: items
        trained / the time of the training steps alone (forward, backward, update).
    clipped_steps: steps whose gradient norm exceeded the clip (sequences), of `steps`.
    recipe: how a detector's head was fitted: {"name": "sgd"}, or the few-shot recipe's {"name": "fewshot", "C",
        "cv_folds", "cv_loss"} (`learn.fewshot`).
    """

    name: str = ""
    out: str = ""
    mode: str = ""
    arch: str = ""
    loss: str = ""
    labels: list[str] = field(default_factory=list)
    input_shape: list[int] = field(default_factory=list)
    parameters: int = 0
    train_size: int = 0
    val_size: int = 0
    metric_name: str = "val_metric"
    best_metric: float = math.nan
    best_epoch: int = 0
    epochs_run: int = 0
    steps: int = 0
    clipped_steps: int = 0
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    items_per_s: float = 0.0
    train_items_per_s: float = 0.0
    peak_rss_mb: float = 0.0
    device: str = "cpu"
    curves: str | None = None
    calibration: dict = field(default_factory=dict)
    recipe: dict = field(default_factory=dict)
    split_made: bool = False
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return self.items_per_s

    @property
    def clips_per_s(self) -> float:
        return self.train_items_per_s

    @property
    def clip_shape(self) -> list[int]:
        return self.input_shape

    def as_dict(self) -> dict:
        """The fields, plus the names this kind's report used before (`images_per_s`, `clips_per_s`, `clip_shape`),
        so that `--json` output keeps every key it had."""
        d = asdict(self)
        return d | {old: d[new] for old, new in _OLD_NAMES.get(self.mode, _IMAGE_NAMES).items()}
