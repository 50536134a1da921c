"""The "revolution of depth": published ILSVRC classification results against network depth and year.

`WINNERS` holds the results of the lecture's chart (K. He's ILSVRC 2015 slide): the top-5 test error
of the ILSVRC classification winners from 2010 to 2015, and VGG, second in 2014, each as published by
its team. `plot_depth_chart` draws them (matplotlib, Agg) for `mmindex models plot` and docs/zoo.md.
This module imports neither PyTorch nor the models.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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
    ax2.set_xlim(5, 600)  # room for the labels right of ResNet-152
    ax2.set_xlabel("depth (weighted layers, log scale)")
    ax2.set_ylabel("top-5 error (%)")
    ax2.set_title("Error against depth")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
