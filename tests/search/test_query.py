import numpy as np
import pytest

from mmindex.errors import QueryError
from mmindex.index.snapshot import concept_column
from mmindex.search import fusion, rank
from mmindex.search.query import And, Not, Or, Query, Term, parse_concepts


def test_grammar_precedence_and_multiword_names():
    assert parse_concepts("cat AND NOT dog") == And((Term("cat"), Not(Term("dog"))))
    assert parse_concepts("tabby cat OR Egyptian cat AND dog") == Or(
        (Term("tabby cat"), And((Term("Egyptian cat"), Term("dog"))))
    )
    # lower-case "and" is part of a name (ImageNet has "black and gold garden spider")
    assert parse_concepts("black and gold garden spider") == Term("black and gold garden spider")
    assert parse_concepts('"Egyptian cat"^2 AND (a OR b)^0.5') == And(
        (Term("Egyptian cat", 2.0), Or((Term("a"), Term("b")), 0.5))
    )


@pytest.mark.parametrize("bad", ["", "  ", "cat AND", "(cat", "cat)", "cat^", "cat^x", "cat^-1", "cat^0",
                                 "AND dog", "NOT", '"a" "b"', "cat^inf"])
def test_malformed_expressions_raise_query_error(bad):
    with pytest.raises(QueryError):
        parse_concepts(bad)


def test_top_level_weight_becomes_fusion_weight():
    q = Query.build(["espresso^2", "cat"], ["12", "/x/y.jpg^3"], k=5)
    assert [(t, w) for t, _, w in q.concepts] == [("espresso^2", 2.0), ("cat", 1.0)]
    assert q.concepts[0][1] == Term("espresso")
    assert q.like == [(12, 1.0), ("/x/y.jpg", 3.0)]
    with pytest.raises(QueryError):
        Query.build([], [])
    with pytest.raises(QueryError):
        Query.build(["cat"], k=0)


def test_fuzzy_logic_semantics():
    p = {"a": np.array([0.9, 0.5, 0.1]), "b": np.array([0.2, 0.5, 0.9])}
    leaf = p.__getitem__
    np.testing.assert_allclose(rank.expression_scores(parse_concepts("a AND b"), leaf), p["a"] * p["b"])
    np.testing.assert_allclose(rank.expression_scores(parse_concepts("a AND NOT b"), leaf), p["a"] * (1 - p["b"]))
    np.testing.assert_allclose(rank.expression_scores(parse_concepts("a OR b"), leaf),
                               1 - (1 - p["a"]) * (1 - p["b"]))
    # a weight counts a term as if written w times
    np.testing.assert_allclose(rank.expression_scores(parse_concepts("a^2 AND b"), leaf),
                               rank.expression_scores(parse_concepts("a AND a AND b"), leaf))


def test_hierarchy_column_sums_hyponym_probabilities():
    scores = np.array([[0.1, 0.7], [0.3, 0.2], [0.6, 0.1]], dtype=np.float16)  # (C=3, N=2)
    np.testing.assert_allclose(concept_column(scores, (0, 2)), [0.7, 0.8], atol=1e-3)
    np.testing.assert_allclose(concept_column(scores, (1,)), [0.3, 0.2], atol=1e-3)


def test_fusion_normalisers_and_top_k():
    x = np.array([3.0, 1.0, 2.0, 2.0])
    np.testing.assert_allclose(fusion.minmax(x), [1, 0, 0.5, 0.5])
    assert fusion.minmax(np.ones(3)).tolist() == [0, 0, 0]
    np.testing.assert_allclose(fusion.zscore(x).mean(), 0, atol=1e-12)
    assert fusion.rank(x)[0] == 1.0
    fused = fusion.combsum([np.array([0.9, 0.1, 0.5]), np.array([0.0, 1.0, 0.8])], [1.0, 2.0])
    np.testing.assert_allclose(fused, [1.0, 2.0, 0.5 + 2 * 0.8])
    assert fusion.top_k(fused, 2).tolist() == [2, 1]
    assert fusion.top_k(fused, 10).tolist() == [2, 1, 0]
    with pytest.raises(QueryError):
        fusion.combsum([x, x], [1, 1], "bogus")


@pytest.mark.parametrize("x, expected", [
    ([1.0, 1.0, 0.0], [1, 1, 1 / 3]),
    ([0.0, 2.0, 2.0, 1.0, 2.0], [1 / 5, 1, 1, 1 / 4, 1]),
    ([0.5, 0.5, 0.5], [1, 1, 1]),
    ([3.0, 1.0, 2.0], [1, 1 / 3, 1 / 2]),
])
def test_rank_normaliser_ties_share_the_best_rank(x, expected):
    np.testing.assert_allclose(fusion.rank(np.array(x)), expected)


def test_tied_segments_fuse_to_equal_scores_under_rank_normalisation():
    # float16 concept scores tie often; two tied segments must not be told apart by their row order
    concept = np.array([0.25, 0.25, 0.125], dtype=np.float16)
    example = np.array([0.5, 0.5, 0.9])
    fused, _ = fusion.fuse([concept, example], [1.0, 1.0], normalise="rank")
    assert fused[0] == fused[1]
    np.testing.assert_allclose(fused, [1 + 1 / 2, 1 + 1 / 2, 1 / 3 + 1])
