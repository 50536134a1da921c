"""Shared by the text benchmarks: Fashion-MNIST indexes built through the real `Engine.add`, and queries.

The Debian package `dataset-fashion-mnist` provides the images; each image is written as a PNG and
indexed by the default backbone. Indexes are kept under --work (default /tmp/mmindex-bench) and reused.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]

# Validation queries: other words for the same classes, run on *training* images. The test queries are
# the class names above, on test images; they were not used to tune anything.
VALIDATION_QUERIES = {
    0: ["tee", "top", "short-sleeved top"], 1: ["jeans", "pants", "slacks"], 2: ["sweater", "jumper", "knitwear"],
    3: ["gown", "frock", "evening wear"], 4: ["jacket", "overcoat", "parka"], 5: ["flip-flops", "open shoe", "slipper"],
    6: ["blouse", "button-down", "collared top"], 7: ["trainers", "running shoe", "sports shoe"],
    8: ["handbag", "purse", "tote"], 9: ["boots", "short boot", "winter boot"],
}
# Queries that name things an ImageNet bank knows (no labels here; for the threshold only) and off-topic ones.
VALID_GENERAL = ["a dog playing", "a red sports car", "a bird on a branch", "a glass of beer", "a sailing boat",
                 "a pizza", "a computer keyboard", "a bowl of soup", "an old church", "a man on a horse",
                 "a fish in the sea", "a wooden chair", "an aeroplane in the sky", "a bunch of bananas"]
OFF_TOPIC = ["tax return deadline", "quantum chromodynamics", "qqq zzzz", "xkcd qwerty", "the meaning of life",
             "asdf", "lorem ipsum dolor", "next tuesday afternoon", "hello world", "interest rates",
             "an unfinished symphony", "zxcvbnm", "grammar rules", "democracy"]


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,)) of "train" or "t10k"."""
    with gzip.open(FASHION / f"{split}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(FASHION / f"{split}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return x, y


def index(split: str, n: int, work: Path, seed: int = 0):
    """An Engine over the first n images of a split (a fixed stratified-by-chance sample), and the labels
    by segment id."""
    from mmindex import Engine

    x, y = load(split)
    rows = np.random.default_rng(seed).permutation(len(x))[:n] if n < len(x) else np.arange(len(x))
    folder = work / f"fashion-{split}-{n}"
    images, root = folder / "images", folder / "index"
    if not (folder / "done").is_file():
        images.mkdir(parents=True, exist_ok=True)
        for r in rows:
            Image.fromarray(x[r]).save(images / f"{r:05d}.png")
        Engine(root).add([images])
        (folder / "done").touch()
    engine = Engine(root)
    snap, _ = engine.searcher._arrays()
    paths = engine.reader().segments(snap.ids)
    labels = np.array([y[int(Path(paths[int(i)]["path"]).stem)] for i in snap.ids])
    return engine, labels
