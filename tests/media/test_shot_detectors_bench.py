"""bench/shot_detectors.py's own parts: PySceneDetect's cuts mapped to decoded frames, and absent clips skipped."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("scenedetect")
_spec = importlib.util.spec_from_file_location(
    "shot_detectors_bench", Path(__file__).parents[2] / "bench" / "shot_detectors.py")
bench = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # its dataclasses look themselves up there
_spec.loader.exec_module(bench)


def test_pyscenedetect_cuts_are_decoded_frame_numbers(bikes):
    times = bench.frame_times(bikes)
    assert len(times) == 250 and times[1] == pytest.approx(0.04)
    found = bench.DETECTORS["PySceneDetect AdaptiveDetector"](bikes, times)
    assert [(t.start, t.kind) for t in found] == [(f, "cut") for f in bench.BIKES_CUTS[1:]]


def test_absent_clips_are_skipped_with_a_message(tmp_path, capsys):
    (tmp_path / "fades.mp4").write_bytes(b"not checked here")
    clips = bench.pyscenedetect_clips(tmp_path)
    assert list(clips) == ["fades.mp4"] and clips["fades.mp4"].reference
    out = capsys.readouterr().out
    assert "skipped testvideo.mp4: not in --clips" in out and "skipped goldeneye-vfr-drop3.mp4" in out
    assert "how to fetch it" in out and "skipped fades.mp4" not in out
