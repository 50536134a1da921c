"""Temporal models (issue 3): label a sequence of keyframe embeddings (B, T, D) with a recurrent network.

    from mmindex.learn.sequence import SequenceConfig, train_sequence
    report = train_sequence("shots.npz", "shots.mmseq", SequenceConfig(arch="gru", epochs=20))

Architectures (the lecture's "Recurrent neural networks" slides): `elman` (torch.nn.RNN), `jordan` (written
here: PyTorch has none; the previous *output* is the context), `lstm` (torch.nn.LSTM), `gru` (torch.nn.GRU),
and `mean`, the baseline that averages the frames and classifies the average with an MLP, so it cannot see
order. The label is read from the output at the last valid step: one class (softmax) or a label set (sigmoid).
Training is `learn.fit`, the one training loop, as back-propagation through time (autograd through the unrolled
loop) with the gradient's global norm clipped; the model is written with `checkpoint.atomic_save`.

Data (.npz): `x` (N, T, D) float frame features; `y` (N,) int class ids, or (N, L) 0/1 label sets; optional
`lengths` (N,) int (frames after a sequence's length are padding and never read) and `labels` (names), and where
the frames come from (issue 18): `rate` (frames a second), `backbone` and `weights_id` (the features' backbone).
The model file records them as its input (`extract.inputs.ModelInput`, kind "sequence"), so that `mmindex apply`
feeds it an index's keyframe embeddings sampled the same way (`sequence_input`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from mmindex.errors import DataError, DetectorError
from mmindex.extract.inputs import ModelInput
from mmindex.learn.checkpoint import atomic_save
from mmindex.learn.fit import (
    Batches,
    EpochProgress,
    LearningCurves,
    Schedule,
    TrainReport,
    Validation,
    fit,
    holdout_split,
    loss_fn,
    make_optimizer,
    seed_everything,
    train_step,
)
from mmindex.learn.schedules import SCHEDULES
from mmindex.registry import Registry

#: the recurrent layer by name: fn(in_dim, hidden, head, loss) -> the module stored as `SequenceClassifier.rnn`
ARCHS: Registry[Callable[[int, int, nn.Linear, str], nn.Module]] = Registry("sequence architecture", DataError)
FORMAT, VERSION = "mmindex-sequence", 1
#: progress(epoch, epochs, train_loss, val_metric) after each epoch.
SequenceProgress = Callable[[int, int, float, float], None]


@dataclass
class SequenceConfig:
    """Options of `train_sequence`. `clip` is the largest global gradient norm (0: measured, not clipped)."""

    arch: str = "gru"
    hidden: int = 64
    loss: str = "auto"  # auto | softmax | sigmoid; auto = sigmoid when y holds label sets
    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    optimizer: str = "adam"  # adam | sgd (with momentum)
    momentum: float = 0.9
    schedule: str = "cosine"
    clip: float = 1.0
    weight_decay: float = 0.0
    val_fraction: float = 0.2
    seed: int = 0

    def validate(self) -> SequenceConfig:
        """Raise `DataError` for an option no run can use."""
        checks = [(self.arch in ARCHS, f"arch must be one of {', '.join(ARCHS)}"),
                  (self.loss in ("auto", "softmax", "sigmoid"), "loss must be auto, softmax or sigmoid"),
                  (self.optimizer in ("adam", "sgd"), "optimizer must be adam or sgd"),
                  (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
                  (self.hidden >= 1 and self.epochs >= 1 and self.batch_size >= 1, "hidden, epochs, batch size ≥ 1"),
                  (self.lr > 0 and self.clip >= 0, "lr must be > 0 and clip ≥ 0"),
                  (0 < self.val_fraction < 1, "val_fraction must be in (0, 1)")]
        for ok, why in checks:
            if not ok:
                raise DataError(why)
        return self


@dataclass
class SequenceData:
    """Sequences `x` (N, T, D), multi-hot `targets` (N, L), valid `lengths` (N,) and label names."""

    x: np.ndarray
    targets: np.ndarray
    lengths: np.ndarray
    labels: list[str]
    multilabel: bool
    rate: float | None = None  # frames a second the sequences were sampled at (None: every keyframe)
    backbone: str | None = None  # the frame features' backbone and weights (None: unknown)
    weights_id: str | None = None

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, idx: np.ndarray) -> SequenceData:
        return replace(self, x=self.x[idx], targets=self.targets[idx], lengths=self.lengths[idx])


def make_sequences(x: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None,
                   labels: list[str] | None = None) -> SequenceData:
    """Check and wrap arrays (the npz format above); raises `DataError` with what is wrong."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 3 or x.shape[0] == 0 or x.shape[1] == 0 or not np.issubdtype(x.dtype, np.number):
        raise DataError(f"x must be a non-empty numeric array (N, T, D), not {x.dtype} {x.shape}")
    if not np.isfinite(x).all():
        raise DataError("x holds NaN or infinite values")
    if y.shape[:1] != x.shape[:1] or y.ndim not in (1, 2):
        raise DataError(f"y must be (N,) class ids or (N, L) label sets with N = {len(x)}, not {y.shape}")
    if y.ndim == 1:
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
            raise DataError("y (N,) must hold non-negative integer class ids")
        n_out = max(int(y.max()) + 1, len(labels or ()))
        if n_out < 2:
            raise DataError("y holds one class only; a classifier needs at least two")
        targets = np.zeros((len(y), n_out), np.float32)
        targets[np.arange(len(y)), y] = 1
    else:
        if not np.isin(y, (0, 1)).all():
            raise DataError("y (N, L) label sets must hold 0 and 1 only")
        targets = y.astype(np.float32)
    lengths = np.full(len(x), x.shape[1]) if lengths is None else np.asarray(lengths).astype(np.int64)
    if lengths.shape != (len(x),) or lengths.min() < 1 or lengths.max() > x.shape[1]:
        raise DataError(f"lengths must be (N,) integers in [1, T = {x.shape[1]}]")
    names = [str(n) for n in labels] if labels is not None else [str(i) for i in range(targets.shape[1])]
    if len(names) != targets.shape[1]:
        raise DataError(f"{len(names)} label names for {targets.shape[1]} labels")
    return SequenceData(x.astype(np.float32), targets, lengths.astype(np.int64), names, y.ndim == 2)


