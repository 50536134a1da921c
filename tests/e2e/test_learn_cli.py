"""Issue 4 end to end through the real CLI on real Fashion-MNIST images: train → evaluate → apply → search."""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.learn.conftest import TRAIN_NPZ, fmnist_folders, fmnist_test_folders, write_class_folders  # noqa: F401


@pytest.fixture(scope="module")
def trained(fmnist_folders, tmp_path_factory) -> Path:
    """A probe detector `fmnist` (trouser, sneaker, bag) trained through the CLI, with one unreadable image."""
    tmp = tmp_path_factory.mktemp("learn")
    data = tmp / "train"
    shutil.copytree(fmnist_folders, data)
    (data / "bag" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp / "fmnist.mmdet"
    proc = run_cli("train", str(data), "--out", str(out), "--epochs", "15", "--lr", "0.05", "-q")
    assert "trained 'fmnist' (probe, sigmoid)" in proc.stdout and "validation: a seeded split" in proc.stdout
    assert "skipped:" in proc.stderr and "broken.png" in proc.stderr
    assert out.is_file() and Path(f"{out}.curves.png").is_file()
    return out


@pytest.fixture(scope="module")
def index(trained, fmnist_test_folders, tmp_path_factory) -> Path:
    idx = tmp_path_factory.mktemp("learn-index") / "idx"
    run_cli("add", str(fmnist_test_folders / "sneaker"), str(fmnist_test_folders / "trouser"), "--index", str(idx),
            "--batch-size", "8", "-q")
    return idx


def _search(index: Path, concept: str, k: int = 10) -> list[str]:
    hits = json.loads(run_cli("search", "--index", str(index), "--concept", concept, "-k", str(k), "--json").stdout)
    return [Path(h["path"]).parent.name for h in hits["hits"]]


def test_evaluate_reports_every_metric_and_writes_files(trained, fmnist_test_folders, tmp_path):
    r = json.loads(run_cli("evaluate", str(trained), str(fmnist_test_folders), "--confusion", str(tmp_path / "cm.png"),
                           "--run-out", str(tmp_path / "run.txt"), "--qrels-out", str(tmp_path / "qrels.txt"),
                           "--sample", "0.5", "--json").stdout)
    assert r["images"] == 30 and r["labels"] == ["bag", "sneaker", "trouser"]
    assert r["top1_error"] <= 0.2 and r["top5_error"] == 0.0 and r["map"] >= 0.7
    for key in ("infAP", "xinfAP", "P@5", "P@10", "nDCG@5", "nDCG@10"):
        assert 0.0 <= r[key] <= 1.0
    stratified = json.loads(run_cli("evaluate", str(trained), str(fmnist_test_folders), "--sample", "0.3",
                                    "--judge-top", "30", "--json").stdout)
    assert stratified["xinfAP"] == pytest.approx(stratified["map"], abs=1e-3)  # the top 30 of 30: all judged
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"
    assert len((tmp_path / "run.txt").read_text().splitlines()) == 90
    text = run_cli("evaluate", str(trained), str(fmnist_test_folders)).stdout
    assert "top1_error" in text and "AP sneaker" in text


def test_apply_makes_labels_searchable_and_scores_media_added_later(trained, index, fmnist_test_folders, tmp_path):
    r = json.loads(run_cli("apply", str(trained), "--index", str(index), "--json").stdout)
    assert r["name"] == "fmnist" and r["segments"] == 20 and not r["replaced"] and r["version"] == 1
    queries = {c["name"]: c["query"] for c in r["concepts"]}
    # "sneaker", "bag" and "trouser" already name WordNet/ImageNet concepts: the user's detector wins the names,
    # the built-in ones stay reachable as wordnet:NAME (and the qualified names reach ours too).
    assert queries["sneaker"] == "sneaker" and r["concepts"][0]["shadows"]["query"] == "wordnet:bag"
    assert "'trouser' now means your detector; the built-in concept is wordnet:trouser (n04489008)" in r["messages"]
    assert _search(index, "sneaker", 10) == _search(index, "fmnist:sneaker", 10)
    assert _search(index, "fmnist:sneaker", 10) == ["sneaker"] * 10
    run_cli("add", str(fmnist_test_folders / "bag"), "--index", str(index), "-q")
    assert _search(index, "fmnist:bag AND NOT fmnist:trouser", 5).count("bag") >= 4  # scored at ingest
    concepts = json.loads(run_cli("concepts", "--json").stdout)  # the package vocabulary is untouched
    assert not any(c["source"] == "trained" for c in concepts["concepts"])
    again = json.loads(run_cli("apply", str(trained), "--index", str(index), "--json").stdout)
    assert again["replaced"] and again["segments"] == 30 and again["version"] == 2
    assert _search(index, "fmnist:trouser", 10).count("trouser") >= 8
    db = sqlite3.connect(index / "index.sqlite")
    files = {f for (f,) in db.execute("SELECT file FROM detector_scores")} | {
        f for (f,) in db.execute("SELECT file FROM detectors")}
    assert files == {p.name for p in (index / "detectors").iterdir()}
    # compaction merges the detector's per-batch score files with the batches: same hits, one file each
    assert db.execute("SELECT count(*) FROM detector_scores").fetchone()[0] > 1
    db.close()  # an open reader would keep writers from checkpointing the WAL, which later tests compare
    # compaction (of a copy: later tests want several batches) merges the detector's per-batch score files
    copy = tmp_path / "compacted"
    shutil.copytree(index, copy)
    before = {c: _search(copy, c, 10) for c in ("fmnist:trouser", "fmnist:bag AND NOT fmnist:sneaker")}
    run_cli("compact", "--index", str(copy), "-q")
    assert {c: _search(copy, c, 10) for c in before} == before
    with closing(sqlite3.connect(copy / "index.sqlite")) as db:
        assert db.execute("SELECT count(*) FROM batches").fetchone()[0] == 1
        assert db.execute("SELECT count(*) FROM detector_scores").fetchone()[0] == 1
        files = {f for (f,) in db.execute("SELECT file FROM detector_scores")} | {
            f for (f,) in db.execute("SELECT file FROM detectors")}
    assert files == {p.name for p in (copy / "detectors").iterdir()}


def test_bad_detectors_are_refused_before_touching_the_index(trained, index, tmp_path):
    from mmindex.learn.checkpoint import load_bundle, save_bundle

    other = tmp_path / "other.mmdet"  # the same probe, said to be trained on other weights of the backbone
    bundle = load_bundle(trained)
    save_bundle(other, "other", bundle.detector, "other-weights", int(bundle.detector.mean.shape[-1]))
    before = (index / "index.sqlite").read_bytes()
    for det, message in ((other, "does not fit this index: it takes the index embedding of efficientnet_lite0 "
                                 "features (1280-d), weights other-weights"),
                         (tmp_path / "missing.mmdet", "no detector file")):
        proc = run_cli("apply", str(det), "--index", str(index), check=False)
        assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr
    data = trained.read_bytes()
    (tmp_path / "cut.mmdet").write_bytes(data[: len(data) // 3])
    proc = run_cli("apply", str(tmp_path / "cut.mmdet"), "--index", str(index), check=False)
    assert proc.returncode == 1 and "corrupt or truncated" in proc.stderr
    proc = run_cli("evaluate", str(tmp_path / "cut.mmdet"), str(TRAIN_NPZ), check=False)
    assert proc.returncode == 1 and "corrupt or truncated" in proc.stderr
    assert (index / "index.sqlite").read_bytes() == before


def test_apply_failing_midway_is_invisible_and_a_rerun_completes_it(trained, index, monkeypatch):
    """A failed apply leaves only its pending row (resumable, see docs/reliability.md): no concept, no detector
    that a search, `concepts` or `info` sees; the same apply run again completes it, leaving no stray file."""
    from mmindex import Engine
    from mmindex.index import detectors

    real, calls = detectors.write_scores, {"n": 0}

    def fail_on_second_batch(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real(*args)

    monkeypatch.setattr(detectors, "write_scores", fail_on_second_batch)
    engine = Engine(index)
    with pytest.raises(OSError):
        engine.apply(trained, name="other")
    monkeypatch.undo()
    db = sqlite3.connect(index / "index.sqlite")
    assert [n for (n,) in db.execute("SELECT name FROM detectors ORDER BY id")] == ["fmnist", "other:applying"]
    assert [d["name"] for d in engine.detectors()] == ["fmnist"]
    assert not db.execute("SELECT count(*) FROM concepts WHERE id LIKE 'other:%'").fetchone()[0]
    assert not [c for c in engine.concepts() if c.id.startswith("other:")]
    # (whether it resumes depends on time: scores are committed every 5 s; test_apply_resume.py kills at each)
    assert engine.apply(trained, name="other")["version"] == 1
    assert [n for (n,) in db.execute("SELECT name FROM detectors ORDER BY id")] == ["fmnist", "other"]
    known = {f for (f,) in db.execute("SELECT file FROM detector_scores")} | {
        f for (f,) in db.execute("SELECT file FROM detectors")}
    assert {p.name for p in (index / "detectors").iterdir()} == known


def test_train_bad_input_is_one_line_error(tmp_path):
    one = write_class_folders(TRAIN_NPZ, tmp_path / "one", [7], per_class=3)
    proc = run_cli("train", str(one), "--out", str(tmp_path / "x.mmdet"), check=False)
    assert proc.returncode == 1 and "only one class" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.mmdet").exists()


def test_train_multilabel_from_a_csv(tmp_path):
    root = write_class_folders(TRAIN_NPZ, tmp_path, [1, 7, 8], per_class=8)
    rows = [f"{p.relative_to(tmp_path)},{p.parent.name};{'shoe' if p.parent.name == 'sneaker' else 'other'}"
            for p in sorted(root.rglob("*.png"))]
    (tmp_path / "ann.csv").write_text("image,labels\n" + "\n".join(rows) + "\n")
    r = json.loads(run_cli("train", str(tmp_path / "ann.csv"), "--out", str(tmp_path / "ml.mmdet"), "--mode", "scratch",
                           "--arch", "lenet", "--epochs", "2", "--json").stdout)
    assert r["loss"] == "sigmoid" and r["labels"] == ["bag", "other", "shoe", "sneaker", "trouser"]
    assert r["metric_name"] == "val_map"
