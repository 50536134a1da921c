"""The mapper stage: decoded keyframes through a model, pooled into each segment's scores and embedding."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mmindex.records import Decoded, MediaRecord, SegmentRecord


def infer(decoded: list[Decoded], runtime, batch_size: int, pool: str = "max") -> list[MediaRecord]:
    """Mapper: run the model over every keyframe, pool keyframes into segment scores and embeddings.

    Each record keeps its file's facts and each segment its place and its applied detectors' inputs; the keyframes
    become scores, an embedding, and each keyframe's own embedding (temporal models read those)."""
    frames = [f for d in decoded for s in d.segments for f in s.frames]
    probs, embs = [], []
    for i in range(0, len(frames), batch_size):
        p, e = runtime.run(np.stack(frames[i : i + batch_size]))
        probs.append(p)
        embs.append(e)
    probs_all = np.concatenate(probs) if probs else np.zeros((0, 0), np.float32)
    embs_all = np.concatenate(embs) if embs else np.zeros((0, 0), np.float32)
    records, i = [], 0
    for d in decoded:
        segments = []
        for s in d.segments:
            n = len(s.frames)
            p, e = probs_all[i : i + n], embs_all[i : i + n]
            i += n
            scores = p.max(axis=0) if pool == "max" else p.mean(axis=0)
            emb = e.mean(axis=0)
            emb /= max(float(np.linalg.norm(emb)), 1e-12)
            segments.append(SegmentRecord(scores=scores, embedding=emb, start=s.start, end=s.end,
                                          keyframes=s.keyframes, keyframe_embeddings=e, inputs=s.inputs))
        records.append(replace(d, segments=segments))
    return records