def load_sequences(path: str | os.PathLike) -> SequenceData:
    """Read sequences from an .npz file with `x`, `y` and optional `lengths`, `labels`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "x" not in z or "y" not in z:
                raise DataError(f"{path}: an .npz with arrays x (N, T, D) and y is needed; found {sorted(z.files)}")
            arrays = {k: z[k] for k in ("x", "y", "lengths", "labels", *_ORIGIN) if k in z}
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    labels = arrays.get("labels")
    data = make_sequences(arrays["x"], arrays["y"], arrays.get("lengths"),
                          None if labels is None else [str(n) for n in labels])
    origin = {k: arrays[k].item() for k in _ORIGIN if k in arrays}
    return replace(data, **{k: float(v) if k == "rate" else str(v) for k, v in origin.items()})


_ORIGIN = ("rate", "backbone", "weights_id")  # optional npz keys: where the frames come from


def save_sequences(path: str | os.PathLike, data: SequenceData) -> None:
    """Write `data` in the npz format `load_sequences` reads (class ids when exclusive)."""
    y = data.targets.astype(np.int64) if data.multilabel else data.targets.argmax(1)
    origin = {k: np.array(getattr(data, k)) for k in _ORIGIN if getattr(data, k) is not None}
    np.savez_compressed(path, x=data.x, y=y, lengths=data.lengths, labels=np.array(data.labels), **origin)


def sequence_input(blob: dict) -> ModelInput:
    """What a saved temporal model takes: its recorded input, or for a file written before issue 18 sequences of any
    length of every keyframe's `in_dim`-d embedding, from an unknown backbone."""
    if blob.get("input"):
        return ModelInput.from_dict(json.loads(blob["input"]))
    return ModelInput("sequence", dim=int(blob["in_dim"]))


