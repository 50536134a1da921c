"""Free-text search through the concept bank: a phrase mapped to weighted concepts, explained, and refused with
a reason when it cannot be used. Real MiniLM, real index, real CLI. (Feedback and saved queries: tests/search/.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmindex.errors import QueryError
from mmindex.text.bank import MAX_TEXT_CHARS, MappedConcept, TextMapping, check_text
from tests.conftest import names as _names
from tests.conftest import run_cli
from tests.conftest import search_json as _search


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
