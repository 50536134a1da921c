"""Fault injection: damaged, missing and truncated index files, interrupted creation, read-only indexes, full
disks, racing migrations. Each time: nothing committed is lost, nothing is duplicated, every command says what
is wrong in one line, and `check` then `repair` bring back a working index.

Indexes are built without a model (random scores, real files), so each case runs in about a second.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mmindex.concepts import Vocabulary
from mmindex.errors import IndexDamaged, StoreError
from mmindex.index.schema import MIGRATIONS
from mmindex.index.store import Store
from mmindex.records import MediaRecord, SegmentRecord
from tests.conftest import run_cli

DIM = 8
CONCEPTS = [(c.id, c.name, c.source) for c in Vocabulary.imagenet().classes]


def records(names: list[str], seed: int) -> list[MediaRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for name in names:
        e = rng.standard_normal(DIM)
        out.append(MediaRecord(name, "image", f"{abs(hash(name)):064x}", 1, 0,
                               [SegmentRecord(rng.dirichlet(np.full(1000, 0.05)), e / np.linalg.norm(e))]))
    return out


def build(root: Path, batches: int = 3, per_batch: int = 4, vectors: bool = True) -> dict[int, list[str]]:
    """An index of `batches` batch files; returns {batch id: its media paths}."""
    layout = {}
    with Store.create(root, "efficientnet_lite0", DIM, CONCEPTS) as store:
        for b in range(batches):
            names = [f"/photos/b{b}/{i}.jpg" for i in range(per_batch)]
            store.write_batch(records(names, b))
            layout[store.db.execute("SELECT max(id) FROM batches").fetchone()[0]] = names
    if vectors:
        run_cli("rebuild", "--index", str(root), "--vector-index", "flat")
    return layout


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    """The command failed with exactly one line on stderr, no traceback, naming `words`."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def media_paths(root: Path) -> list[str]:
    with Store.open(root) as store:
        return sorted(r[0] for r in store.db.execute("SELECT path FROM media"))


def checked(root: Path) -> dict:
    return json.loads(run_cli("check", "--index", str(root), "--json", check=False).stdout)


def assert_whole(root: Path, expected_paths: list[str]) -> None:
    """`check` finds no damage, every expected media is there once, and searches work."""
    report = checked(root)
    assert not report["damaged"], report
    assert media_paths(root) == sorted(expected_paths)
    hits = json.loads(run_cli("search", "--index", str(root), "--concept", "dog", "-k", "100", "--json").stdout)["hits"]
    assert sorted(h["path"] for h in hits) == sorted(expected_paths)
    if expected_paths:
        hits = json.loads(run_cli("search", "--index", str(root), "--like", str(hits[0]["segment_id"]),
                                  "--json").stdout)["hits"]
        assert hits


