"""Issue 22 (export): the index as a lazy table of segments (`Engine.segments`) and as parquet and npz files
(`mmindex export`), read back with pyarrow and NumPy and compared with what the store holds: ids, paths, times,
embeddings, every concept's score, the top k, a taught detector's scores, and the metadata that says how they were
made. On the sample photos' index (a copy: teaching writes to it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from mmindex import Engine
from mmindex.errors import DataError
from mmindex.index.store import Store
from mmindex.index.tables import table_metadata
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def taught(index_copy):
    """The copy with a concept taught from two judged photos, so that it has a detector column."""
    engine = Engine(index_copy)
    cat = engine.search(concepts=["tabby"], k=1)[0].segment_id
    espresso = engine.search(concepts=["espresso"], k=1)[0].segment_id
    engine.teach("my cat", positive=[cat], negative=[espresso])
    return index_copy


@pytest.fixture(scope="module")
def stored(taught):
    """What the store holds, read through a snapshot: ids, details, embeddings, scores, detector column."""
    with Store.open(taught) as store:
        snap = store.snapshot()
        columns = store.concept_columns()
        builtin = [col for col, _id, _name, source in columns if source != "trained"]
        trained = {cid: col for col, cid, _name, source in columns if source == "trained"}
        n = len(snap.ids)
        return {"ids": snap.ids.copy(), "details": store.segments(snap.ids), "model": store.meta("model"),
                "embeddings": snap.embeddings[np.arange(n)], "concept_ids": [columns[c][1] for c in builtin],
                "scores": snap.scores.columns_at(np.arange(n))[builtin].T,
                "detectors": {cid: snap.scores.trained[col].astype(np.float32) for cid, col in trained.items()}}


def test_parquet_round_trip_matches_the_index(taught, stored, tmp_path):
    out = tmp_path / "segments.parquet"
    proc = run_cli("export", "--index", str(taught), "--format", "parquet", "--what",
                   "segments,embeddings,scores,detectors", "--out", str(out), "--json")
    assert json.loads(proc.stdout)["segments"] == len(stored["ids"]) == 7
    table = pq.read_table(out)
    np.testing.assert_array_equal(table["segment_id"].to_numpy(), stored["ids"])
    for i, sid in enumerate(stored["ids"]):
        d = stored["details"][int(sid)]
        row = {k: table[k][i].as_py() for k in ("path", "kind", "start", "end", "media_id")}
        assert row == {k: d[k] for k in row}
    np.testing.assert_array_equal(np.stack(table["embedding"].to_numpy(zero_copy_only=False)), stored["embeddings"])
    np.testing.assert_array_equal(np.stack(table["scores"].to_numpy(zero_copy_only=False)), stored["scores"])
    (cid, column), = stored["detectors"].items()
    np.testing.assert_array_equal(table[f"detector:{cid}"].to_numpy(), column)
    meta = table_metadata(table.schema)
    assert meta["model"] == stored["model"] == "efficientnet_lite0" and meta["embed_dim"] == 1280
    assert meta["concept_ids"] == stored["concept_ids"] and len(meta["concept_ids"]) == 1000
    assert meta["preprocessing"]["input_size"] == 224 and meta["preprocessing"]["interpolation"] == "bicubic"
    assert meta["detectors"] == [cid] and meta["precision"] == "fp32"


def test_npz_round_trip_with_the_top_k(taught, stored, tmp_path):
    out = tmp_path / "segments.npz"
    report = Engine(taught).export(out, "npz", "segments,embeddings,scores:5")
    assert report["segments"] == 7 and not list(tmp_path.glob(".*"))  # no temporary column file left behind
    with np.load(out) as z:  # no pickle needed
        np.testing.assert_array_equal(z["segment_id"], stored["ids"])
        assert [str(p) for p in z["path"]] == [stored["details"][int(i)]["path"] for i in stored["ids"]]
        assert np.isnan(z["start"]).all()  # photos: no time span
        np.testing.assert_array_equal(z["embedding"], stored["embeddings"])
        top = np.argsort(-stored["scores"], axis=1, kind="stable")[:, :5]
        np.testing.assert_array_equal(z["top_scores"], np.take_along_axis(stored["scores"], top, 1))
        column = {cid: i for i, cid in enumerate(stored["concept_ids"])}  # each named concept has its listed score
        named = [[stored["scores"][r, column[c]] for c in row] for r, row in enumerate(z["top_concepts"])]
        np.testing.assert_array_equal(np.array(named, np.float32), z["top_scores"])
        assert list(z["concept_ids"]) == stored["concept_ids"]
        meta = json.loads(str(z["metadata"]))
        assert meta["top_k"] == 5 and meta["model"] == "efficientnet_lite0" and meta["segments"] == 7


def test_the_lazy_table_reads_in_batches(taught, stored):
    table = Engine(taught).segments("segments,scores:3", batch_size=3)
    batches = list(table)
    assert len(table) == 7 and [b.num_rows for b in batches] == [3, 3, 1]  # never more than batch_size rows
    frame = table.to_pandas()
    assert list(frame["segment_id"]) == list(stored["ids"]) and list(frame.columns[:3]) == ["segment_id",
                                                                                            "media_id", "path"]
    assert table.to_reader().read_all().num_rows == 7
    best = {Path(stored["details"][int(r.segment_id)]["path"]).name: r.top_concepts[0] for r in frame.itertuples()}
    assert best["coffee.jpg"] == "n07920052"  # espresso


def test_bad_exports_say_what_is_wrong(taught, tmp_path):
    engine = Engine(taught)
    with pytest.raises(DataError, match="choose from segments, embeddings, scores, detectors"):
        engine.segments("segments,thumbnails")
    with pytest.raises(DataError, match="scores:K"):
        engine.segments("scores:0")
    with pytest.raises(DataError, match="does not exist"):
        engine.export(tmp_path / "nowhere" / "x.parquet")
    proc = run_cli("export", "--index", str(taught), "--format", "csv", "--out", str(tmp_path / "x"), check=False)
    assert proc.returncode == 2 and "csv" in proc.stderr


def test_video_shots_keep_their_times_in_tables_runs_and_the_grid(tmp_path):
    """bikes.mp4's shots: start and end in the exported parquet as the store has them, a trec run naming each
    shot by its time span, and a thumbnail of each shot's middle frame in the notebook grid."""
    from mmindex.samples import write_sample_videos

    bikes = next(p for p in write_sample_videos(tmp_path / "videos") if p.name == "bikes.mp4")
    for other in (tmp_path / "videos").iterdir():
        if other != bikes:
            other.unlink()
    index = tmp_path / "idx"
    engine = Engine(index)
    engine.add([bikes])
    out = tmp_path / "shots.parquet"
    engine.export(out, "parquet", "segments")
    table = pq.read_table(out)
    with Store.open(index) as store:
        details = store.segments(table["segment_id"].to_pylist())
    assert table.num_rows == len(details) >= 5 and set(table["kind"].to_pylist()) == {"video"}
    for sid, start, end in zip(*(table[c].to_pylist() for c in ("segment_id", "start", "end")), strict=True):
        assert (start, end) == (details[sid]["start"], details[sid]["end"]) and end > start
    lines = run_cli("search", "--index", str(index), "-c", "bicycle", "-k", "3", "--format", "trec",
                    "--topic", "bikes").stdout.splitlines()
    assert len(lines) == 3 and all(line.split()[2].startswith(f"{bikes}#t=") for line in lines)
    page = engine.search(concepts=["bicycle"], k=2, remember=False)._repr_html_()
    assert page.count("data:image/jpeg;base64,") == 2 and " s<br>" in page  # a frame and a time span each
