"""Free-text search, the concept bank, relevance feedback and saved queries: real MiniLM, real index, real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmindex.errors import QueryError
from mmindex.text.bank import MAX_TEXT_CHARS, MappedConcept, TextMapping, check_text
from tests.conftest import run_cli


def test_text_scores_leave_out_only_negligible_concepts():
    rng = np.random.default_rng(0)
    scores = rng.dirichlet(np.full(6, 0.3), size=50).T  # (C, N) probabilities
    weights = [0.7, 0.2985, 0.001, 0.0004, 0.0001]  # the last two add up to 0.0005 <= 0.001: left out
    mapping = TextMapping("q", [MappedConcept(f"c{i}", f"c{i}", 0.5, w, (i,)) for i, w in enumerate(weights)])
    assert [c.id for c in mapping.significant()] == ["c0", "c1", "c2"]
    full = sum(w * scores[i] for i, w in enumerate(weights))
    got = mapping.scores(scores)
    np.testing.assert_allclose(got, sum(w * scores[i] for i, w in enumerate(weights[:3])))
    assert np.abs(got - full).max() <= 0.0005


def _search(index: Path, *args: str) -> dict:
    return json.loads(run_cli("search", "--index", str(index), "--json", *args).stdout)


def _names(doc: dict) -> list[str]:
    return [Path(h["path"]).name for h in doc["hits"]]


@pytest.fixture(scope="module")
def index_copy(photo_index, tmp_path_factory) -> Path:
    """A private copy: feedback writes the last query into the index folder."""
    dst = tmp_path_factory.mktemp("text") / "index"
    shutil.copytree(photo_index, dst)
    return dst


def test_natural_phrasings_rank_the_right_photo_first(index_copy):
    for text, photo in [("a cup of coffee", "coffee.jpg"), ("a cat", "chelsea.jpg"),
                        ("a chinese temple", "china.jpg"), ("hot drink", "coffee.jpg")]:
        doc = _search(index_copy, "--text", text)
        assert list(doc) == ["hits"] and _names(doc)[0] == photo, (text, _names(doc))


def test_explain_shows_concepts_weights_and_parts(index_copy):
    doc = _search(index_copy, "--text", "a cup of coffee", "--concept", "espresso", "--explain", "-k", "3")
    assert list(doc)[:2] == ["hits", "explain"]
    text = next(c for c in doc["explain"]["criteria"] if c["kind"] == "text")
    assert text["encoder"] == "minilm" and 1 <= len(text["concepts"]) <= 10
    assert sum(c["weight"] for c in text["concepts"]) == pytest.approx(1.0, abs=1e-3)
    top = doc["hits"][0]
    assert Path(top["path"]).name == "coffee.jpg"
    assert {"espresso", "text:a cup of coffee"} <= set(top["why"])
    assert any(k.startswith("text:a cup of coffee > ") for k in top["why"])
    assert sum(top["parts"].values()) == pytest.approx(top["score"])


@pytest.mark.parametrize("fusion", ["combsum", "combmnz", "rrf", "wsum"])
def test_fusion_methods_by_name(index_copy, fusion):
    doc = _search(index_copy, "--text", "a cat", "--concept", "tabby", "--fusion", fusion)
    assert _names(doc)[0] == "chelsea.jpg"


def test_bad_text_queries_say_why(index_copy):
    for text, message in [("", "empty text query"), ("   ", "empty text query"), ("the of a", "only stop words"),
                          ("x" * (MAX_TEXT_CHARS + 1), "too long"), ("!!!", "no words")]:
        proc = run_cli("search", "--index", str(index_copy), "--text", text, check=False)
        assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr, text
    # nothing similar enough: an empty result and the reason, never random hits
    proc = run_cli("search", "--index", str(index_copy), "--json", "--text", "tax return deadline")
    doc = json.loads(proc.stdout)
    assert doc["hits"] == [] and "threshold" in doc["message"] and "threshold" in proc.stderr


def test_check_text():
    assert check_text("  a cat ") == "a cat"
    with pytest.raises(QueryError):
        check_text("and the")


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
