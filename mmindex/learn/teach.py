"""A concept taught from judged segments: one label's probe detector, fitted on the index's stored embeddings.

    judged segments (positives, negatives) + negatives sampled from the unjudged ones (TRECVID style)
        ──▶ fewshot.fit_head (logistic regression, its L2 chosen by cross-validation)
        ──▶ a probe `Detector` (identity normalisation, linear head, sigmoid) ──▶ a bundle `apply` accepts

The stored embeddings are L2-normalised already, so the detector's normalisation is the identity and its
scores are the logistic regression's probabilities. `mmindex.indexer` picks the examples and applies the
bundle; this module only fits and saves.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from mmindex.errors import DataError
from mmindex.learn.checkpoint import save_bundle
from mmindex.learn.config import TrainConfig
from mmindex.learn.fewshot import fit_head
from mmindex.learn.model import Detector

SAMPLED_MIN = 50  # unjudged segments taken as negatives: at least this many (when there are enough) ...
SAMPLED_PER_POSITIVE = 5  # ... or this many per positive, whichever is more ...
SAMPLED_SHARE = 0.5  # ... but never more than this share of the unjudged ones (in a small index most may be hits)


def sampled_negatives(unjudged: np.ndarray, positives: int, seed: int = 0,
                      similarity: np.ndarray | None = None) -> np.ndarray:
    """A seeded draw of unjudged rows to use as negatives: max(SAMPLED_MIN, SAMPLED_PER_POSITIVE × positives),
    at most SAMPLED_SHARE of them.

    A concept is rare in most collections, so few unjudged segments show it; where it is not, the draw would
    take the concept's own examples for negatives. With `similarity` (each unjudged row's cosine similarity to
    the positives' mean embedding), the draw takes only from the half least like the positives: the "reliable
    negatives" of learning from positive and unlabelled data (Rocchio's, as in Li & Liu, IJCAI 2003).
    """
    pool = unjudged
    if similarity is not None and len(unjudged):
        pool = unjudged[similarity <= np.median(similarity)]
    n = min(max(SAMPLED_MIN, SAMPLED_PER_POSITIVE * positives), int(len(pool) * SAMPLED_SHARE))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(pool, n, replace=False)) if n > 0 else np.empty(0, dtype=np.int64)


def training_set(embeddings, judged: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(x, 0/1 targets): the judged rows of `embeddings` ((N, D): an array, or an index snapshot's matrix, which
    `@` scans in chunks) with their labels, then the negatives `sampled_negatives` draws from the other rows."""
    labels = np.asarray(labels, dtype=np.float32)
    unjudged = np.setdiff1d(np.arange(len(embeddings)), judged)
    similarity = embeddings @ embeddings[judged[labels > 0.5]].mean(axis=0)
    extra = sampled_negatives(unjudged, int(labels.sum()), seed, similarity[unjudged])
    x = np.concatenate([embeddings[judged], embeddings[extra]]).astype(np.float32)
    return x, np.r_[labels, np.zeros(len(extra), np.float32)]


def fit_probe(embeddings: np.ndarray, targets: np.ndarray, name: str, backbone: str, seed: int = 0) -> \
        tuple[Detector, dict]:
    """A one-label probe detector fitted on (embeddings (N, D), 0/1 targets (N,)), and how it was fitted
    ({positives, negatives, c, folds (0: C was not cross-validated), seconds}). `DataError` without a positive
    or a negative."""
    t0 = time.perf_counter()
    targets = np.asarray(targets, dtype=np.float32)
    positives = int((targets > 0.5).sum())
    if positives == 0 or positives == len(targets):
        raise DataError(f"teaching {name!r} needs positive and negative examples (got {positives} positive, "
                        f"{len(targets) - positives} negative)")
    x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
    fitted = fit_head(x, torch.from_numpy(targets)[:, None], "sigmoid", multilabel=True, seed=seed)
    config = TrainConfig(mode="probe", backbone=backbone, head="linear", loss="sigmoid", calibrate=False, seed=seed)
    detector = Detector(config, [name], "sigmoid", in_dim=x.shape[1])
    linear = detector.head.net[-1]
    with torch.no_grad():  # the identity normalisation (mean 0, std 1) is the detector's default
        linear.weight.copy_(torch.from_numpy(fitted.weight))
        linear.bias.copy_(torch.from_numpy(fitted.bias))
    details = {"positives": positives, "negatives": len(targets) - positives, "c": fitted.c, "folds": fitted.folds,
               "seconds": round(time.perf_counter() - t0, 3)}
    return detector.eval(), details


def save_probe(path: str | os.PathLike, name: str, detector: Detector, weights_id: str | None, details: dict) -> None:
    """Write the taught detector as a bundle (atomically), with how it was fitted as its metrics."""
    save_bundle(path, name, detector, weights_id, int(detector.mean.shape[1]), {"taught": details})
