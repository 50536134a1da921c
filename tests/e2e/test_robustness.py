"""Bad input is recorded and skipped; kill -9 mid-run loses and duplicates nothing; one writer at a time."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mmindex.index.store import Store
from mmindex.samples import write_variants
from tests.conftest import run_cli


def make_bad_folder(root: Path, sample_photos: Path) -> dict[str, str]:
    """Real good photos beside every kind of bad input; returns {file name: expected reason}."""
    root.mkdir()
    good = (sample_photos / "coffee.jpg").read_bytes()
    (root / "good.jpg").write_bytes(good)
    (root / "png-named.jpg").write_bytes((sample_photos / "astronaut.png").read_bytes())  # misnamed, still fine
    with Image.open(sample_photos / "chelsea.jpg") as im:  # EXIF-rotated, WebP, GIF, BMP, TIFF all decode
        exif = Image.Exif()
        exif[0x0112] = 6
        im.save(root / "rotated.jpg", exif=exif)
        im.save(root / "cat.webp")
        im.convert("P").save(root / "cat.gif")
        im.save(root / "cat.bmp")
        im.save(root / "cat.tiff")
    (root / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "corrupt.jpg").write_bytes(good[:200] + bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8)))
    (root / "empty.png").write_bytes(b"")
    (root / "notes.jpg").write_text("this is a text file, not a photo\n")
    Image.new("1", (12_000, 10_000)).save(root / "bomb.png")  # 120 Mpx > Pillow's 89 Mpx limit
    (root / "sub").mkdir()
    (root / "sub" / "loop").symlink_to(root)  # a symlink loop back to the top
    (root / "sub" / "dangling.jpg").symlink_to(root / "missing.jpg")
    locked = root / "locked"
    locked.mkdir()
    (locked / "hidden.jpg").write_bytes(good)
    locked.chmod(0)
    return {
        "truncated.jpg": "truncated",
        "corrupt.jpg": "corrupt",
        "empty.png": "empty file",
        "notes.jpg": "not a recognised image",
        "bomb.png": "too large",
        "loop": "symbolic link loop",
        "dangling.jpg": "broken symbolic link",
        "locked": "cannot read folder",
    }


def test_bad_input_is_recorded_and_the_rest_indexed(shared_tmp, sample_photos):
    folder = shared_tmp / "bad-input"
    expected = make_bad_folder(folder, sample_photos)
    index = shared_tmp / "bad-index"
    # As root every folder is readable, so run as `nobody` for the unreadable folder to be real.
    user = "65534" if os.geteuid() == 0 else None
    proc = run_cli("add", str(folder), "--index", str(index), "-q", user=user)
    assert proc.returncode == 0  # some files failed: still a success, with a count
    assert f"added 7, updated 0, unchanged 0, failed {len(expected)}" in proc.stdout
    assert "Traceback" not in proc.stderr
    info = json.loads(run_cli("info", "--index", str(index), "--json").stdout)
    errors = {Path(e["path"]).name: e["error"] for e in info["errors"]}
    assert set(errors) == set(expected)
    for name, reason in expected.items():
        assert reason in errors[name], (name, errors[name])
    assert info["media"] == info["segments"] == 7
    # the rotated photo was indexed upright (EXIF orientation applied): portrait dimensions
    with Store.open(index) as store:
        w, h = store.db.execute("SELECT width, height FROM media WHERE path LIKE '%rotated.jpg'").fetchone()
    assert h > w


def test_add_exits_nonzero_only_when_nothing_can_be_done(tmp_path, photo_index):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    proc = run_cli("add", str(tmp_path), "--index", str(not_a_folder / "idx"), check=False)
    assert proc.returncode != 0 and "error:" in proc.stderr and "Traceback" not in proc.stderr
    with Store.open(photo_index, write=True):  # hold the writer lock
        proc = run_cli("add", str(tmp_path), "--index", str(photo_index), check=False)
    assert proc.returncode == 1 and "index is locked" in proc.stderr


def committed_segments(index: Path) -> int:
    try:
        with sqlite3.connect(index / "index.sqlite", timeout=5) as db:
            return db.execute("SELECT count(*) FROM segments").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_kill_9_mid_run_then_rerun_loses_and_duplicates_nothing(tmp_path, sample_photos):
    n = 160
    folder = tmp_path / "photos"
    write_variants(folder, n)
    index = tmp_path / "idx"
    cmd = [sys.executable, "-m", "mmindex.cli", "add", str(folder), "--index", str(index), "-q",
           "--batch-size", "8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    seen: list[int] = []
    while time.time() < deadline and proc.poll() is None:
        count = committed_segments(index) if (index / "index.sqlite").exists() else 0
        if count:
            seen.append(count)
            # a concurrent reader only ever sees whole batches, with their arrays
            assert count % 8 == 0
            if index.exists():
                with Store.open(index) as reader:
                    snap = reader.snapshot()  # whole batches only, each with its arrays
                    assert len(snap.ids) % 8 == 0 and len(snap.ids) <= reader.counts()["segments"]
                    assert np.all(np.isfinite(snap.embeddings))
        if count >= 24:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = committed_segments(index)
    assert 0 < before < n, f"kill came too late or too early ({before} committed)"
    out = run_cli("add", str(folder), "--index", str(index), "-q").stdout
    assert f"added {n - before}, updated 0, unchanged {before}, failed 0" in out
    with Store.open(index) as store:
        counts = store.counts()
        assert counts["media"] == counts["segments"] == counts["keyframes"] == n
        paths = [r[0] for r in store.db.execute("SELECT path FROM media")]
        assert len(set(paths)) == n
        files = {p.name for p in (index / "batches").iterdir()}
        assert files == {r[0] for r in store.db.execute("SELECT file FROM batches")}  # no orphans left
        snap = store.snapshot()
        assert len(snap.ids) == n and np.all(np.isfinite(snap.embeddings))