class JordanRNN(nn.Module):
    """Jordan's recurrent layer: the context is the previous output y_{t-1}, not the hidden state."""

    def __init__(self, in_dim: int, hidden: int, head: nn.Linear, squash: Callable[[Tensor], Tensor]):
        super().__init__()
        self.inp = nn.Linear(in_dim, hidden)  # W_h, b_h
        self.ctx = nn.Linear(head.out_features, hidden, bias=False)  # U_h
        self.head, self.squash = head, squash  # W_y, b_y and σ of the output

    def forward(self, x: Tensor) -> Tensor:
        """Output logits at every step (B, T, L)."""
        wx = self.inp(x)  # W_h x_t for every t at once; only the recurrence needs the loop
        y = x.new_zeros(x.shape[0], self.head.out_features)  # no output before the first frame
        out = []
        for t in range(x.shape[1]):
            h = torch.tanh(wx[:, t] + self.ctx(y))  # Jordan: h_t = σ(W_h x_t + U_h y_{t-1} + b_h)
            logits = self.head(h)
            y = self.squash(logits)  # y_t = σ(W_y h_t + b_y), fed back at t+1
            out.append(logits)
        return torch.stack(out, 1)


def _jordan(in_dim: int, hidden: int, head: nn.Linear, loss: str) -> JordanRNN:
    squash = (lambda z: z.softmax(-1)) if loss == "softmax" else torch.sigmoid  # the output as the loss reads it
    return JordanRNN(in_dim, hidden, head, squash)


# Elman: h_t = σ(W_h x_t + U_h h_{t-1} + b_h), σ = tanh
ARCHS.add("elman", lambda in_dim, hidden, head, loss: nn.RNN(in_dim, hidden, batch_first=True, nonlinearity="tanh"))
ARCHS.add("jordan", _jordan)
# LSTM: input, forget, output gates and a memory cell (Hochreiter and Schmidhuber); GRU: update and reset gates,
# no separate cell (Cho et al.)
ARCHS.add("lstm", lambda in_dim, hidden, head, loss: nn.LSTM(in_dim, hidden, batch_first=True))
ARCHS.add("gru", lambda in_dim, hidden, head, loss: nn.GRU(in_dim, hidden, batch_first=True))
# feed-forward on the average frame: h = ReLU(W_h x̄ + b_h), y = W_y h + b_y (blind to order)
ARCHS.add("mean", lambda in_dim, hidden, head, loss: nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU()))


class SequenceClassifier(nn.Module):
    """One of ARCHS over (B, T, D) frames, standardised with the training set's mean and deviation."""

    def __init__(self, arch: str, in_dim: int, hidden: int, num_labels: int, loss: str = "softmax"):
        super().__init__()
        self.arch, self.loss = arch, loss
        self.register_buffer("mu", torch.zeros(in_dim))
        self.register_buffer("sd", torch.ones(in_dim))
        self.head = nn.Linear(hidden, num_labels)
        self.rnn = ARCHS.get(arch)(in_dim, hidden, self.head, loss)

    def set_normalisation(self, x: np.ndarray, lengths: np.ndarray) -> None:
        """Per-dimension mean and deviation over the valid frames of the training sequences."""
        valid = x[np.arange(x.shape[1])[None, :] < lengths[:, None]]
        self.mu.copy_(torch.from_numpy(valid.mean(0)))
        self.sd.copy_(torch.from_numpy(valid.std(0)).clamp(min=1e-3))

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Logits (B, L) of the sequence label, read at each sequence's last valid frame."""
        x = (x - self.mu) / self.sd
        b, t = x.shape[:2]
        lengths = torch.full((b,), t, dtype=torch.long) if lengths is None else lengths
        lengths = lengths.to(x.device)
        if self.arch == "mean":
            mask = (torch.arange(t, device=x.device)[None, :] < lengths[:, None]).to(x.dtype).unsqueeze(-1)
            return self.head(self.rnn((x * mask).sum(1) / lengths[:, None].to(x.dtype)))
        if self.arch == "jordan":
            return self.rnn(x)[torch.arange(b), lengths - 1]
        out = self.rnn(x)[0]  # (B, T, H); causal, so padding after a sequence's end never changes its outputs
        return self.head(out[torch.arange(b), lengths - 1])  # y_T = W_y h_T + b_y

    def probabilities(self, logits: Tensor) -> Tensor:
        """Softmax or sigmoid of logits, as the loss reads them."""
        return logits.softmax(1) if self.loss == "softmax" else logits.sigmoid()

    def scores(self, x: Tensor, lengths: Tensor | None = None, batch: int = 1024) -> Tensor:
        """Probabilities (softmax or sigmoid) in evaluation mode, without gradients, computed batch by batch on the
        model's device and returned on the CPU."""
        self.eval()
        dev = self.mu.device
        with torch.inference_mode():
            logits = torch.cat([self(x[i:i + batch].to(dev), None if lengths is None else lengths[i:i + batch]).cpu()
                                for i in range(0, len(x), batch)])
        return self.probabilities(logits)


