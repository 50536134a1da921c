"""The active-learning strategies (search/active.py): which unjudged segments `mmindex label` proposes."""

from __future__ import annotations

import numpy as np
import pytest

from mmindex.errors import QueryError
from mmindex.search.active import BOUNDARY, STRATEGIES, select

SCORES = np.array([0.99, 0.51, 0.02, 0.47, 0.80, 0.50, 0.10, 0.95], dtype=np.float32)


def test_uncertain_takes_the_scores_nearest_the_boundary_first():
    rows = select("uncertain", SCORES, np.arange(len(SCORES)), 3)
    assert rows.tolist() == [5, 1, 3]  # 0.50, 0.51, 0.47
    assert np.all(np.diff(np.abs(SCORES[rows] - BOUNDARY)) >= 0)


def test_probable_takes_the_highest_scores_first_among_the_candidates_only():
    candidates = np.array([1, 2, 4, 6, 7])  # 0 (the best score) is judged already
    assert select("probable", SCORES, candidates, 2).tolist() == [7, 4]
    assert set(select("uncertain", SCORES, candidates, 10)) == set(candidates)  # n beyond the pool: all of it


def test_random_is_seeded_and_draws_only_candidates():
    candidates = np.arange(2, 1000)
    a, b = select("random", None, candidates, 20, seed=3), select("random", None, candidates, 20, seed=3)
    assert a.tolist() == b.tolist() and len(set(a)) == 20 and set(a) <= set(candidates)
    assert select("random", None, candidates, 20, seed=4).tolist() != a.tolist()


def test_ties_are_broken_by_row_so_the_choice_does_not_depend_on_the_sort():
    flat = np.full(6, 0.5, dtype=np.float32)
    assert select("uncertain", flat, np.array([5, 3, 1, 0]), 2).tolist() == [0, 1]


def test_a_strategy_needing_scores_and_an_unknown_one_are_errors():
    with pytest.raises(QueryError, match="needs a detector"):
        select("uncertain", None, np.arange(3), 2)
    with pytest.raises(QueryError, match="unknown labelling strategy"):
        select("confident", SCORES, np.arange(3), 2)
    assert STRATEGIES.names() == ["uncertain", "probable", "random"]
