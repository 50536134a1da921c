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

from mmindex.errors import DetectorError
from mmindex.extract.inputs import ModelInput

SCORE_BATCH = 256  # inputs per forward pass when scoring


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


def _format(path: Path) -> str:
    """The `format` field of a saved model; `DetectorError` for a missing, unreadable or foreign file."""
    if not path.is_file():
        raise DetectorError(f"no detector file {path}")
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise DetectorError(f"{path} is not a readable mmindex detector (corrupt or truncated file?): "
                            f"{type(exc).__name__}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("format"), str):
        raise DetectorError(f"{path} is not an mmindex detector bundle")
    return doc["format"]


def load(path: str | os.PathLike) -> Applicable:
    """Any trained model file as an `Applicable` (see the module docstring). Raises `DetectorError`."""
    from mmindex.learn import checkpoint, sequence, video3d  # deferred: the three model families

    path = Path(path).expanduser()
    fmt = _format(path)
    if fmt == sequence.FORMAT:
        model, blob = sequence.load_sequence_model(path)
        return Applicable(path.stem, "sequence", list(blob["labels"]), sequence.sequence_input(blob),
                          _sequence_scorer(model), str(path))
    if fmt == video3d.FORMAT:
        model, blob = video3d.load_clip_model(path)
        return Applicable(path.stem, "clip", list(blob["labels"]), video3d.clip_input(blob, model),
                          _scorer(model.scores), str(path))
    bundle = checkpoint.load_bundle(path)  # refuses any other format, saying so
    return Applicable(bundle.name, bundle.mode, bundle.labels, bundle.input, _scorer(bundle.detector.scores),
                      str(path))


def _scorer(scores: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[np.ndarray], np.ndarray]:
    """numpy batch → float16 scores, in forward passes of SCORE_BATCH inputs, without gradients."""
    def score(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            parts = [scores(torch.from_numpy(np.ascontiguousarray(x[i:i + SCORE_BATCH]))).numpy()
                     for i in range(0, len(x), SCORE_BATCH)]
        return np.concatenate(parts).astype(np.float16)
    return score


def _sequence_scorer(model) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def score(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return model.scores(torch.from_numpy(np.ascontiguousarray(x, np.float32)),
                            torch.from_numpy(np.asarray(lengths, np.int64))).numpy().astype(np.float16)
    return score
