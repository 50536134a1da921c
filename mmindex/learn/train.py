"""Detectors: the lecture's recipe, end to end, from a dataset spec to a detector bundle.

    dataset → inputs for the mode (probe features, cached | pixels | images for the backbone) → `fit` (the one
    training loop, `learn.fit`: shuffled mini-batches, SGD with momentum at the scheduled LR per parameter group,
    L1/L2 switched on after `penalty_from` epochs, validation metric each epoch, early stopping, best weights
    kept) with a checkpoint after every epoch (resumable) → calibration on the validation split → bundle + curves.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mmindex.errors import DataError, DetectorError
from mmindex.learn import calibration, data, features, fewshot
from mmindex.learn.checkpoint import atomic_save, save_bundle
from mmindex.learn.config import TrainConfig
from mmindex.learn.fit import (
    Batches,
    Callback,
    LearningCurves,
    LoopState,
    ProgressFn,
    Schedule,
    StepProgress,
    TrainReport,
    Validation,
    fit,
    loss_fn,
    resolve_device,
    seed_everything,
)
from mmindex.learn.model import Detector


def prepare_inputs(config: TrainConfig, ds: data.Dataset, progress=None, expect_weights: str | None = None,
                   device: torch.device | None = None) -> tuple[Tensor, data.Dataset, str | None]:
    """Model inputs for a dataset in `config.mode`: (X, the dataset without unreadable images, weights id).

    Probe features are computed on `device` when it is a GPU (PyTorch there; ONNX Runtime on the CPU)."""
    if config.mode == "probe":
        x, ds, wid = features.extract_features(ds, config.backbone, progress, device=device)
        if expect_weights is not None and wid != expect_weights:
            raise DetectorError(f"the detector was trained on {config.backbone} weights {expect_weights}; "
                                f"the installed weights are {wid}")
        return torch.from_numpy(x), ds, wid
    if config.mode == "scratch":
        x, ds = features.decode_pixels(ds, config.input_size, config.channels)
        return torch.from_numpy(x), ds, None
    from mmindex.models.registry import get_entry  # deferred: the backbone registry builds PyTorch models

    entry = get_entry(config.backbone)  # unknown backbone: ModelError before decoding anything
    x, ds = features.decode_for_backbone(ds, entry.data_config)
    return torch.from_numpy(x), ds, None


def resolve_loss(config: TrainConfig, ds: data.Dataset) -> str:
    """`--loss auto`: sigmoid, one-vs-rest per label (concept detectors are open-set: what is none of the labels
    can score low on all of them; label sets), except softmax for class folders in finetune and scratch mode."""
    if config.loss != "auto":
        return config.loss
    return "sigmoid" if ds.multilabel or config.mode == "probe" else "softmax"


def validation_metric(scores: np.ndarray, ds: data.Dataset) -> float:
    """Top-1 accuracy for exclusive classes, MAP over labels for multi-label sets."""
    from mmindex.evaluate import metrics  # deferred: PyTorch, through mmindex.learn

    if ds.multilabel:
        return metrics.mean_average_precision(scores, ds.targets > 0.5)
    return 1.0 - metrics.top_k_error(scores, ds.classes, 1)


def _penalised(model: Detector) -> list[Tensor]:
    """Weights that L1/L2 act on: matrices and kernels, not biases or normalisation scales."""
    return [p for n, p in model.named_parameters() if p.dim() > 1]


def _penalty(model: Detector, config: TrainConfig) -> Callable[[Tensor, int], Tensor]:
    """L2 (λ·Σw²) and L1 (λ·Σ|w|) on the weights, added to the loss from epoch `penalty_from` on."""
    def penalise(loss: Tensor, epoch: int) -> Tensor:
        if epoch < config.penalty_from or not (config.l2 or config.l1):
            return loss
        w = _penalised(model)
        if config.l2:
            loss = loss + config.l2 * sum(p.square().sum() for p in w)
        if config.l1:
            loss = loss + config.l1 * sum(p.abs().sum() for p in w)
        return loss
    return penalise


class _Checkpoint(Callback):
    """`<out>.ckpt` after every epoch: the model, the optimiser, the loop's state and the RNG, for `--resume`."""

    def __init__(self, path: Path, config: TrainConfig, labels: list[str], model: Detector, opt: torch.optim.Optimizer):
        self.path, self.config, self.labels, self.model, self.opt = path, config, labels, model, opt

    def on_epoch(self, state: LoopState) -> None:
        atomic_save({"config": self.config.to_json(), "labels": self.labels, "model": self.model.state_dict(),
                     "optimizer": self.opt.state_dict(), "epoch": state.epoch - 1, "history": state.history,
                     "best": state.best, "best_epoch": state.best_epoch, "best_state": state.best_state,
                     "bad_epochs": state.bad_epochs, "torch_rng": torch.get_rng_state()}, self.path)

    def resume(self) -> LoopState:
        """Load the checkpoint into the model and the optimiser; the loop's state to continue from."""
        state = torch.load(self.path, map_location="cpu", weights_only=False)  # our own file: it holds RNG states
        if state["config"] != self.config.to_json() or state["labels"] != self.labels:
            raise DataError(f"{self.path} was written by a run with other options or data; delete it or drop "
                            "--resume")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        return LoopState(self.config.epochs, state["epoch"] + 1, state["history"], state["best"], state["best_epoch"],
                         state["best_state"], state["bad_epochs"])


