"""The mapper stage (`mmindex.extract.mapper.infer`): keyframes through a model in batches, pooled into each segment's
scores (max or mean) and one L2-normalised embedding, every record keeping its media's metadata.

The model is a parameter of `infer` (ONNX Runtime or PyTorch in `add`); here it is a small deterministic function of
each frame's pixels, so that every expected number can be computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from mmindex.extract.mapper import infer
from mmindex.records import Decoded, DecodedSegment, Media, SegmentRecord

C, D, S = 4, 3, 8  # concepts, embedding size, frame side


class LinearModel:
    """A frame (3, S, S) filled with the value v gives scores softmax(v · a) and the embedding v · b + c."""

    a = np.array([1.0, -1.0, 0.5, 2.0])
    b = np.array([1.0, 2.0, -1.0])
    c = np.array([0.5, 0.0, 0.25])

    def __init__(self):
        self.batches: list[int] = []

    def outputs(self, v: float) -> tuple[np.ndarray, np.ndarray]:
        z = np.exp(v * self.a)
        return (z / z.sum()).astype(np.float32), (v * self.b + self.c).astype(np.float32)

    def run(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert frames.shape[1:] == (3, S, S) and frames.dtype == np.float32
        self.batches.append(len(frames))
        pairs = [self.outputs(float(f.mean())) for f in frames]
        return np.stack([p for p, _ in pairs]), np.stack([e for _, e in pairs])


def frame(v: float) -> np.ndarray:
    return np.full((3, S, S), v, np.float32)


def media(path: str, segments: list[list[float]], kind: str = "video") -> Decoded:
    segs = [DecodedSegment(frames=[frame(v) for v in values],
                           keyframes=[(float(j), 10 * j) for j in range(len(values))],
                           start=float(i), end=float(i + 1)) for i, values in enumerate(segments)]
    return Decoded(path, kind, f"sha-{path}", 1000, 42, segs, width=64, height=48, duration=float(len(segments)))


def expected(model: LinearModel, values: list[float], pool: str) -> tuple[np.ndarray, np.ndarray]:
    probs = np.stack([model.outputs(v)[0] for v in values])
    emb = np.mean([model.outputs(v)[1] for v in values], axis=0)
    return (probs.max(axis=0) if pool == "max" else probs.mean(axis=0)), emb / np.linalg.norm(emb)


@pytest.mark.parametrize("pool", ["max", "mean"])
@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_keyframes_are_pooled_per_segment_whatever_the_batches(pool, batch_size):
    decoded = [media("/v1.mp4", [[0.1, 0.9], [-0.5, 0.2, 0.3, 1.5]]),
               media("/p.jpg", [[0.7]], kind="image"),
               media("/v2.mp4", [[2.0, -1.0, 0.0], [0.4]])]
    model = LinearModel()
    records = infer(decoded, model, batch_size, pool)
    assert sum(model.batches) == 11 and max(model.batches) <= batch_size  # every keyframe once, in batches
    assert len(model.batches) == -(-11 // batch_size)  # batches span media and segments: no partial ones between
    assert [r.path for r in records] == ["/v1.mp4", "/p.jpg", "/v2.mp4"]
    for d, r in zip(decoded, records, strict=True):
        assert isinstance(r, Media) and all(isinstance(s, SegmentRecord) for s in r.segments)
        assert (r.kind, r.sha256, r.size, r.mtime_ns, r.width, r.height, r.duration) == (
            d.kind, d.sha256, d.size, d.mtime_ns, d.width, d.height, d.duration)
        assert len(r.segments) == len(d.segments)
        for ds, rs in zip(d.segments, r.segments, strict=True):
            assert (rs.start, rs.end, list(rs.keyframes)) == (ds.start, ds.end, ds.keyframes)
            scores, emb = expected(model, [float(f.mean()) for f in ds.frames], pool)
            np.testing.assert_allclose(rs.scores, scores, rtol=1e-6)
            np.testing.assert_allclose(rs.embedding, emb, rtol=1e-5, atol=1e-7)
            assert np.linalg.norm(rs.embedding) == pytest.approx(1.0, abs=1e-6)


def test_max_and_mean_pooling_differ_where_they_should():
    decoded = [media("/v.mp4", [[-2.0, 2.0]])]
    top = infer(decoded, LinearModel(), 8, "max")[0].segments[0]
    mean = infer(decoded, LinearModel(), 8, "mean")[0].segments[0]
    assert np.all(top.scores >= mean.scores) and not np.allclose(top.scores, mean.scores)
    assert mean.scores.sum() == pytest.approx(1.0, abs=1e-6)  # a mean of distributions is one
    assert top.scores.sum() > 1.0  # a max of them is not
    np.testing.assert_array_equal(top.embedding, mean.embedding)  # the embedding is always the mean


def test_an_embedding_of_zeros_stays_zeros_not_nan():
    class Zeros(LinearModel):
        b = np.zeros(D)
        c = np.zeros(D)

    [record] = infer([media("/z.jpg", [[0.3]], kind="image")], Zeros(), 4)
    assert np.all(record.segments[0].embedding == 0)


def test_nothing_to_infer_runs_nothing():
    model = LinearModel()
    assert infer([], model, 4) == []
    [record] = infer([media("/empty.mp4", [])], model, 4)  # a video without any segment
    assert record.segments == [] and model.batches == []
