"""Issue 18 end to end through the real CLI: scratch and finetune detectors applied to an index of real Fashion-MNIST
PNGs, their keyframes read back from the files; files gone or changed recorded and skipped; media added later scored
at `add`; compaction, removal, and kill -9 mid-apply."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli
from tests.index.test_faults import KILL_POINTS
from tests.learn.conftest import TEST_NPZ, TRAIN_NPZ, write_class_folders

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def train_folders(tmp_path_factory) -> Path:
    """Three classes (trouser, sneaker, bag), 30 training images each, as PNG class folders."""
    return write_class_folders(TRAIN_NPZ, tmp_path_factory.mktemp("fm3") / "train", [1, 7, 8])


@pytest.fixture(scope="module")
def test_folders(tmp_path_factory) -> Path:
    """The same classes, 10 test images each."""
    return write_class_folders(TEST_NPZ, tmp_path_factory.mktemp("fm3") / "test", [1, 7, 8])


@pytest.fixture(scope="module")
def scratch(train_folders, tmp_path_factory) -> Path:
    """A scratch detector (LeNet on 28×28 grey pixels: trouser, sneaker, bag), trained through the CLI."""
    out = tmp_path_factory.mktemp("scratch") / "fm.mmdet"
    run_cli("train", str(train_folders), "--mode", "scratch", "--arch", "lenet", "--epochs", "15", "--out", str(out),
            "-q")
    return out


@pytest.fixture(scope="module")
def index(test_folders, tmp_path_factory) -> tuple[Path, str, str]:
    """Sneakers and trousers of the test set, plus two bags that the test then deletes and changes."""
    tmp = tmp_path_factory.mktemp("apply-index")
    volatile = write_class_folders(TEST_NPZ, tmp / "volatile", [8], per_class=2) / "bag"
    idx = tmp / "idx"
    run_cli("add", str(test_folders / "sneaker"), str(test_folders / "trouser"), str(volatile),
            "--index", str(idx), "--batch-size", "8", "-q")
    gone, changed = sorted(volatile.iterdir())
    gone.unlink()
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(changed)  # another picture under the same name
    return idx, gone.name, changed.name


def _folders(index: Path, concept: str, k: int = 10) -> list[str]:
    hits = json.loads(run_cli("search", "--index", str(index), "--concept", concept, "-k", str(k), "--json").stdout)
    return [Path(h["path"]).parent.name for h in hits["hits"]]


def _detector_files(index: Path) -> tuple[set[str], set[str]]:
    with closing(sqlite3.connect(index / "index.sqlite")) as db:
        known = {f for (f,) in db.execute("SELECT file FROM detector_scores")} | {
            f for (f,) in db.execute("SELECT file FROM detectors")}
    return known, {p.name for p in (index / "detectors").iterdir()}


def test_a_scratch_detector_reads_the_pixels_back_and_ranks_its_class_first(scratch, index, test_folders,
                                                                            tmp_path):
    index, gone, changed = index
    r = json.loads(run_cli("apply", str(scratch), "--index", str(index), "--json").stdout)
    assert r["name"] == "fm" and r["segments"] == 22 and r["version"] == 1
    why = {Path(p).name: w for p, w in r["errors"]}
    assert len(why) == 2 and "gone since it was indexed" in why[gone] and "changed since" in why[changed]
    assert _folders(index, "sneaker") == ["sneaker"] * 10 and _folders(index, "fm:trouser") == ["trouser"] * 10
    errors = json.loads(run_cli("info", "--index", str(index), "--json").stdout)["errors"]
    assert sorted(Path(e["path"]).name for e in errors) == sorted([gone, changed])
    assert all("apply 'fm'" in e["error"] and "score 0" in e["error"] for e in errors)
    # media added later are scored at `add`, from the pixels the reader decoded: the same scores as `apply`'s
    run_cli("add", str(test_folders / "bag"), "--index", str(index), "--batch-size", "8", "-q")
    assert _folders(index, "bag").count("bag") >= 8
    added = json.loads(run_cli("search", "--index", str(index), "--concept", "fm:bag", "-k", "40", "--json").stdout)
    copy = tmp_path / "again"
    shutil.copytree(index, copy)
    run_cli("apply", str(scratch), "--index", str(copy), "--device", "cpu", "-q")  # the default's, on this machine
    again = json.loads(run_cli("search", "--index", str(copy), "--concept", "fm:bag", "-k", "40", "--json").stdout)
    assert {(h["path"], round(h["score"], 3)) for h in added["hits"]} == {
        (h["path"], round(h["score"], 3)) for h in again["hits"]}
    # compaction merges the score files; removal drops the removed media's segments, and their rows in the errors
    before = _folders(index, "fm:sneaker", 20)
    run_cli("compact", "--index", str(index), "-q")
    assert _folders(index, "fm:sneaker", 20) == before
    run_cli("remove", str(test_folders / "sneaker"), str(index.parent / "volatile"), "--index", str(index))
    assert "sneaker" not in _folders(index, "fm:sneaker", 40)
    assert not json.loads(run_cli("info", "--index", str(index), "--json").stdout)["errors"]
    known, on_disk = _detector_files(index)
    assert known == on_disk


def test_a_gpu_asked_for_where_pytorch_sees_none_is_refused_before_anything_is_applied(scratch, index, tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this checks a machine without a GPU")
    copy = tmp_path / "index"
    shutil.copytree(index[0], copy)
    before = json.loads(run_cli("info", "--index", str(copy), "--json").stdout)["detectors"]
    proc = run_cli("apply", str(scratch), "--index", str(copy), "--device", "cuda", "-q", check=False)
    assert proc.returncode == 1 and "--device cuda: PyTorch sees no GPU here" in proc.stderr, proc.stderr
    assert json.loads(run_cli("info", "--index", str(copy), "--json").stdout)["detectors"] == before


def test_a_finetuned_detector_is_applied_from_the_backbone_preprocessing(train_folders, test_folders,
                                                                         tmp_path):
    data = tmp_path / "ft"
    for c in ("sneaker", "trouser"):
        (data / c).mkdir(parents=True)
        for p in sorted((train_folders / c).iterdir())[:8]:
            shutil.copy(p, data / c)
    out = tmp_path / "ft.mmdet"
    run_cli("train", str(data), "--mode", "finetune", "--epochs", "1", "--batch-size", "8", "--out", str(out), "-q")
    idx = tmp_path / "idx"
    run_cli("add", str(test_folders / "sneaker"), str(test_folders / "trouser"), "--index", str(idx),
            "-q")
    r = json.loads(run_cli("apply", str(out), "--index", str(idx), "--json").stdout)
    assert r["segments"] == 20 and not r["errors"]
    ranked = _folders(idx, "ft:sneaker", 20)
    assert ranked[:5].count("sneaker") >= 4 and ranked[-5:].count("trouser") >= 4


# ---- kill -9 mid-apply ----------------------------------------------------------------------------------------
# The apply runs in a child that kills itself (SIGKILL) at its N-th commit point (a file's rename, or just before or
# after a COMMIT), committing after every batch. After each kill searches see the detector whole or not at all, and
# running the apply again goes on from the batches committed before the kill, with nothing scored twice.
_KILL_AT = KILL_POINTS + """
import mmindex.index.detectors as detectors
detectors.COMMIT_SECONDS = 0
root, detector = Path(sys.argv[2]), sys.argv[3]
Engine(root).apply(detector)
print("finished")
"""


def _state(index: Path) -> tuple[list[str], list[str], int, int]:
    """(visible detectors, pending ones, score files referenced, batches)."""
    with closing(sqlite3.connect(index / "index.sqlite")) as db:
        names = [n for (n,) in db.execute("SELECT name FROM detectors WHERE pending IS NULL")]
        pending = [n for (n,) in db.execute("SELECT name FROM detectors WHERE pending IS NOT NULL")]
        scores = db.execute("SELECT count(*) FROM detector_scores").fetchone()[0]
        batches = db.execute("SELECT count(*) FROM batches").fetchone()[0]
    return names, pending, scores, batches


def test_kill_9_mid_apply_resumes_where_it_stopped(scratch, test_folders, tmp_path):
    pristine = tmp_path / "pristine"
    run_cli("add", str(test_folders / "sneaker"), str(test_folders / "bag"), "--index", str(pristine),
            "--batch-size", "8", "-q")
    # 1-4: the pending detector and its bundle; 5-8, 9-12, 13-16: a score file and a commit per batch; 17-18: the last
    for kill_at, committed in ((4, 0), (8, 1), (11, 1), (16, 3), (17, 3)):
        root = tmp_path / f"kill-{kill_at}"
        shutil.copytree(pristine, root)
        proc = subprocess.run([sys.executable, "-c", _KILL_AT, str(kill_at), str(root), str(scratch)],
                              capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
        assert _state(root) == ([], ["fm:applying"], committed, 3), f"killed at {kill_at}"
        assert "fm:bag" not in run_cli("concepts", "fm", "--index", str(root), "--json").stdout
        assert not json.loads(run_cli("check", "--index", str(root), "--json").stdout)["damaged"]
        r = json.loads(run_cli("apply", str(scratch), "--index", str(root), "--json").stdout)
        assert r["resumed"] == committed and r["version"] == 1, f"killed at {kill_at}: {r}"
        assert _state(root) == (["fm"], [], 3, 3)
        known, on_disk = _detector_files(root)
        assert known == on_disk, f"killed at {kill_at}: files left over or missing"
        assert _folders(root, "fm:bag").count("bag") >= 8