def _optimizer(model: Detector, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum; finetune's backbone is a parameter group whose LR is `backbone_lr` × the head's."""
    head = list(model.head.parameters())
    body = [p for p in model.network.parameters() if p.requires_grad]
    scale = config.backbone_lr if config.mode == "finetune" else 1.0
    groups = [{"params": head, "scale": 1.0}] + ([{"params": body, "scale": scale}] if body else [])
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)


def _datasets(data_spec: str, val_spec: str | None, config: TrainConfig) -> tuple[data.Dataset, data.Dataset]:
    """The training and validation sets: `val_spec`'s, or a seeded split of `data_spec`'s."""
    ds = data.load_dataset(data_spec).check()
    if val_spec:
        return ds, data.load_dataset(val_spec, ds.labels).check()
    return data.split(ds, config.val_fraction, config.seed)


def train(data_spec: str, out: str | os.PathLike, config: TrainConfig | None = None, *, val_spec: str | None = None,
          name: str | None = None, resume: bool = False, progress: ProgressFn | None = None,
          feature_progress=None, curves: bool = True, device: str = "auto") -> TrainReport:
    """Train a detector on `data_spec` (see `mmindex.learn.data`) and write its bundle to `out`.

    device: "auto" (CUDA when PyTorch sees a GPU, else the CPU), "cpu" or "cuda[:N]". It is where the
    loop runs and probe features are computed; the bundle is always saved for the CPU.

    The checkpoint `<out>.ckpt` is written after every epoch and removed at the end; `resume` continues
    from it. Raises `DataError` for unusable data, before any training.
    """
    config = (config or TrainConfig()).validate()
    out = Path(out).expanduser()
    name = name or out.stem
    seed_everything(config.seed)
    ds, val = _datasets(data_spec, val_spec, config)
    loss_kind = resolve_loss(config, ds)
    dev = resolve_device(device)
    x, ds, wid = prepare_inputs(config, ds, feature_progress, device=dev)
    xv, val, _ = prepare_inputs(config, val, feature_progress, device=dev)
    in_dim = x.shape[1] if config.mode == "probe" else None
    model = Detector(config, ds.labels, loss_kind, in_dim)
    model.set_normalisation(x[: min(len(x), 20000)])
    model.to(dev)
    opt = _optimizer(model, config)
    ckpt = _Checkpoint(Path(f"{out}.ckpt"), config, ds.labels, model, opt)
    start = ckpt.resume() if resume and ckpt.path.is_file() else None
    metric_name = "val_map" if val.multilabel else "val_top1_accuracy"
    drawn = [LearningCurves(f"{out}.curves.png", f"{name} ({config.mode})")] if curves else []
    callbacks = [ckpt, *([StepProgress(progress)] if progress else []), *drawn]
    schedule = Schedule(config.lr, config.schedule, config.epochs, config.step_every, config.step_factor,
                        config.warmup)
    # validation_metric is looked up when called, so that a test can make it fail mid-run
    metric = Validation(Batches((xv,), torch.from_numpy(val.targets), 512),
                        lambda z: validation_metric(model.probabilities(z).cpu().numpy(), val), metric_name)
    if fewshot.applies(config.mode, config.head, loss_kind, config.recipe, len(x)):  # issue 17: few images
        report = fewshot.fit_detector(model, x, torch.from_numpy(ds.targets), metric, ds.multilabel, config.seed,
                                      drawn)
    else:
        report = fit(model, Batches((x,), torch.from_numpy(ds.targets), config.batch_size, min_size=2), metric,
                     lambda z, t: loss_fn(loss_kind, z, t), opt, schedule, epochs=config.epochs, seed=config.seed,
                     patience=config.patience, penalty=_penalty(model, config), callbacks=callbacks, device=dev,
                     start=start)
        report = replace(report, recipe={"name": "sgd"})
    model.cpu().eval()  # calibration, the bundle and `apply` run on the CPU
    cal = _calibrate(model, xv, val, loss_kind) if config.calibrate else {}
    final = validation_metric(model.scores(xv).numpy(), val)
    if report.recipe["name"] == "fewshot" and val_spec is None:  # issue 17: few labels, none left out of the head
        fewshot.refit(model, torch.cat([x, xv.cpu()]), torch.from_numpy(np.concatenate([ds.targets, val.targets])),
                      report.recipe["C"])
        report = replace(report, recipe=report.recipe | {"refit_with_validation": True})
    save_bundle(out, name, model, wid, in_dim, {metric_name: final, "best_epoch": report.best_epoch,
                                                "train_size": len(ds), "val_size": len(val), **cal,
                                                "recipe": report.recipe})
    ckpt.path.unlink(missing_ok=True)
    return replace(report, name=name, out=str(out), mode=config.mode, loss=loss_kind, labels=ds.labels,
                   arch=config.arch if config.mode == "scratch" else config.backbone, input_shape=list(x.shape[1:]),
                   best_metric=final, skipped=ds.skipped + val.skipped, calibration=cal, split_made=val_spec is None)


def _calibrate(model: Detector, xv: Tensor, val: data.Dataset, loss_kind: str) -> dict:
    """Fit temperature (softmax) or Platt (sigmoid) scaling on the validation split and keep it only if it lowers
    the validation ECE (issue 17); the summary says which (`kept`), with the ECE before and after."""
    with torch.no_grad():  # not inference_mode: the logits feed the calibration's own autograd
        z = torch.cat([model.logits(xv[i:i + 512]) for i in range(0, len(xv), 512)])
    cal = calibration.fit_calibration(z, torch.from_numpy(val.targets), loss_kind, val.multilabel)
    if cal is None:
        return {}
    if cal.kept:
        model.temperature.fill_(cal.temperature)
        if cal.platt_a is not None:
            model.platt_a.copy_(cal.platt_a)
            model.platt_b.copy_(cal.platt_b)
    return cal.summary()
