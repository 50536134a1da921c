"""3D CNNs on motion clips: the generator makes labels that only frame order carries, the 3D networks learn
them while per-frame 2D features averaged over time cannot, kernels are (D+2)-dimensional, bad input fails
clearly, and the CLI trains on generated clips and on an .npz."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from mmindex.errors import DataError, DetectorError
from mmindex.learn import clips as C
from mmindex.learn import video3d as V
from tests.conftest import run_cli
from tests.learn.conftest import TRAIN_NPZ

FRAMES, SIZE = 8, 24
TRAIN, TEST = C.motion_task(str(TRAIN_NPZ), 400, 200, frames=FRAMES, size=SIZE, seed=0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one thread is faster on a loaded machine. Restored for the other test modules."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _centroid_x(frame: np.ndarray) -> float:
    m = frame.astype(np.float64).sum(0)  # (H, W)
    return float((m.sum(0) * np.arange(m.shape[1])).sum() / m.sum())


def test_generator_differs_only_by_frame_order():
    left, right, zoom_in, zoom_out = (C.MOTIONS.index(m) for m in ("left", "right", "in", "out"))
    assert TEST.x.shape == (200, FRAMES, 1, SIZE, SIZE) and TEST.x.dtype == np.uint8
    fwd, back = TEST.x[0::2], TEST.x[1::2]  # paired: clip 2i+1 is clip 2i played backwards
    assert np.array_equal(back, fwd[:, ::-1])
    assert {(a, b) for a, b in zip(TEST.y[0::2], TEST.y[1::2], strict=True)} == {(right, left), (zoom_in, zoom_out)}
    for a, b in zip(fwd[:5], back[:5], strict=True):  # the same multiset of frames
        key = lambda f: f.tobytes()  # noqa: E731
        assert sorted(map(key, a)) == sorted(map(key, b))
        assert not np.array_equal(a[0], a[-1])  # and something does move
    # the labels mean what they say: the object's centroid moves right, its visible mass grows when zooming in
    for clip, y in zip(TRAIN.x[:80], TRAIN.y[:80], strict=True):
        dx = _centroid_x(clip[-1]) - _centroid_x(clip[0])
        dm = float(clip[-1].sum()) - float(clip[0].sum())
        if y == right:
            assert dx > 3
        elif y == left:
            assert dx < -3
        elif y == zoom_in:
            assert dm > 0
        else:
            assert dm < 0
    assert np.bincount(TRAIN.y, minlength=4).min() > 60  # all four labels, about balanced
    again = C.motion_task(str(TRAIN_NPZ), 400, 200, frames=FRAMES, size=SIZE, seed=0)[0]
    other = C.motion_task(str(TRAIN_NPZ), 400, 200, frames=FRAMES, size=SIZE, seed=1)[0]
    assert np.array_equal(again.x, TRAIN.x) and not np.array_equal(other.x, TRAIN.x)


@pytest.mark.parametrize("arch", V.ARCHS)
def test_kernels_are_d_plus_2_dimensional(arch):
    model = V.ClipClassifier(arch, 1, 4, width=4)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv3d | nn.Conv2d)]
    dims = {m.weight.dim() for m in convs}
    if arch == "frame2d_mean":  # still images: D = 2
        assert dims == {2 + 2} and not any(isinstance(m, nn.Conv3d) for m in convs)
    else:  # video: D = 3, one kernel (out, in, kt, kh, kw) per layer, and some span several frames
        assert dims == {3 + 2} and all(isinstance(m, nn.Conv3d) for m in convs)
        assert any(m.kernel_size[0] == 3 for m in convs)
    if arch == "c3d":
        assert all(m.kernel_size == (3, 3, 3) for m in convs)
    assert model(torch.zeros(2, FRAMES, 1, SIZE, SIZE)).shape == (2, 4)


@pytest.mark.parametrize("arch", ["r3d_18", "r2plus1d_18"])
def test_width_64_is_torchvision_model(arch):
    from torchvision.models import video

    ref = {k: v.shape for k, v in getattr(video, arch)().state_dict().items() if not k.startswith("fc.")}
    ours = V.video_resnet(arch, in_channels=3, width=64)
    assert {k: v.shape for k, v in ours.state_dict().items()} == ref
    assert ours.out_dim == 512


def _train_and_test(arch: str, tmp_path, epochs: int) -> tuple[V.ClipReport, dict]:
    cfg = V.ClipConfig(arch=arch, width=4, epochs=epochs, batch_size=16, lr=1e-2, seed=0)
    report = V.train_clips(TRAIN, tmp_path / f"{arch}.mmclip", cfg, curves=False, device="cpu")
    return report, V.evaluate_clips(tmp_path / f"{arch}.mmclip", TEST)


@pytest.fixture(scope="module")
def frame_mean(tmp_path_factory):
    return _train_and_test("frame2d_mean", tmp_path_factory.mktemp("f2d"), 4)


def test_time_averaged_2d_baseline_fails_on_motion(frame_mean):
    _, result = frame_mean
    cm = np.array(result["confusion"])
    # order-blind on a paired test set: of each clip and its reversal at most one can be right
    assert result["accuracy"] <= 0.5
    assert cm[0, 0] + cm[1, 1] <= 50 and cm[2, 2] + cm[3, 3] <= 50
    model, _ = V.load_clip_model(frame_mean[0].out)
    x = torch.from_numpy(TEST.x[:32])
    assert torch.allclose(model.scores(x), model.scores(x.flip(1)), atol=1e-5)


@pytest.mark.parametrize(("arch", "floor"), [("c3d", 0.9), ("r3d_18", 0.8), ("r2plus1d_18", 0.8)])
def test_3d_cnns_learn_motion(arch, floor, frame_mean, tmp_path):
    """Seeds 0–4 gave 0.985–1.0 (c3d), 0.985–1.0 (r3d_18) and 0.91–0.995 (r2plus1d_18); any order-blind
    model is at most 0.5 here."""
    report, result = _train_and_test(arch, tmp_path, 4)
    assert result["accuracy"] >= floor, f"{arch}: test accuracy {result['accuracy']:.3f}"
    assert result["accuracy"] - frame_mean[1]["accuracy"] >= 0.3
    assert report.best_epoch >= 1 and report.clips_per_s > 0 and report.train_size == 320


def test_same_seed_same_run(tmp_path):
    cfg = V.ClipConfig(arch="c3d", width=2, epochs=2, batch_size=16, seed=3)
    small = TRAIN.subset(np.arange(64))
    a = V.train_clips(small, tmp_path / "a.mmclip", cfg, curves=False, device="cpu").history
    b = V.train_clips(small, tmp_path / "b.mmclip", cfg, curves=False, device="cpu").history
    assert a == b


def test_bad_input_raises_clear_errors(tmp_path):
    with pytest.raises(DataError, match=r"\(N, T, C, H, W\)"):
        C.make_clips(np.zeros((4, 8, 24, 24)), np.zeros(4, int))  # a channel axis missing
    with pytest.raises(DataError, match="y must be"):
        C.make_clips(np.zeros((4, 8, 1, 24, 24)), np.array([0, 1, 0]))
    with pytest.raises(DataError, match="channels"):
        C.make_clips(np.zeros((4, 8, 5, 24, 24)), np.array([0, 1, 0, 1]))
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        C.load_clips(tmp_path / "empty.npz")
    np.savez(tmp_path / "frames.npz", frames=np.zeros((4, 8, 1, 24, 24)))
    with pytest.raises(DataError, match="x .* and y"):
        C.load_clips(tmp_path / "frames.npz")
    short = C.make_clips(np.zeros((8, 2, 1, 24, 24), np.uint8), np.arange(8) % 2)
    with pytest.raises(DataError, match="at least 4 frames of 8×8"):
        V.train_clips(short, tmp_path / "m.mmclip", V.ClipConfig(arch="c3d", epochs=1))
    (tmp_path / "junk.mmclip").write_bytes(b"nope")
    with pytest.raises(DetectorError):
        V.load_clip_model(tmp_path / "junk.mmclip")


def test_cli_generated_and_npz(tmp_path):
    out = tmp_path / "c3d.mmclip"
    r = run_cli("train-clips", "--generate", "120", "--source", str(TRAIN_NPZ), "--frames", "6", "--size", "16",
                "--width", "2", "--epochs", "2", "--out", str(out), "--json")
    rep = json.loads(r.stdout)
    assert rep["arch"] == "c3d" and rep["clip_shape"] == [6, 1, 16, 16] and rep["train_size"] == 96
    assert rep["test"]["clips"] == 30 and 0 <= rep["test"]["accuracy"] <= 1
    assert out.is_file() and (tmp_path / "c3d.mmclip.curves.png").stat().st_size > 1000
    C.save_clips(tmp_path / "train.npz", TRAIN.subset(np.arange(64)))
    C.save_clips(tmp_path / "test.npz", TEST.subset(np.arange(20)))
    r = run_cli("train-clips", str(tmp_path / "train.npz"), "--arch", "frame2d_mean", "--width", "2", "--epochs", "1",
                "--test", str(tmp_path / "test.npz"), "--out", str(tmp_path / "f.mmclip"), "-q")
    assert "test accuracy:" in r.stdout and "frame2d_mean" in r.stdout
    (tmp_path / "empty.npz").write_bytes(b"")
    r = run_cli("train-clips", str(tmp_path / "empty.npz"), "--out", str(out), check=False)
    assert r.returncode == 1 and r.stderr.strip().startswith("error:") and "empty" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
