"""Detector bundles (one file: weights, resolved config, labels, backbone, metrics) and training checkpoints.

A bundle is a `torch.save`d dict read back with `weights_only=True` (no code is unpickled), so it can be
copied to another machine and applied there:
    format "mmindex-detector", version, name, labels, loss, config (the resolved `TrainConfig` as JSON),
    backbone + weights_id (probe / finetune: the features it expects), in_dim, state_dict, metrics, created,
    input (issue 18: what the detector takes, an `extract.inputs.ModelInput` as JSON; derived from the mode and
    config for bundles written before it).
A missing, truncated or foreign file raises `DetectorError` saying so; a bundle whose backbone is not
the one it is used with is refused by `check_backbone`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mmindex.atomic import atomic_write
from mmindex.errors import DetectorError
from mmindex.extract.inputs import ModelInput
from mmindex.learn.config import TrainConfig
from mmindex.learn.model import Detector

FORMAT = "mmindex-detector"
VERSION = 1


@dataclass
class Bundle:
    """A loaded detector and what was saved with it."""

    name: str
    detector: Detector
    config: TrainConfig
    labels: list[str]
    backbone: str | None
    weights_id: str | None
    metrics: dict = field(default_factory=dict)
    path: str = ""
    input: ModelInput | None = None  # None: derived from the config (`input_of`)

    def __post_init__(self) -> None:
        if self.input is None:
            self.input = input_of(self.config, self.weights_id, int(self.detector.mean.shape[-1]))

    @property
    def mode(self) -> str:
        return self.config.mode

    def score_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """Scores (n, labels) of float32 embeddings (n, D), as an index stores them (float16)."""
        with torch.inference_mode():
            return self.detector.scores(torch.from_numpy(np.ascontiguousarray(embeddings, np.float32))).numpy() \
                .astype(np.float16)

    def check_backbone(self, backbone: str, weights_id: str) -> None:
        """Refuse features of another backbone or other weights: the head would score noise."""
        if self.mode == "scratch":
            raise DetectorError(f"detector {self.name!r} was trained from scratch on raw pixels, not on "
                                f"{backbone} features")
        if (self.backbone, self.weights_id) != (backbone, weights_id):
            raise DetectorError(f"detector {self.name!r} was trained on {self.backbone} features (weights "
                                f"{self.weights_id}), not {backbone} (weights {weights_id})")


def input_of(config: TrainConfig, weights_id: str | None, in_dim: int | None) -> ModelInput:
    """What a detector of this configuration takes (see `extract.inputs`): the index embedding (probe), pixels in
    [0, 1] resized whole (scratch), or the backbone's own preprocessing (finetune)."""
    if config.mode == "probe":
        return ModelInput("embedding", backbone=config.backbone, weights_id=weights_id, dim=in_dim)
    if config.mode == "scratch":
        return ModelInput("pixels", size=config.input_size, channels=config.channels, fit="stretch")
    from mmindex.models.registry import get_entry  # deferred: the backbone registry imports PyTorch models

    dc = get_entry(config.backbone).data_config
    return ModelInput("pixels", backbone=config.backbone, weights_id=weights_id, size=dc.input_size, channels=3,
                      fit="crop", resize=dc.resize, mean=tuple(dc.mean), std=tuple(dc.std),
                      interpolation=dc.interpolation)


def atomic_save(obj: object, path: str | os.PathLike) -> None:
    """torch.save to a temporary file beside `path`, fsync, rename: never half a file under the name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def save_bundle(path: str | os.PathLike, name: str, detector: Detector, weights_id: str | None,
                in_dim: int | None, metrics: dict | None = None) -> None:
    """Write a detector bundle atomically."""
    cfg = detector.config
    atomic_save({
        "format": FORMAT, "version": VERSION, "name": name, "labels": list(detector.labels), "loss": detector.loss,
        "config": cfg.to_json(), "backbone": None if cfg.mode == "scratch" else cfg.backbone,
        "weights_id": weights_id, "in_dim": in_dim, "state_dict": detector.state_dict(),
        "metrics": json.dumps(metrics or {}), "created": time.time(),
        "input": input_of(cfg, weights_id, in_dim).to_json(),
    }, path)


def read_model_file(path: Path) -> dict:
    """Any saved mmindex model (a bundle, a sequence or a clip model) as the dict it was saved as, whose
    `format` says which; `DetectorError` for a missing, unreadable or foreign file."""
    if not path.is_file():
        raise DetectorError(f"no detector file {path}")
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise DetectorError(f"{path} is not a readable mmindex detector (corrupt or truncated file?): "
                            f"{type(exc).__name__}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("format"), str):
        raise DetectorError(f"{path} is not an mmindex detector bundle")
    return doc


def _read(path: Path) -> dict:
    doc = read_model_file(path)
    if doc["format"] != FORMAT:
        raise DetectorError(f"{path} is not an mmindex detector bundle")
    if int(doc.get("version", 0)) > VERSION:
        raise DetectorError(f"{path} is a detector of format version {doc['version']}; this mmindex reads "
                            f"up to {VERSION}")
    return doc


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read a bundle and rebuild its detector (eval mode). Raises `DetectorError` if anything is wrong."""
    path = Path(path).expanduser()
    doc = _read(path)
    try:
        config = TrainConfig.from_dict(json.loads(doc["config"]))
        detector = Detector(config, doc["labels"], doc["loss"], doc.get("in_dim"))
        detector.load_state_dict(doc["state_dict"], strict=True)
    except DetectorError:
        raise
    except Exception as exc:
        raise DetectorError(f"{path}: the saved weights do not fit the saved configuration: "
                            f"{type(exc).__name__}: {str(exc)[:300]}") from None
    given = ModelInput.from_dict(json.loads(doc["input"])) if doc.get("input") else None
    return Bundle(doc["name"], detector.eval(), config, list(doc["labels"]), doc.get("backbone"),
                  doc.get("weights_id"), json.loads(doc.get("metrics") or "{}"), str(path),
                  given or input_of(config, doc.get("weights_id"), doc.get("in_dim")))


def read_header(path: str | os.PathLike) -> dict:
    """Name, labels, mode, backbone and weights id of a bundle, without building its network."""
    doc = _read(Path(path).expanduser())
    config = json.loads(doc["config"])
    return {"name": doc["name"], "labels": list(doc["labels"]), "mode": config.get("mode"),
            "backbone": doc.get("backbone"), "weights_id": doc.get("weights_id"), "loss": doc["loss"]}
