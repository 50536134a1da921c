"""Reports as pictures: the confusion matrix of exclusive classes and learning curves (PNG, matplotlib Agg)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def confusion_matrix(true: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts: row = true class, column = predicted class."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (np.asarray(true), np.asarray(pred)), 1)
    return cm


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot's import
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(cm: np.ndarray, labels: Sequence[str], path: str | os.PathLike, title: str = "") -> Path:
    """Save a row-normalised confusion matrix with counts in the cells."""
    plt = _pyplot()
    n = len(labels)
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.55 * n), dpi=100)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(title or "confusion matrix")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def learning_curves(history: Sequence[dict], path: str | os.PathLike, metric_name: str = "val_metric",
                    title: str = "") -> Path:
    """Training and validation loss, and the validation metric, per epoch (keys of `train`'s history)."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    a.plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss")
    a.plot(epochs, [h["val_loss"] for h in history], "s-", label="validation loss")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.legend()
    b.plot(epochs, [h["val_metric"] for h in history], "o-", color="C2")
    b.set_xlabel("epoch")
    b.set_ylabel(metric_name)
    b2 = b.twinx()
    b2.plot(epochs, [h["lr"] for h in history], ":", color="gray")
    b2.set_ylabel("learning rate", color="gray")
    b2.set_yscale("log")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
