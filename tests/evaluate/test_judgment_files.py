"""Judgments in plain files (evaluate/judgments.py): CSV and TRECVID-style qrels, written and read back."""

from __future__ import annotations

import pytest

from mmindex.errors import DataError
from mmindex.evaluate import judgments, trec

ROWS = [
    {"path": "/photos/my trip/beach 1.jpg", "start": None, "end": None, "concept": "red car", "label": 1},
    {"path": "/videos/clip,1.mp4", "start": 12.48, "end": 17.0, "concept": "red car", "label": 0},
    {"path": "/photos/a.png", "start": None, "end": None, "concept": "trouser", "label": 1},
]


def test_csv_round_trip_keeps_paths_with_commas_and_spaces_and_exact_times(tmp_path):
    path = tmp_path / "j.csv"
    path.write_text(judgments.write_text(ROWS, "csv"))
    assert path.read_text().splitlines()[0] == "segment_path,start,end,concept,label"
    lines, skipped = judgments.read(path, judgments.format_of(path))
    assert skipped == 0
    assert [(ln.path, ln.start, ln.end, ln.concept, ln.label) for ln in lines] == [
        (r["path"], r["start"], r["end"], r["concept"], r["label"]) for r in ROWS]


def test_qrels_are_trec_evals_format_with_the_evaluate_doc_ids(tmp_path):
    path = tmp_path / "j.qrels"
    path.write_text(judgments.write_text(ROWS, "qrels"))
    assert trec.read_qrels(path) == {  # trec.py reads it: one field per query and per document
        "red_car": {"/photos/my_trip/beach_1.jpg": 1, "/videos/clip,1.mp4#t=12.480,17.000": 0},
        "trouser": {"/photos/a.png": 1}}
    path.write_text(path.read_text() + "trouser 0 /photos/b.png -1\n")  # pooled but not judged: skipped
    lines, skipped = judgments.read(path, judgments.format_of(path))
    assert skipped == 1 and len(lines) == 3
    assert {(ln.concept, ln.doc, ln.label) for ln in lines} >= {("red_car", "/videos/clip,1.mp4#t=12.480,17.000", 0)}


def test_labels_plus_and_minus_one_are_read_and_a_bad_line_is_named(tmp_path):
    path = tmp_path / "j.csv"
    path.write_text("a.jpg,,,cat,+1\nb.jpg,,,cat,-1\n")  # no header line: fine too
    assert [ln.label for ln in judgments.read(path, "csv")[0]] == [1, 0]
    for bad, what in [("a.jpg,,,cat,yes\n", "label of 1 or 0"), ("a.jpg,x,,cat,1\n", "numbers of seconds"),
                      ("a.jpg,,,cat\n", "a line is"), ("a.jpg,,, ,1\n", "a line is")]:
        path.write_text("segment_path,start,end,concept,label\n" + bad)
        with pytest.raises(DataError, match=f"j.csv:2: .*{what}"):
            judgments.read(path, "csv")
    with pytest.raises(DataError, match="unknown judgments format"):
        judgments.format_of(path, "xml")