def bptt_step(model: SequenceClassifier, opt: torch.optim.Optimizer, x: Tensor, lengths: Tensor, targets: Tensor,
              clip: float) -> tuple[float, float]:
    """One mini-batch of back-propagation through time with clipping; returns (loss, gradient norm before clip).

    autograd unrolls the recurrence, so ∂E/∂W sums the contributions of every time step (the lecture's
    "back-propagation through many hidden states"); their product over steps is what explodes, hence the clip
    (0: the norm is measured, not clipped). `fit` makes every step of `train_sequence` this way.
    """
    loss, norm = train_step(model, opt, (x, lengths), targets, lambda z, t: loss_fn(model.loss, z, t), clip=clip)
    return float(loss), float(norm)


def metric(scores: np.ndarray, data: SequenceData) -> float:
    """Top-1 accuracy for exclusive classes, MAP over labels for label sets (as `learn.train`)."""
    from mmindex.evaluate import metrics  # deferred: PyTorch, through mmindex.learn

    if data.multilabel:
        return metrics.mean_average_precision(scores, data.targets > 0.5)
    return float((scores.argmax(1) == data.targets.argmax(1)).mean())


#: the one report type of `learn.fit` (issue 18); the old name still works
SequenceReport = TrainReport


def _tensors(d: SequenceData) -> tuple[Tensor, Tensor, Tensor]:
    return torch.from_numpy(d.x), torch.from_numpy(d.lengths), torch.from_numpy(d.targets)


def train_sequence(data: str | os.PathLike | SequenceData, out: str | os.PathLike, config: SequenceConfig | None = None,
                   *, val: str | os.PathLike | SequenceData | None = None, progress: SequenceProgress | None = None,
                   curves: bool = True) -> TrainReport:
    """Train `config.arch` on `data` (else a seeded split of it validates), keep the best epoch, write `out`.

    Raises `DataError` for unusable data or options, before any training. Writes `<out>.curves.png` unless
    `curves` is False. Every epoch runs (no early stopping); `clipped_steps` counts the clipped steps.
    """
    config = (config or SequenceConfig()).validate()
    seed_everything(config.seed)
    ds = data if isinstance(data, SequenceData) else load_sequences(data)
    if val is None:
        ds, vs = holdout_split(ds, config.val_fraction, config.seed, min_train=1, what="sequences")
    else:
        vs = val if isinstance(val, SequenceData) else load_sequences(val)
    if vs.x.shape[2] != ds.x.shape[2] or vs.targets.shape[1] != ds.targets.shape[1]:
        raise DataError("validation data must have the training data's feature size and labels")
    loss_kind = config.loss if config.loss != "auto" else ("sigmoid" if ds.multilabel else "softmax")

    model = SequenceClassifier(config.arch, ds.x.shape[2], config.hidden, len(ds.labels), loss_kind)
    model.set_normalisation(ds.x, ds.lengths)
    x, lengths, y = _tensors(ds)
    xv, lv, yv = _tensors(vs)
    metric_name = "val_map" if vs.multilabel else "val_accuracy"
    callbacks = [*([EpochProgress(progress)] if progress else []),
                 *([LearningCurves(f"{out}.curves.png", f"{Path(out).stem} ({config.arch})")] if curves else [])]
    validation = Validation(Batches((xv, lv), yv, 1024), lambda z: metric(model.probabilities(z).numpy(), vs),
                            metric_name)
    report = fit(model, Batches((x, lengths), y, config.batch_size), validation, lambda z, t: loss_fn(loss_kind, z, t),
                 make_optimizer(model.parameters(), config), Schedule(config.lr, config.schedule, config.epochs),
                 epochs=config.epochs, seed=config.seed, clip=config.clip, callbacks=callbacks)
    given = ModelInput("sequence", backbone=ds.backbone, weights_id=ds.weights_id, dim=ds.x.shape[2],
                       frames=ds.x.shape[1], rate=ds.rate)
    atomic_save({"format": FORMAT, "version": VERSION, "config": asdict(config), "loss": loss_kind,
                 "labels": ds.labels, "in_dim": ds.x.shape[2], "state": model.state_dict(), "input": given.to_json(),
                 "metrics": {metric_name: report.best_metric, "best_epoch": report.best_epoch}}, out)
    return replace(report, name=Path(out).stem, out=str(out), mode="sequence", arch=config.arch, loss=loss_kind,
                   labels=ds.labels, input_shape=list(ds.x.shape[1:]))


