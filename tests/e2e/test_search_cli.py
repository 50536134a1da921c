"""The foundation's promises, through the real CLI on the real sample photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import run_cli


def search(index: Path, *args: str) -> list[dict]:
    out = run_cli("search", "--index", str(index), "--json", *args).stdout
    data = json.loads(out)  # exactly one JSON object on stdout
    assert set(data) == {"hits"}
    return data["hits"]


def names(hits: list[dict]) -> list[str]:
    return [Path(h["path"]).name for h in hits]


def test_concept_queries_rank_the_right_photo_first(photo_index):
    assert names(search(photo_index, "--concept", "espresso"))[0] == "coffee.jpg"
    assert names(search(photo_index, "--concept", "Egyptian cat"))[0] == "chelsea.jpg"
    for name in ("tabby", "tabby cat", "n02123045", "TABBY_CAT"):
        assert names(search(photo_index, "--concept", name, "-k", "1")) == ["chelsea.jpg"], name
    # hierarchy: "cat" covers the domestic cat classes; the boolean form excludes dogs
    assert names(search(photo_index, "--concept", "cat AND NOT dog"))[0] == "chelsea.jpg"
    assert names(search(photo_index, "--concept", "daisy"))[0] == "flower.jpg"


def test_json_hits_schema_and_order(photo_index):
    hits = search(photo_index, "--concept", "espresso", "-k", "5")
    assert len(hits) == 5
    for h in hits:
        assert isinstance(h["segment_id"], int) and isinstance(h["path"], str)
        assert h["start"] is None and h["end"] is None and isinstance(h["score"], float)
        assert Path(h["path"]).is_absolute()
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert 0.5 < scores[0] <= 1.0  # a probability: lite0 gives espresso ≈ 0.95 on coffee


def test_like_a_rescaled_crop_finds_the_original(photo_index, sample_photos, tmp_path):
    query = tmp_path / "crop.jpg"
    with Image.open(sample_photos / "chelsea.jpg") as im:
        im.crop((60, 20, 400, 280)).resize((240, 184)).save(query, quality=80)
    hits = search(photo_index, "--like", str(query))
    assert names(hits)[0] == "chelsea.jpg"
    assert hits[0]["score"] > hits[1]["score"] + 0.05
    # by segment id: the segment itself is its own nearest neighbour
    sid = hits[0]["segment_id"]
    assert search(photo_index, "--like", str(sid), "-k", "1")[0]["segment_id"] == sid


def test_fused_concept_and_example(photo_index, sample_photos, tmp_path):
    query = tmp_path / "crop.jpg"
    with Image.open(sample_photos / "coffee.jpg") as im:
        im.crop((100, 50, 500, 350)).save(query)
    out = run_cli("search", "--index", str(photo_index), "--json", "--explain",
                  "--concept", "espresso^2", "--like", str(query)).stdout
    hits = json.loads(out)["hits"]
    assert Path(hits[0]["path"]).name == "coffee.jpg"
    assert set(hits[0]["why"]) == {"espresso^2", f"like:{query}"}
    assert hits[0]["score"] == pytest.approx(3.0)  # best on both criteria: 2·1 + 1·1 after min-max


def test_info_counts_and_models(photo_index):
    info = json.loads(run_cli("info", "--index", str(photo_index), "--json").stdout)
    assert info["media"] == 7 and info["segments"] == 7 and info["concepts"] == 1000
    assert info["errors"] == [] and info["models"] == ["efficientnet_lite0"]
    assert info["disk_bytes"] > 0
    text = run_cli("info", "--index", str(photo_index)).stdout
    assert "media:     7" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["--concept", "dgo"], "unknown concept 'dgo'; did you mean:"),
        (["--concept", "cat AND"], "ends too early"),
        (["--concept", "cat^x"], "bad weight"),
        (["--like", "999999"], "no segment with id 999999"),
        (["--like", "/no/such/file.jpg"], "neither a segment id nor a readable file"),
        ([], "empty query"),
    ],
)
def test_malformed_queries_get_one_line_errors(photo_index, args, message):
    proc = run_cli("search", "--index", str(photo_index), *args, check=False)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_incremental_add_remove_and_env_index(sample_photos, tmp_path):
    photos = tmp_path / "photos"
    shutil.copytree(sample_photos, photos)
    env = {"MMINDEX_INDEX": str(tmp_path / "idx")}
    first = run_cli("add", str(photos), "-q", env=env).stdout
    assert "added 7, updated 0, unchanged 0, failed 0" in first
    again = run_cli("add", str(photos), str(photos / "coffee.jpg"), "-q", env=env).stdout
    assert "added 0, updated 0, unchanged 7, failed 0" in again
    # a changed file is re-indexed in place: same counts, new content
    with Image.open(photos / "rocket.jpg") as im:
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(photos / "rocket.jpg")
    assert "added 0, updated 1, unchanged 6" in run_cli("add", str(photos), "-q", env=env).stdout
    info = json.loads(run_cli("info", "--json", env=env).stdout)
    assert (info["media"], info["segments"]) == (7, 7)
    assert "removed 1 media" in run_cli("remove", str(photos / "coffee.jpg"), env=env).stdout
    hits = json.loads(run_cli("search", "--concept", "espresso", "--json", env=env).stdout)["hits"]
    assert "coffee.jpg" not in names(hits) and len(hits) == 6
    run_cli("remove", str(photos), env=env)
    assert json.loads(run_cli("info", "--json", env=env).stdout)["segments"] == 0


def test_concepts_command():
    out = run_cli("concepts", "tabby").stdout
    assert "n02123045" in out
    data = json.loads(run_cli("concepts", "dog", "--json", "--limit", "3").stdout)
    assert data["concepts"][0]["id"] == "n02084071" and data["concepts"][0]["classes"] > 100


def test_free_text_queries_find_the_right_photo(photo_index):
    for text, expected in [("a cup of coffee", "coffee.jpg"), ("a cat", "chelsea.jpg"),
                           ("a chinese temple", "china.jpg")]:
        assert names(search(photo_index, "--text", text, "-k", "1")) == [expected], text
    proc = run_cli("search", "--index", str(photo_index), "--text", "   ", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
