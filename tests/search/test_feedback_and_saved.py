"""Searching through the engine: fusion methods by name, relevance feedback and saved queries, by the CLI and
the Python API, on a real index with real MiniLM text queries. (The concept bank itself: tests/text/.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import names as _names
from tests.conftest import run_cli
from tests.conftest import search_json as _search


@pytest.mark.parametrize("fusion", ["combsum", "combmnz", "rrf", "wsum"])
def test_fusion_methods_by_name(index_copy, fusion):
    doc = _search(index_copy, "--text", "a cat", "--concept", "tabby", "--fusion", fusion)
    assert _names(doc)[0] == "chelsea.jpg"


def test_feedback_loop_and_saved_queries(index_copy):
    first = _search(index_copy, "--text", "a cat", "-k", "7")
    cat, others = first["hits"][0]["segment_id"], [h["segment_id"] for h in first["hits"][1:]]
    out = run_cli("feedback", "--index", str(index_copy), "--json", "--explain",
                  "-p", str(cat), "-n", str(others[0]), "-n", str(others[1]), "--save", "cats").stdout
    doc = json.loads(out)
    shown = [h["segment_id"] for h in doc["hits"]]
    assert cat not in shown and others[0] not in shown and len(shown) == 4  # judged segments are not shown again
    assert doc["explain"]["feedback"] == {"positive": [cat], "negative": others[:2],
                                          "params": doc["explain"]["feedback"]["params"]}
    assert set(doc["hits"][0]["parts"]) == {"query", "rocchio"}  # one positive: no classifier yet
    again = json.loads(run_cli("saved", "run", "cats", "--index", str(index_copy), "--json").stdout)
    assert [h["segment_id"] for h in again["hits"]] == shown
    listed = json.loads(run_cli("saved", "list", "--index", str(index_copy), "--json").stdout)["queries"]
    assert listed["cats"]["text"] == ["a cat"] and listed["cats"]["positive"] == [cat]
    # a second round with enough judgments trains the classifier
    doc = json.loads(run_cli("feedback", "--index", str(index_copy), "--json", "--explain",
                             "-p", str(shown[0]), "-n", str(shown[1])).stdout)
    assert set(doc["hits"][0]["parts"]) == {"query", "rocchio", "classifier"}
    bad = run_cli("feedback", "--index", str(index_copy), "-p", "999999", check=False)
    assert bad.returncode == 1 and "not in the index: 999999" in bad.stderr
    none = run_cli("feedback", "--index", str(index_copy), check=False)
    assert none.returncode == 1 and "at least one" in none.stderr


def test_feedback_without_a_previous_query(photo_index, tmp_path):
    index = tmp_path / "fresh"
    shutil.copytree(photo_index, index)
    (index / "queries.json").unlink(missing_ok=True)
    proc = run_cli("feedback", "--index", str(index), "-p", "1", check=False)
    assert proc.returncode == 1 and "no previous query" in proc.stderr


def test_python_api_text_feedback_and_save(index_copy):
    from mmindex import Engine

    engine = Engine(index_copy)
    hits = engine.search(text="a chinese temple", k=3, explain=True)
    assert Path(hits[0].path).name == "china.jpg"
    assert hits.explanation["criteria"][0]["concepts"][0]["name"]
    refined = engine.feedback(positive=[hits[0].segment_id], negative=[hits[1].segment_id])
    assert hits[0].segment_id not in [h.segment_id for h in refined]
    engine.save_query("temples")
    assert [h.segment_id for h in engine.run_saved("temples")] == [h.segment_id for h in refined]
    empty = engine.search(text="tax return deadline")
    assert list(empty) == [] and empty.message
