"""A resumable `apply` (issue 18) under the kill-at-every-commit-point harness of test_faults.py: a detector of the
stored embeddings, committed after every batch, killed (SIGKILL) at each commit point in turn. After every kill
searches see the detector whole or not at all and `check` finds no damage; the re-run goes on from the last commit
(after a compaction too), scores no batch twice, and leaves no file behind. Indexes are built without a model, as in
test_faults.py; the same with a model that reads media back is in tests/e2e/test_apply_cli.py."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mmindex.index import detectors
from mmindex.index.store import Store
from tests.conftest import run_cli
from tests.index.test_faults import KILL_POINTS, assert_whole, build, checked, media_paths

ROOT = Path(__file__).resolve().parents[2]

_APPLY_KILLED_AT = KILL_POINTS + """
from tests.index.test_apply_resume import apply_thing
root = Path(sys.argv[2])
with store_mod.Store.open(root, write=True) as s:
    print("resumed", apply_thing(s, root.parent / "thing.bundle")["resumed"])
print("finished")
"""


def thing_scores(emb: np.ndarray) -> np.ndarray:
    """The scores of "thing", a detector of two labels on the stored embeddings: sigmoids of their first two values."""
    return (1 / (1 + np.exp(-3 * np.asarray(emb, np.float32)[:, :2]))).astype(np.float16)


def apply_thing(store: Store, bundle: Path) -> dict:
    """Apply "thing" (its bundle file: any bytes) with `detectors.apply`, committing after every batch."""
    about = SimpleNamespace(name="thing", mode="probe", backbone=None, weights_id=None, labels=["a", "b"])
    return detectors.apply(store, bundle, about, thing_scores, commit_seconds=0)


def _thing_state(root: Path) -> tuple[list[str], set[int], int]:
    """The detectors searches see, the batches the pending "thing" has scores of, and the pending detectors; asserts
    that a visible detector is whole and scores what `thing_scores` says."""
    with Store.open(root) as store:
        visible = [d["name"] for d in store.detector_list()]
        assert len([c for c in store.concept_columns() if c[3] == "trained"]) == 2 * len(visible)
        for det_id, _, _ in store.detector_bundles():
            assert set(store.detector_score_files(det_id)) == set(store.batch_file_names()), "half a detector"
        if visible:
            snap = store.snapshot()
            col = [c[0] for c in store.concept_columns() if c[1] == "thing:a"][0]
            np.testing.assert_allclose(np.asarray(snap.scores.column(col), np.float32),
                                       thing_scores(np.asarray(snap.embeddings, np.float32))[:, 0], atol=2e-3)
        found = store.pending_detector("thing")
        scored = set(store.detector_score_files(found[0])) if found else set()
        return visible, scored, len(store.pending_detectors())


def _apply(root: Path, kill_at: int = 0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _APPLY_KILLED_AT, str(kill_at), str(root)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_kill_9_at_each_commit_point_of_apply_resumes_with_nothing_half_visible_or_twice(tmp_path):
    pristine = tmp_path / "pristine"
    build(pristine, vectors=False)
    (tmp_path / "thing.bundle").write_bytes(b"a bundle")
    kills = resumed = 0
    for kill_at in range(1, 60, 2):  # just before each commit and rename (just after: the next one's state)
        root = tmp_path / f"apply-{kill_at}"
        shutil.copytree(pristine, root)
        proc = _apply(root, kill_at)
        if proc.returncode == 0:
            assert "resumed 0" in proc.stdout and _thing_state(root) == (["thing"], set(), 0)
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        kills += 1
        visible, scored, pending = _thing_state(root)
        assert visible == [] and pending <= 1, f"killed at point {kill_at}: {visible}"
        report = checked(root)
        assert not report["damaged"]
        assert any("'thing' is being applied" in p["what"] for p in report["problems"]) == bool(pending)
        compacted = kill_at % 4 == 3
        if compacted:  # a compaction between the kill and the re-run merges what was scored and what was not
            run_cli("compact", "--index", str(root), "--target-rows", "8", "-q")
        again = _apply(root)
        assert again.returncode == 0, again.stderr
        went_on = int(again.stdout.split()[1])
        assert went_on == len(scored) or compacted, f"killed at point {kill_at}: batches scored again, or lost"
        resumed += went_on > 0
        assert _thing_state(root) == (["thing"], set(), 0)
        with Store.open(root) as store:
            assert {p.name for p in (root / "detectors").iterdir()} == store.detector_files(), "files left over"
        assert_whole(root, media_paths(pristine))
    else:
        pytest.fail("the apply never finished")
    assert kills >= 8 and resumed >= 2, (kills, resumed)
    print(f"apply: killed at {kills} commit points, each survived")  # docs/reliability.md (pytest -s)
