"""Temporal queries and video-level results through the real CLI, on videos with a known order of shots."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli, search_json


def chain(hit: dict) -> list[tuple[str, float]]:
    return [(Path(hit["path"]).name, hit["start"])] + [(Path(hit["path"]).name, c["start"]) for c in hit["then"]]


def test_then_steps_keep_their_order_whatever_their_flags(temporal_index):
    hits = search_json(temporal_index, "--concept", "espresso", "--then", "cat", "-k", "3")["hits"]
    assert chain(hits[0]) == [("forward.mp4", 0.0), ("forward.mp4", 2.0)]
    assert set(hits[0]) == {"segment_id", "path", "start", "end", "score", "kind", "media_id", "then"}
    assert set(hits[0]["then"][0]) == {"segment_id", "start", "end", "score"}
    cat = hits[0]["then"][0]["segment_id"]
    # --then-like and --then-text are steps where they stand: cat (by example) then daisy (by text)...
    forward = search_json(temporal_index, "-c", "espresso", "--then-like", str(cat), "--then-text", "a daisy")["hits"]
    assert chain(forward[0]) == [("forward.mp4", 0.0), ("forward.mp4", 2.0), ("forward.mp4", 4.0)]
    # ... and the same flags the other way round ask for daisy then cat, which no video has
    backward = search_json(temporal_index, "-c", "espresso", "--then-text=a daisy", f"--then-like={cat}",
                           "--group", "video")["hits"]
    assert not backward or backward[0]["score"] < 0.01 * forward[0]["score"]
    assert all("matches" in h for h in backward)


@pytest.mark.parametrize(("args", "message"), [
    (("--then", "cat"), "then needs a first criterion"),
    (("--then-text", "a cat"), "then needs a first criterion"),
    (("-c", "espresso", "--then", "cat", "--within", "0"), "'--within': 0.0 is not in the range 0.0<x"),
    (("-c", "espresso", "--then", "cat", "--within", "-3"), "'--within': -3.0 is not in the range"),
    (("-c", "espresso", "--then", "cat", "--within", "soon"), "'--within': 'soon' is not a valid float"),
    (("-c", "espresso", "--then", "cat", "--within", "nan"), "within must be a number of seconds above 0"),
    (("-c", "espresso", "--group", "scene"), "'--group': 'scene' is not one of 'segment', 'video'"),
])
def test_bad_temporal_queries_are_usage_errors(tmp_path, args, message):
    proc = run_cli("search", "--index", str(tmp_path / "none"), *args, check=False)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