# ---- batch files ------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncate", "delete", "bitflip", "empty"])
def test_a_damaged_batch_file_is_named_then_quarantined_and_its_media_forgotten(tmp_path, damage):
    root = tmp_path / "idx"
    layout = build(root)
    victim_id, victim_media = list(layout.items())[1]
    with Store.open(root) as store:
        file = store.db.execute("SELECT file FROM batches WHERE id = ?", (victim_id,)).fetchone()[0]
    path = root / "batches" / file
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "delete":
        path.unlink()
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # one flipped bit in the scores: same size, still parses; only the checksum can tell
        flipped = bytearray(data)
        flipped[len(data) // 3] ^= 0x10
        path.write_bytes(bytes(flipped))

    report = checked(root)
    assert report["damaged"]
    (problem,) = [p for p in report["problems"] if p["severity"] == "damage"]
    assert problem["file"] == f"batches/{file}" and "mmindex repair" in problem["fix"]
    if damage != "bitflip":  # a flipped score bit is readable: only `check` sees it
        for cmd in (["search", "--concept", "dog"], ["info"], ["compact"], ["rebuild"]):
            one_line_error(run_cli(*cmd, "--index", str(root), check=False), "damaged", file, "mmindex check")

    out = run_cli("repair", "--index", str(root)).stdout
    assert "quarantine" in out or damage == "delete", out
    assert f"forgot {len(victim_media)} media of that batch" in out, out
    if damage != "delete":
        assert list((root / "quarantine").rglob(file)), "the damaged file is kept, not deleted"
    survivors = [p for b, names in layout.items() if b != victim_id for p in names]
    assert_whole(root, survivors)
    assert run_cli("repair", "--index", str(root)).stdout.strip() == "nothing to repair"  # idempotent
    assert not set(victim_media) & set(media_paths(root))  # forgotten: the next add indexes them again


def test_a_truncated_vector_index_leaves_searches_working_and_repair_rebuilds_it(tmp_path):
    root = tmp_path / "idx"
    layout = build(root)
    (faiss_file,) = (root / "vectors").iterdir()
    faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    everything = [p for names in layout.values() for p in names]
    # concept and example searches go on (examples exactly over the stored embeddings) while it is damaged
    hits = json.loads(run_cli("search", "--index", str(root), "--concept", "dog", "-k", "100", "--json").stdout)
    assert len(hits["hits"]) == len(everything)
    like = run_cli("search", "--index", str(root), "--like", str(hits["hits"][0]["segment_id"]), "--json")
    assert json.loads(like.stdout)["hits"][0]["segment_id"] == hits["hits"][0]["segment_id"]
    report = checked(root)
    assert report["damaged"] and report["problems"][0]["file"] == "vectors"
    assert "rebuilt the vector index" in run_cli("repair", "--index", str(root)).stdout
    assert_whole(root, everything)


# ---- the database -------------------------------------------------------------------------------------
def test_a_zero_byte_database_is_refused_and_no_data_file_is_deleted(tmp_path, sample_photos):
    root = tmp_path / "idx"
    build(root)
    data_files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.parent != root)
    (root / "index.sqlite").write_bytes(b"")
    for cmd in (["search", "--concept", "dog"], ["info"], ["add", str(sample_photos)], ["remove", "/photos"],
                ["compact"]):
        one_line_error(run_cli(*cmd, "--index", str(root), check=False), "damaged", "empty", "mmindex check")
    assert (root / "index.sqlite").stat().st_size == 0, "no command rewrote it as an empty schema"
    assert sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.parent != root) == data_files
    assert checked(root)["damaged"]
    out = run_cli("repair", "--index", str(root)).stdout
    assert "could not be recovered" in out and "add" in out
    moved = {p.name for p in (root / "quarantine").rglob("*") if p.is_file()}
    assert {f.name for f in data_files} | {"index.sqlite"} <= moved, "everything is kept in quarantine"


