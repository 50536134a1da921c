"""The shot detector's adaptive threshold (scipy rank filters) against the per-sample np.quantile loop it
replaced (issue 23): the same values everywhere, the shrinking windows at both ends included."""

from __future__ import annotations

import numpy as np
import pytest

from mmindex.media import shots


def reference(x: np.ndarray, window: int, k: float, floor: float, q: float = 0.5) -> np.ndarray:
    """The former implementation: one np.quantile per sample over its ±window neighbours, clipped at the ends."""
    out = np.empty_like(x)
    for i in range(len(x)):
        out[i] = max(floor, k * float(np.quantile(x[max(0, i - window): i + window + 1], q)))
    return out


@pytest.mark.parametrize("q", [shots.GRAD_Q, 0.5, 0.1, 0.9, 0.0, 1.0])
@pytest.mark.parametrize("window", [8, 9, 25, 100, 101])  # odd and even: np.quantile interpolates or not
@pytest.mark.parametrize("n", [0, 1, 7, 16, 17, 18, 19, 250, 1200])
def test_adaptive_threshold_equals_the_quantile_loop(n, window, q):
    rng = np.random.default_rng(n * 1000 + window)
    x = (rng.random(n) ** 3).astype(np.float32)  # skewed, like histogram distances
    x[rng.random(n) < 0.01] = 0.9  # a few cuts
    got = shots._adaptive(x, window, shots.CUT_K, 0.05, q)
    want = reference(x, window, shots.CUT_K, 0.05, q)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)  # bit-identical with numpy 2


def test_adaptive_threshold_floor_and_float64_input():
    x = np.random.default_rng(1).random(500)
    np.testing.assert_allclose(shots._adaptive(x, 30, 2.0, 1.5, 0.25), reference(x, 30, 2.0, 1.5, 0.25), rtol=1e-12)
    assert shots._adaptive(np.zeros(100, np.float32), 10, 5.0, 0.2).tolist() == [pytest.approx(0.2)] * 100


def test_edges_use_the_shrinking_window():
    # a burst of activity in the first samples: a constant-size window padded at the edge would differ
    x = np.zeros(400, np.float32)
    x[:12] = 1.0
    got = shots._adaptive(x, 10, 1.0, 0.0)
    assert got[0] == 1.0 and got[5] == 1.0  # [0, 10] and [0, 15] are mostly the burst
    assert got[15] == 0.0  # [5, 25]: 7 of 21
    np.testing.assert_array_equal(got, reference(x, 10, 1.0, 0.0))
