"""Every trained model as an index applies it (issue 18): what it takes, and its scoring function.

Three files can be applied: detector bundles (`mmindex train`: probe, finetune, scratch; `checkpoint.load_bundle`),
temporal models (`train-sequence`: `sequence.load_sequence_model`) and clip models (`train-clips`:
`video3d.load_clip_model`). `load` reads any of them into one `Applicable`: its name, mode, labels, its input
(`extract.inputs.ModelInput`) and `score`, which takes a batch of that input and returns float16 scores
(n, labels), as the index stores them:

    embedding   (n, D) float32 segment embeddings
    pixels      (n, C, S, S) float32 keyframes (the index pools a segment's keyframe scores)
    sequence    ((n, T, D) float32 keyframe embeddings, (n,) int lengths)
    clip        (n, T, C, H, W) clips, uint8 or float32

The indexer hands `score` to the index (`index.detectors.Scorer`), so the storage layer never imports this one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.special import expit, softmax

from mmindex.extract.inputs import ModelInput


@dataclass
class Applicable:
    """A trained model ready to score an index: mode is probe, finetune, scratch, sequence or clip."""

    name: str
    mode: str
    labels: list[str]
    input: ModelInput
    score: Callable[..., np.ndarray]
    path: str

    @property
    def backbone(self) -> str | None:
        return self.input.backbone

    @property
    def weights_id(self) -> str | None:
        return self.input.weights_id


def load(path: str | os.PathLike, device: str = "cpu") -> Applicable:
    """Any trained model file as an `Applicable` (see the module docstring), its network on `device` ("auto": a GPU
    when PyTorch sees one; a linear probe is one matrix product in NumPy wherever). Raises `DetectorError`, and
    `DataError` for a GPU that PyTorch does not see."""
    from mmindex.learn import checkpoint, sequence, video3d  # deferred: the three model families
    from mmindex.learn.fit import resolve_device

    path = Path(path).expanduser()
    fmt = checkpoint.read_model_file(path)["format"]
    if fmt == sequence.FORMAT:
        model, blob = sequence.load_sequence_model(path)
        return Applicable(path.stem, "sequence", list(blob["labels"]), sequence.sequence_input(blob),
                          _sequence_scorer(model.to(resolve_device(device))), str(path))
    if fmt == video3d.FORMAT:
        model, blob = video3d.load_clip_model(path)
        return Applicable(path.stem, "clip", list(blob["labels"]), video3d.clip_input(blob, model),
                          _scorer(model.to(resolve_device(device)).scores), str(path))
    bundle = checkpoint.load_bundle(path)  # refuses any other format, saying so
    score = _linear_probe(bundle.detector) if bundle.mode == "probe" else None
    if score is None:
        bundle.detector.to(resolve_device(device))
    return Applicable(bundle.name, bundle.mode, bundle.labels, bundle.input,
                      score or _scorer(bundle.detector.scores), str(path))


def _linear_probe(detector) -> Callable[[np.ndarray], np.ndarray] | None:
    """A linear probe as one matrix product: the input normalisation and the calibration folded into the head,
    so that scoring an index reads each embedding once. W((x − μ)/σ) + b = (W/σ)x + (b − (W/σ)μ); softmax's
    temperature divides, Platt's (a, b) per label scales and shifts, the logits. None for an MLP head."""
    layers = [m for m in detector.head.net if not isinstance(m, torch.nn.Dropout)]
    if len(layers) != 1 or not isinstance(layers[0], torch.nn.Linear):
        return None
    with torch.no_grad():
        w = layers[0].weight.double() / detector.std.double().view(1, -1)
        b = layers[0].bias.double() - (w * detector.mean.double().view(1, -1)).sum(1)
        if detector.loss == "softmax":
            w, b = w / detector.temperature.double(), b / detector.temperature.double()
        elif detector.loss == "sigmoid":
            a = detector.platt_a.double()
            w, b = w * a.view(-1, 1), b * a + detector.platt_b.double()
    weights, bias = np.ascontiguousarray(w.T.numpy(), np.float32), b.numpy().astype(np.float32)
    loss = detector.loss

    def score(x: np.ndarray) -> np.ndarray:
        z = np.asarray(x, np.float32) @ weights + bias
        p = softmax(z, axis=1) if loss == "softmax" else expit(z) if loss == "sigmoid" else np.clip(z, 0.0, 1.0)
        return p.astype(np.float16)
    return score


def _scorer(scores: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[np.ndarray], np.ndarray]:
    """numpy batch → float16 scores, without gradients (the models' `scores` run their own forward batches)."""
    def score(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return scores(torch.from_numpy(np.ascontiguousarray(x))).numpy().astype(np.float16)
    return score


def _sequence_scorer(model) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def score(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return model.scores(torch.from_numpy(np.ascontiguousarray(x, np.float32)),
                            torch.from_numpy(np.asarray(lengths, np.int64))).numpy().astype(np.float16)
    return score
