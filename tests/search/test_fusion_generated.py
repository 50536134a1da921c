"""Generated from the fusion registry: every method, with every normaliser, fuses score columns sensibly."""

from __future__ import annotations

import numpy as np
import pytest

from mmindex.errors import QueryError
from mmindex.search import fusion

METHODS = fusion.METHODS.names()
NORMALISERS = list(fusion.NORMALISERS)


def columns(n: int = 50, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(n), rng.uniform(0, 1, n)
    a[7], b[7] = 10.0, 2.0  # row 7 is the best of both criteria
    return [a, b]


@pytest.mark.parametrize("normalise", NORMALISERS)
@pytest.mark.parametrize("method", METHODS)
def test_every_method_fuses_two_columns_into_finite_scores(method, normalise):
    cols = columns()
    fused, parts = fusion.fuse(cols, [0.7, 0.3], method, normalise)
    assert fused.shape == (50,) and np.isfinite(fused).all()
    assert len(parts) == 2 and all(p.shape == (50,) for p in parts)
    np.testing.assert_allclose(np.sum(parts, axis=0), fused)  # the contributions add up to the score
    assert int(np.argmax(fused)) == 7  # a row best for every criterion is best fused


@pytest.mark.parametrize("method", METHODS)
def test_every_method_respects_depth_and_weights(method):
    cols = columns(seed=1)
    fused, parts = fusion.fuse(cols, [1.0, 0.0], method, "minmax", depth=10)
    assert np.isfinite(fused).all() and not parts[1].any()  # a zero weight contributes nothing
    assert np.count_nonzero(parts[0]) <= 10  # a criterion contributes only over its run
    single, _ = fusion.fuse(cols[:1], None, method)
    np.testing.assert_array_equal(single, cols[0])  # one criterion keeps its raw score


def test_registered_names_and_unknown_method():
    assert METHODS == ["combsum", "wsum", "combmnz", "rrf"] and list(fusion.FUSION_METHODS) == METHODS
    with pytest.raises(QueryError, match="unknown fusion method 'combmz'; did you mean: combmnz"):
        fusion.fuse(columns(), None, "combmz")
