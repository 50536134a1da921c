"""`video.decode`: segment times and keyframes, msb import, seeking, and bad videos."""

from __future__ import annotations

import logging
import os

import av
import numpy as np
import pytest

from mmindex.config import IngestConfig
from mmindex.errors import MediaError
from mmindex.evaluate.shots import CLIPS, render_clip, write_video
from mmindex.media import shots, video
from mmindex.media.shots import Shot


def _decode(path, data_config, **config):
    return video.decode(str(path), "0" * 64, os.stat(path), data_config, IngestConfig(**config))


def test_decode_bikes_shapes_and_times(bikes, data_config):
    d = _decode(bikes, data_config)
    assert (d.kind, d.width, d.height, d.duration) == ("video", 640, 272, 10.0)
    # frames 0, 30, 76, 137, 187, 242 at 25 fps
    assert [s.start for s in d.segments] == [0.0, 1.2, 3.04, 5.48, 7.48, 9.68]
    assert [s.end for s in d.segments] == [1.2, 3.04, 5.48, 7.48, 9.68, 10.0]
    for s in d.segments:
        assert len(s.frames) == len(s.keyframes) == 1
        assert s.frames[0].shape == (3, 224, 224) and s.frames[0].dtype == np.float32
        (t, f), = s.keyframes
        assert s.start <= t < s.end and t == pytest.approx(f / 25.0)
    assert [f for s in d.segments for _, f in s.keyframes] == [15, 53, 106, 162, 214, 246]


def test_keyframes_avoid_transition_frames(clips, data_config):
    path, ref = clips["gradual"]
    d = _decode(path, data_config)
    in_transition = {f for t in ref for f in range(t.start, t.end + 1)}
    assert len(d.segments) == len(ref) + 1
    assert not {f for s in d.segments for _, f in s.keyframes} & in_transition


def test_msb_sidecar_replaces_detection_and_seeks(tmp_path, data_config, monkeypatch):
    frames, _ = render_clip(CLIPS["cuts"])
    path = tmp_path / "clip.mp4"
    write_video(path, frames + frames + frames)  # 1098 frames, 73.2 s at 15 fps
    n = 3 * len(frames)
    (tmp_path / "clip.msb").write_text(f"0 99\n100 {n // 2}\n{n // 2 + 1} {n - 1}\n")
    monkeypatch.setattr(video, "analyse", lambda *a, **k: pytest.fail("msb shots must not be detected"))
    d = _decode(path, data_config)
    assert [s.start for s in d.segments] == [0.0, round(100 / 15, 3), round((n // 2 + 1) / 15, 3)]
    expected = [shots.keyframes(Shot(a, b, a, b), 15.0) for a, b in [(0, 99), (100, n // 2), (n // 2 + 1, n - 1)]]
    assert [[f for _, f in s.keyframes] for s in d.segments] == expected
    assert [len(k) for k in expected] == [1, 3, 4]  # 6.7 s, 30.0 s and 36.5 s: one keyframe per 10 s or part of it
    assert all(t == pytest.approx(f / 15, abs=1e-3) for s in d.segments for t, f in s.keyframes)


def test_a_reversed_msb_range_fails_the_video_with_the_line(tmp_path, data_config):
    frames, _ = render_clip(CLIPS["cuts"])
    path = tmp_path / "clip.mp4"
    write_video(path, frames)
    (tmp_path / "clip.msb").write_text(f"0 99\n{len(frames) - 1} 100\n")  # the last shot ends before it starts
    with pytest.raises(MediaError, match="clip.msb, line 2: shot ends before it starts"):
        _decode(path, data_config)


def test_seek_rule():
    class S:
        time_base = 1 / 1000

    keys = [0, 5000, 10000]
    assert not video._should_seek(None, 7000, keys, S)  # nothing decoded yet: decode from the start
    assert video._should_seek(1000, 7000, keys, S)  # key frame 5000 lies between: seeking skips frames
    assert not video._should_seek(5500, 7000, keys, S)  # no key frame between: decode forward
    assert not video._should_seek(1000, 4000, None, S)  # unknown key frames, only 3 s ahead
    assert video._should_seek(1000, 9000, None, S)


def test_frame_step_still_finds_shots(bikes, data_config):
    d = _decode(bikes, data_config, frame_step=3)
    assert 5 <= len(d.segments) <= 6


# --- bad videos ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mixed_frames():
    return render_clip(CLIPS["mixed"])[0]


def test_truncated_file_without_index_is_an_error(tmp_path, mixed_frames, data_config):
    path = tmp_path / "t.mp4"
    write_video(path, mixed_frames)  # moov atom at the end: cutting the file loses the index
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(MediaError, match="corrupt, truncated"):
        _decode(path, data_config)


def test_truncated_file_is_indexed_as_far_as_it_decodes(tmp_path, mixed_frames, data_config):
    path = tmp_path / "t.mp4"
    write_video(path, mixed_frames, container_options={"movflags": "faststart"})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    d = _decode(path, data_config)
    full = len(mixed_frames) / 15
    assert 0.3 * full < d.duration < 0.9 * full
    assert d.segments and all(s.end <= d.duration for s in d.segments)


def test_random_bytes(tmp_path, data_config):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(20_000))
    with pytest.raises(MediaError, match="not a readable video"):
        _decode(path, data_config)


def test_empty_file(tmp_path, data_config):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(MediaError, match="empty file"):
        _decode(path, data_config)


def test_audio_only(tmp_path, data_config):
    path = tmp_path / "audio.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        tone = (0.3 * np.sin(np.arange(1024, dtype=np.float32) / 10))[None]
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(MediaError, match="no video stream .*audio"):
        _decode(path, data_config)


def test_zero_length_video(tmp_path, data_config):
    path = tmp_path / "zero.avi"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        out.start_encoding()
    with pytest.raises(MediaError, match="no decodable frames"):
        _decode(path, data_config)


def test_timestamps_going_backwards_stop_decoding(tmp_path, mixed_frames, data_config, caplog):
    path = tmp_path / "back.mkv"
    order = list(range(60)) + list(range(20, 80))  # the pts jump back from 59 to 20
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mjpeg", rate=15)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuvj420p"
        for i, pts in enumerate(order):
            for packet in stream.encode(av.VideoFrame.from_ndarray(mixed_frames[i], format="rgb24")):
                packet.dts, packet.pts = i - 1000, pts  # dts keeps increasing, so the muxer accepts it
                out.mux(packet)
    with caplog.at_level(logging.WARNING, logger="mmindex.media.video"):
        d = _decode(path, data_config)
    assert "timestamps go backwards" in caplog.text
    assert d.duration == pytest.approx(60 / 15, abs=0.01)
    assert [s.start for s in d.segments][:2] == [0.0, pytest.approx(36 / 15, abs=0.01)]  # the cut at frame 36