def test_random_bytes_in_the_database_are_named_and_repair_recovers_or_quarantines(tmp_path):
    root = tmp_path / "idx"
    build(root, batches=6, per_batch=40, vectors=False)
    db = root / "index.sqlite"
    size = db.stat().st_size
    with open(db, "r+b") as f:  # garble pages in the middle (not the header)
        f.seek(size // 2)
        f.write(np.random.default_rng(0).integers(0, 256, 8192, dtype=np.uint8).tobytes())
    report = checked(root)
    assert report["damaged"] and report["problems"][0]["file"] == "index.sqlite"
    for cmd in (["search", "--concept", "dog"], ["info"]):
        proc = run_cli(*cmd, "--index", str(root), check=False)
        assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr
        if proc.returncode:
            one_line_error(proc)
    run_cli("repair", "--index", str(root))
    if (root / "index.sqlite").exists():  # recovered: whatever SQLite could read is consistent again
        assert not checked(root)["damaged"]
        paths = media_paths(root)
        assert len(paths) == len(set(paths))
    else:
        assert list((root / "quarantine").rglob("index.sqlite"))


def test_health_answers_503_damaged_not_500(tmp_path):
    from fastapi.testclient import TestClient

    from mmindex import Engine
    from mmindex.service import create_app

    root = tmp_path / "idx"
    layout = build(root, vectors=False)
    with Store.open(root) as store:
        file = store.db.execute("SELECT file FROM batches WHERE id = ?", (list(layout)[0],)).fetchone()[0]
    client = TestClient(create_app(Engine(root)))
    assert client.get("/api/health").json()["status"] == "ok"
    (root / "batches" / file).write_bytes(b"garbage")
    with Store.open(root, write=True) as store:  # a commit, so that the server reads the files again
        store.write_batch([], [("/photos/other.jpg", "unreadable")])
    r = client.get("/api/health")
    assert r.status_code == 503 and r.json()["status"] == "damaged" and file in r.json()["detail"]


# ---- creation, migration, read-only, full disk -------------------------------------------------------------
_CREATE = """
import sys
from mmindex.concepts import Vocabulary
from mmindex.index.store import Store
concepts = [(c.id, c.name, c.source) for c in Vocabulary.imagenet().classes] * 30
print("ready", flush=True)
Store.create(sys.argv[1], "efficientnet_lite0", 8, concepts).close()
"""


def test_kill_9_during_creation_leaves_no_index_or_a_whole_one(tmp_path):
    """Creation is atomic: killed at any moment, the folder holds no index or a complete one, and the next
    creation succeeds (it was unusable 11 times in 11 before)."""
    outcomes = []
    for i, delay in enumerate(np.linspace(0.0, 0.6, 8)):
        root = tmp_path / f"idx{i}"
        proc = subprocess.Popen([sys.executable, "-c", _CREATE, str(root)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(delay))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if Store.exists(root):
            with Store.open(root) as store:
                assert store.meta("model") == "efficientnet_lite0"
                assert store.counts()["concepts"] == 30_000
            outcomes.append("whole")
        else:
            outcomes.append("none")
        with Store.create(root, "efficientnet_lite0", DIM, CONCEPTS) as store:  # and it can be made again
            store.write_batch(records(["/a.jpg"], 0))
        with Store.open(root) as store:
            assert store.counts()["media"] == 1
    assert "none" in outcomes, outcomes  # the kill did land during creation


def test_an_unfinished_database_from_an_older_creation_is_built_again(tmp_path):
    for leftover in ("empty", "schema-only"):
        root = tmp_path / leftover
        (root / "batches").mkdir(parents=True)
        if leftover == "empty":
            (root / "index.sqlite").write_bytes(b"")
        else:
            with sqlite3.connect(root / "index.sqlite") as db:
                db.executescript(MIGRATIONS[1] + "; PRAGMA user_version = 1;")
        assert Store.unfinished(root)
        with pytest.raises(IndexDamaged):
            Store.open(root)
        Store.create(root, "efficientnet_lite0", DIM, CONCEPTS).close()
        with Store.open(root) as store:
            assert store.meta("model") == "efficientnet_lite0"


_OPEN = """
import sys, time
from mmindex.index.store import Store
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
Store.open(sys.argv[1]).close()
"""


def test_processes_opening_an_old_index_at_once_migrate_it_once(tmp_path):
    for round_ in range(3):
        root = tmp_path / f"old{round_}"
        (root / "batches").mkdir(parents=True)
        with sqlite3.connect(root / "index.sqlite") as db:  # a schema v1 index, as version 1 wrote it
            db.executescript(MIGRATIONS[1])
            db.execute("INSERT INTO meta VALUES ('model', 'efficientnet_lite0'), ('embed_dim', '8')")
            db.execute("PRAGMA user_version = 1")
            db.execute("PRAGMA journal_mode = WAL")
        start = time.time() + 3.0
        procs = [subprocess.Popen([sys.executable, "-c", _OPEN, str(root), str(start)], stderr=subprocess.PIPE,
                                  text=True) for _ in range(4)]
        errors = [p.communicate()[1] for p in procs]
        assert all(p.returncode == 0 for p in procs), errors
        with Store.open(root) as store:
            assert store.db.execute("PRAGMA user_version").fetchone()[0] == max(MIGRATIONS)


def test_a_read_only_index_can_be_searched(shared_tmp):
    """An index the user cannot write (another user's, read-only media): searches work, nothing is written."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root to run the search as another user (nobody)")
    root = shared_tmp / "read-only-index"
    layout = build(root)
    for p in [root, *root.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    out = run_cli("search", "--index", str(root), "--concept", "dog", "-k", "100", "--json", user="65534").stdout
    assert len(json.loads(out)["hits"]) == sum(map(len, layout.values()))
    hit = json.loads(out)["hits"][0]["segment_id"]
    run_cli("search", "--index", str(root), "--like", str(hit), "--json", user="65534")
    run_cli("info", "--index", str(root), "--json", user="65534")
    one_line_error(run_cli("add", "/nonexistent", "--index", str(root), check=False, user="65534"))
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_keeps_every_committed_batch_and_says_so(small_disk):
    root = small_disk / "idx"
    committed: list[str] = []
    with Store.create(root, "efficientnet_lite0", DIM, CONCEPTS) as store:
        with pytest.raises(StoreError, match="disk full") as err:
            for b in range(1000):
                names = [f"/p/{b}/{i}.jpg" for i in range(8)]
                store.write_batch(records(names, b))
                committed += names
        assert "\n" not in str(err.value)
    assert committed, "the disk filled before the first batch"
    with Store.open(root) as store:  # every committed batch is whole and readable
        assert sorted(r[0] for r in store.db.execute("SELECT path FROM media")) == sorted(committed)
        assert len(store.snapshot().ids) == len(committed)
    proc = run_cli("check", "--index", str(root), "--json", check=False)
    assert not json.loads(proc.stdout)["damaged"], proc.stdout


# ---- kill -9 at each commit point ------------------------------------------------------------------------
# The operation runs in a child that kills itself (SIGKILL: no clean-up, as a power cut would) at the N-th
# commit point it reaches: just before or just after an SQLite COMMIT, or a file rename. N runs 1, 2, ...
# until the operation finishes; after every kill the index must be whole, and running it again must finish it.
#: The start of a child script that kills itself at its `int(sys.argv[1])`-th commit point (0: never); the
#: test modules that kill an operation mid-way (apply, teach) start their scripts with it too.
KILL_POINTS = """
import os, signal, sys
from pathlib import Path
import mmindex.index.store as store_mod
from mmindex import Engine

kill_at = int(sys.argv[1])
seen = 0
def point():
    global seen
    seen += 1
    if seen == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
real_exit, real_replace = store_mod._Transaction.__exit__, os.replace
def exit_(self, *exc):
    point(); out = real_exit(self, *exc); point(); return out
def replace(*a, **k):
    point(); out = real_replace(*a, **k); point(); return out
store_mod._Transaction.__exit__, os.replace = exit_, replace
"""

_KILL_AT = KILL_POINTS + """
from tests.index.test_faults import records, DIM

op, root = sys.argv[2], Path(sys.argv[3])
if op == "write":
    with store_mod.Store.open(root, write=True) as s:
        s.write_batch(records([f"/photos/new/{i}.jpg" for i in range(4)] + ["/photos/b0/0.jpg"], 9))
elif op == "remove":
    Engine(root).remove(["/photos/b1"])
elif op == "compact":
    Engine(root).compact(target_rows=8)
elif op == "rebuild":
    Engine(root).rebuild("hnsw")
elif op == "create":
    from tests.index.test_faults import CONCEPTS
    store_mod.Store.create(root, "efficientnet_lite0", DIM, CONCEPTS).close()
print("finished")
"""

_EXPECTED = {  # the media after the operation finished (b{n}/{i} from `build`: 3 batches of 4)
    "write": {f"/photos/b{b}/{i}.jpg" for b in range(3) for i in range(4)} | {f"/photos/new/{i}.jpg" for i in range(4)},
    "remove": {f"/photos/b{b}/{i}.jpg" for b in (0, 2) for i in range(4)},
    "compact": {f"/photos/b{b}/{i}.jpg" for b in range(3) for i in range(4)},
    "rebuild": {f"/photos/b{b}/{i}.jpg" for b in range(3) for i in range(4)},
}


@pytest.mark.parametrize("op", sorted(_EXPECTED))
def test_kill_9_at_each_commit_point_loses_and_duplicates_nothing(tmp_path, op):
    pristine = tmp_path / "pristine"
    build(pristine)
    if op == "compact":  # dead rows to drop, so that compaction has files to merge
        with Store.open(pristine, write=True) as store:
            store.write_batch(records(["/photos/b0/0.jpg"], 7))
    before = set(media_paths(pristine))
    kills = 0
    for kill_at in range(1, 60):
        root = tmp_path / f"{op}-{kill_at}"
        shutil.copytree(pristine, root)
        proc = subprocess.run([sys.executable, "-c", _KILL_AT, str(kill_at), op, str(root)], capture_output=True,
                              text=True, cwd=Path(__file__).parents[2], timeout=300)
        if proc.returncode == 0:
            assert "finished" in proc.stdout
            assert set(media_paths(root)) == _EXPECTED[op]
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        kills += 1
        paths = media_paths(root)
        assert len(paths) == len(set(paths)), "a media is there twice"
        assert set(paths) in (before, _EXPECTED[op]) or op == "write" and set(paths) == before, \
            f"killed at point {kill_at}: a half-done state"
        assert not checked(root)["damaged"], f"killed at point {kill_at}: damaged"
        # running it again (no kill) finishes the job
        subprocess.run([sys.executable, "-c", _KILL_AT, "0", op, str(root)], check=True, capture_output=True,
                       cwd=Path(__file__).parents[2], timeout=300)
        assert_whole(root, sorted(_EXPECTED[op]))
    else:
        pytest.fail("the operation never finished")
    assert kills >= 2, f"only {kills} commit points were tried"
    print(f"{op}: killed at {kills} commit points, each survived")  # docs/reliability.md (pytest -s)


# ---- readers while writers work ---------------------------------------------------------------------------
_WRITER = """
import sys, time
from pathlib import Path
from mmindex import Engine
from mmindex.index.store import Store
from tests.index.test_faults import records
root, rounds = Path(sys.argv[1]), int(sys.argv[2])
for r in range(rounds):
    with Store.open(root, write=True) as s:
        for b in range(3):
            s.write_batch(records([f"/stress/{r}/{b}/{i}.jpg" for i in range(4)], r * 10 + b))
    Engine(root).compact(target_rows=16)
    Engine(root).remove([f"/stress/{r}/0"])
print("done", flush=True)
"""

_READER = """
import sys, time
from pathlib import Path
from mmindex import Engine
from mmindex.index.store import Store
root, stop = Path(sys.argv[1]), Path(sys.argv[2])
engine, reads = Engine(root), 0
while not stop.exists():
    with Store.open(root) as s:  # a fresh connection each time, as a new CLI call makes
        s.counts(); s.snapshot()
    hits = engine.search(concepts=["dog"], k=5, remember=False)
    assert 0 < len(hits) <= 5 and len({h.path for h in hits}) == len(hits)  # a hit removed meanwhile is left out
    reads += 1
print(reads, flush=True)
"""


def test_readers_never_see_database_is_locked_while_writers_add_compact_and_remove(tmp_path):
    root = tmp_path / "idx"
    build(root, vectors=False)
    stop = tmp_path / "stop"
    cwd = Path(__file__).parents[2]
    readers = [subprocess.Popen([sys.executable, "-c", _READER, str(root), str(stop)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=cwd) for _ in range(3)]
    try:
        writer = subprocess.run([sys.executable, "-c", _WRITER, str(root), "40"], capture_output=True, text=True,
                                cwd=cwd, timeout=600)
    finally:
        stop.touch()
        outs = [r.communicate(timeout=120) for r in readers]
    assert writer.returncode == 0 and "done" in writer.stdout, writer.stderr
    for r, (out, err) in zip(readers, outs, strict=True):
        assert r.returncode == 0 and "locked" not in err, err
        assert int(out) > 0
    assert not checked(root)["damaged"]


def test_kill_9_at_each_commit_point_of_creation_leaves_no_index_or_a_whole_one(tmp_path):
    """Deterministic, beside the timed kills above: just before the database's rename there is no index,
    just after it a whole one; either way the next creation works."""
    cwd = Path(__file__).parents[2]
    for kill_at, expected in ((1, "none"), (2, "whole"), (3, "finished")):
        root = tmp_path / f"idx{kill_at}"
        proc = subprocess.run([sys.executable, "-c", _KILL_AT, str(kill_at), "create", str(root)],
                              capture_output=True, text=True, cwd=cwd, timeout=300)
        if expected == "finished":
            assert proc.returncode == 0 and "finished" in proc.stdout, proc.stderr
        else:
            assert proc.returncode == -signal.SIGKILL, proc.stderr
        assert Store.exists(root) == (expected != "none")
        if expected == "none":
            assert root.is_dir() and any(p.name.startswith(".index.sqlite.") for p in root.iterdir()), \
                "the kill landed during creation, with the database written under its temporary name"
        with Store.create(root, "efficientnet_lite0", DIM, CONCEPTS) as store:
            assert store.meta("model") == "efficientnet_lite0" and store.counts()["concepts"] == len(CONCEPTS)
        assert not [p for p in root.iterdir() if p.name.startswith(".index.sqlite.")], "leftovers swept"

