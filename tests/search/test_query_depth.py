"""Issue 23: a deeply nested concept expression is a clear QueryError (CLI: one line; API: 400), never a
RecursionError, in the parser and in the evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from mmindex.errors import QueryError
from mmindex.search import rank
from mmindex.search.query import MAX_NESTING, MAX_TREE_DEPTH, Not, Query, Term, parse_concepts, tree_depth
from tests.conftest import run_cli
from tests.service.conftest import make_store, write_jpeg

LEAF = {"cat": np.array([0.9, 0.2]), "a": np.array([0.5, 0.5]), "b": np.array([0.1, 0.7])}.__getitem__


def parens(depth: int, inner: str = "cat") -> str:
    return "(" * depth + inner + ")" * depth


def widest(depth: int) -> str:
    """The deepest tree `depth` parentheses allow: an Or and an And on every level."""
    expr = "cat"
    for _ in range(depth):
        expr = f"(a OR b AND {expr})"
    return "a OR b AND " + expr


TOO_DEEP = {
    "one past the cap": parens(MAX_NESTING + 1),
    "NOT one past the cap": "NOT " * (MAX_NESTING + 1) + "cat",
    "NOTs and parentheses": "NOT (" * (MAX_NESTING // 2) + "NOT cat" + ")" * (MAX_NESTING // 2),
    "246 deep, 495 characters (under the API's 500)": parens(246),
    "3000 deep (issue 15's RecursionError)": parens(3000),
    "3000 NOTs": "NOT " * 3000 + "cat",
}


@pytest.mark.parametrize("expr", [parens(MAX_NESTING), "NOT " * MAX_NESTING + "cat", widest(MAX_NESTING),
                                  "NOT (" * (MAX_NESTING // 2) + "cat" + ")" * (MAX_NESTING // 2)])
def test_nesting_at_the_cap_parses_and_evaluates(expr):
    node = parse_concepts(expr)
    assert tree_depth(node) <= MAX_TREE_DEPTH
    scores = rank.expression_scores(node, LEAF)
    assert scores.shape == (2,) and np.all(np.isfinite(scores))
    assert rank.term_names(node)[-1] == "cat"


def test_the_widest_tree_at_the_cap_is_max_tree_depth():
    assert tree_depth(parse_concepts(widest(MAX_NESTING))) == MAX_TREE_DEPTH


@pytest.mark.parametrize("expr", TOO_DEEP.values(), ids=TOO_DEEP.keys())
def test_nesting_past_the_cap_is_a_query_error(expr):
    with pytest.raises(QueryError, match=f"nested too deeply \\(more than {MAX_NESTING} levels"):
        parse_concepts(expr)
    with pytest.raises(QueryError, match="nested too deeply"):
        Query.build([expr])


def test_a_hand_built_deep_tree_is_a_query_error_in_the_evaluation():
    node = Term("cat")
    for _ in range(5000):
        node = Not(node)
    assert tree_depth(node) == 5001
    assert rank.term_names(node) == ["cat"]  # no recursion
    with pytest.raises(QueryError, match="nested too deeply"):
        rank.expression_scores(node, LEAF)
    at_cap = Term("cat")
    for _ in range(MAX_TREE_DEPTH - 1):
        at_cap = Not(at_cap)
    np.testing.assert_allclose(rank.expression_scores(at_cap, LEAF), LEAF("cat") if MAX_TREE_DEPTH % 2
                               else 1 - LEAF("cat"))


@pytest.fixture(scope="module")
def small_index(tmp_path_factory):
    root = tmp_path_factory.mktemp("depth")
    files = [write_jpeg(root / "media" / f"{i}.jpg") for i in range(3)]
    return make_store(root / "index", files)


@pytest.mark.parametrize("depth", [MAX_NESTING, MAX_NESTING + 1, 246])
def test_cli_answers_one_line(small_index, depth):
    proc = run_cli("search", "--index", str(small_index), "--concept", parens(depth, "tabby"), "--json",
                   check=False)
    if depth <= MAX_NESTING:
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode != 0
        assert proc.stderr.startswith("error: concept expression nested too deeply")
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("depth", [MAX_NESTING, MAX_NESTING + 1, 246])
def test_api_answers_400(small_index, depth):
    from fastapi.testclient import TestClient

    from mmindex.service import create_app

    client = TestClient(create_app(small_index), raise_server_exceptions=False)
    r = client.get("/api/search", params={"concept": parens(depth, "tabby")})
    if depth <= MAX_NESTING:
        assert r.status_code == 200 and len(r.json()["hits"]) == 3
    else:
        assert len(parens(depth, "tabby")) <= 500  # under the API's length cap: only the depth is refused
        assert r.status_code == 400, r.text
        assert r.headers["content-type"] == "application/json"
        assert "nested too deeply" in r.json()["error"]
