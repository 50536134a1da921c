"""Shared fixtures: the sample photos written once per session, a shared model cache, an index built once."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

# One ONNX export per test session, in a folder every user can read (some tests run as `nobody`).
_CACHE = Path(tempfile.mkdtemp(prefix="mmindex-test-cache-"))
_CACHE.chmod(0o777)
os.environ.setdefault("MMINDEX_CACHE", str(_CACHE))
os.environ.pop("MMINDEX_INDEX", None)


def run_cli(*args: str, check: bool = True, env: dict | None = None, user: str | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real `mmindex` command line in a subprocess."""
    cmd = [sys.executable, "-m", "mmindex.cli", *args]
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"mmindex {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def search_json(index: Path, *args: str) -> dict:
    """`mmindex search --json` on `index`, parsed."""
    return json.loads(run_cli("search", "--index", str(index), "--json", *args).stdout)


def names(doc: dict) -> list[str]:
    """The file names of a search's hits, best first."""
    return [Path(h["path"]).name for h in doc["hits"]]


@pytest.fixture(scope="module")
def index_copy(photo_index, tmp_path_factory) -> Path:
    """A private copy of the photo index, per test module: feedback writes the last query into the index folder."""
    dst = tmp_path_factory.mktemp("copy") / "index"
    shutil.copytree(photo_index, dst)
    return dst


@pytest.fixture(scope="session")
def shared_tmp() -> Path:
    """A session folder that every user may write (for tests that run the CLI as `nobody`)."""
    d = Path(tempfile.mkdtemp(prefix="mmindex-test-"))
    d.chmod(0o777 | stat.S_ISVTX)
    return d


@pytest.fixture(scope="session")
def sample_photos(shared_tmp) -> Path:
    from mmindex.samples import write_sample_photos

    folder = shared_tmp / "photos"
    write_sample_photos(folder)
    return folder


@pytest.fixture(scope="session")
def photo_index(shared_tmp, sample_photos) -> Path:
    """An index of the sample photos, built once through the CLI."""
    index = shared_tmp / "photo-index"
    run_cli("add", str(sample_photos), "--index", str(index), "-q")
    return index


# Videos with a known order of shots, made of the sample photos (a slow pan over each, hard cuts), for temporal
# queries: "espresso, then a cat within 10 s" is in forward.mp4 only (reverse.mp4 has them the other way round,
# gap.mp4 has 12 s of temple between them). name -> (photos, seconds each)
TEMPORAL_VIDEOS = {
    "forward.mp4": (("coffee", "chelsea", "flower"), (2, 2, 2)),
    "reverse.mp4": (("chelsea", "coffee"), (2, 2)),
    "gap.mp4": (("coffee", "china", "chelsea"), (2, 12, 2)),
}


@pytest.fixture(scope="session")
def temporal_index(shared_tmp, sample_photos) -> Path:
    """An index of TEMPORAL_VIDEOS (their shots given by msb files) and the coffee photo (an image is never part of a
    chain), built through the CLI."""
    from mmindex.evaluate.shots import ClipSpec, make_clip

    folder = shared_tmp / "temporal-media"
    folder.mkdir()
    for name, (photos, seconds) in TEMPORAL_VIDEOS.items():
        frames = [10 * s for s in seconds]  # 10 frames a second
        make_clip(folder / name, ClipSpec(photos, tuple(frames), (("cut", 0),) * (len(photos) - 1), size=(224, 168),
                                          fps=10))
        # the shots as a master shot reference (docs/video.md): known whichever shot detector is the default
        ends = np.cumsum(frames)
        (folder / f"{name}.msb").write_text("".join(f"{e - n} {e - 1}\n" for n, e in zip(frames, ends, strict=True)))
    shutil.copy(sample_photos / "coffee.jpg", folder / "coffee.jpg")
    index = shared_tmp / "temporal-index"
    run_cli("add", str(folder), "--index", str(index), "-q")
    return index
