"""`add` runs after another: it finishes a compaction an earlier run left, and a locked index says so at once."""

from __future__ import annotations

from mmindex import Engine
from mmindex.concepts import Vocabulary
from mmindex.config import DEFAULT_MODEL, IngestConfig
from mmindex.index.store import Store
from tests.conftest import run_cli


def test_add_finishes_the_compaction_an_interrupted_add_left(tmp_path, sample_photos):
    index = tmp_path / "idx"
    # A run that committed its batches and was killed before compacting leaves this: one file per batch.
    first = Engine(index, IngestConfig(batch_size=1, auto_compact=0))
    assert first.add([sample_photos]).added == 7
    before = {h.segment_id: h.path for h in first.search(["entity"], k=100)}
    first.close()
    with Store.open(index) as store:
        assert store.batch_files()["files"] == 7
    engine = Engine(index, IngestConfig(auto_compact=4))
    report = engine.add([sample_photos])  # nothing new, but worth compacting
    assert (report.added, report.updated, report.unchanged, report.compacted) == (0, 0, 7, 6)
    with Store.open(index) as store:
        assert store.batch_files() == {"files": 1, "legacy_files": 0, "rows": 7, "dead_rows": 0}
    assert {h.segment_id: h.path for h in engine.search(["entity"], k=100)} == before
    assert engine.add([sample_photos]).compacted == 0  # and once done, there is nothing more to do
    engine.close()


def test_a_locked_add_says_so_in_one_line_without_a_progress_bar(tmp_path, sample_photos):
    index = tmp_path / "idx"
    concepts = [(c.id, c.name, c.source) for c in Vocabulary.imagenet().classes]
    with Store.create(index, DEFAULT_MODEL, 8, concepts):  # holds the writer lock, as a running `add` does
        proc = run_cli("add", str(sample_photos), "--index", str(index), check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: index is locked: another process") and proc.stderr.count("\n") == 1
    assert proc.stdout == ""  # no progress bar was drawn
