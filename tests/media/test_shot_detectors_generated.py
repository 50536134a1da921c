"""Generated from the shot-detector registry: every registered detector finds the cuts of generated clips."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmindex.errors import MediaError
from mmindex.evaluate.shots import CLIPS, evaluate, render_clip
from mmindex.media import shots
from mmindex.media.video import detect_transitions

DETECTORS = shots.DETECTORS.names()


@pytest.fixture(scope="module")
def cuts_clip():
    """The frames of the cuts clip, its frame rate and its reference transitions."""
    spec = CLIPS["cuts"]
    frames, reference = render_clip(spec)
    return frames, spec.fps, reference


def _runnable(name: str) -> None:
    """Skip an optional detector whose package is not installed (the dev extra installs them all)."""
    try:
        shots.require_detector(name)
    except MediaError as exc:
        pytest.skip(str(exc))


def test_the_builtin_detector_is_registered_and_the_default():
    assert "builtin" in DETECTORS and shots.DEFAULT_DETECTOR == "builtin"
    assert isinstance(shots.create_shot_detector("builtin", 25.0), shots.ShotDetector)


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_finds_the_cuts_of_a_generated_clip(name, cuts_clip):
    frames, fps, reference = cuts_clip
    _runnable(name)
    detector = shots.create_shot_detector(name, float(fps))
    size = shots.analysis_size(name)  # each detector reads frames of its own size
    for k, rgb in enumerate(frames):
        detector.push(k, np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR)))
    found = detector.finish()
    assert all(isinstance(t, shots.Transition) for t in found)
    scores = evaluate(found, reference, tolerance=2)
    assert scores["cut"].n_reference == len(reference) > 0
    assert scores["cut"].f1 >= 0.95, scores["cut"]


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_by_name_through_video_decoding(name, clips):
    _runnable(name)
    path, reference = clips["cuts"]
    scores = evaluate(detect_transitions(str(path), detector=name), reference, tolerance=2)
    assert scores["cut"].f1 >= 0.95, scores["cut"]


def test_unknown_detector_is_a_media_error_with_suggestions(clips):
    with pytest.raises(MediaError, match="unknown shot detector 'buildin'; did you mean: builtin"):
        detect_transitions(str(clips["cuts"][0]), detector="buildin")