def load_sequence_model(path: str | os.PathLike) -> tuple[SequenceClassifier, dict]:
    """The model saved by `train_sequence` (in evaluation mode) and its header; raises `DetectorError`."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — torch raises many types for a missing or corrupt file
        raise DetectorError(f"cannot read sequence model {path}: {exc}") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT or blob.get("version") != VERSION:
        raise DetectorError(f"{path} is not a {FORMAT} v{VERSION} file")
    cfg = blob["config"]
    model = SequenceClassifier(cfg["arch"], blob["in_dim"], cfg["hidden"], len(blob["labels"]), blob["loss"])
    model.load_state_dict(blob["state"])
    model.eval()
    return model, {k: v for k, v in blob.items() if k != "state"}


def evaluate_sequence(path: str | os.PathLike, data: str | os.PathLike | SequenceData) -> dict:
    """Accuracy (or MAP for label sets) of a saved model on labelled sequences."""
    model, header = load_sequence_model(path)
    ds = data if isinstance(data, SequenceData) else load_sequences(data)
    if ds.x.shape[2] != header["in_dim"] or ds.targets.shape[1] != len(header["labels"]):
        raise DataError(f"the data has {ds.x.shape[2]}-d frames and {ds.targets.shape[1]} labels; the model "
                        f"wants {header['in_dim']} and {len(header['labels'])}")
    scores = model.scores(*_tensors(ds)[:2]).numpy()
    return {"arch": header["config"]["arch"], "sequences": len(ds),
            ("map" if ds.multilabel else "accuracy"): metric(scores, ds)}


# ---- the demonstration task: order of two Fashion-MNIST classes ----------------------------------------------

def frame_features(images: np.ndarray, dim: int | None = None, seed: int = 0) -> np.ndarray:
    """Raw pixels in [0, 1], flattened, or their fixed random projection to `dim` dimensions (N, D)."""
    flat = images.reshape(len(images), -1).astype(np.float32) / 255.0
    if dim is None:
        return flat
    w = np.random.default_rng(seed).standard_normal((flat.shape[1], dim)).astype(np.float32)
    return flat @ (w / np.sqrt(flat.shape[1]))  # Johnson–Lindenstrauss: distances kept up to a factor


def order_task(features: np.ndarray, classes: np.ndarray, n: int, *, length: int = 8, first: int = 7,
               second: int = 9, names: tuple[str, str] = ("B before A", "A before B"),
               seed: int = 0) -> SequenceData:
    """`n` sequences of `length` frames holding one frame of class `first`, one of `second`, and distractors
    of the other classes; label 1 when `first` comes before `second`. Both labels contain the same bag of
    classes, so a model that averages the frames is at chance by construction."""
    rng = np.random.default_rng(seed)
    pool_a, pool_b = np.flatnonzero(classes == first), np.flatnonzero(classes == second)
    pool_d = np.flatnonzero((classes != first) & (classes != second))
    if length < 2 or not len(pool_a) or not len(pool_b) or (length > 2 and not len(pool_d)):
        raise DataError("the order task needs length ≥ 2 and images of both classes and of distractors")
    pick = rng.choice(pool_d, size=(n, length)) if len(pool_d) else np.zeros((n, length), np.int64)
    y = rng.integers(0, 2, n)
    for i in range(n):
        p, q = np.sort(rng.choice(length, 2, replace=False))
        a, b = rng.choice(pool_a), rng.choice(pool_b)
        pick[i, p], pick[i, q] = (a, b) if y[i] else (b, a)
    return make_sequences(features[pick], y, labels=list(names))
