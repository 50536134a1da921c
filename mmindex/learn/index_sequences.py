"""Training sequences exported from an index (issue 18): `mmindex train-sequence --index DIR [--labels FILE]` trains a
temporal model on the keyframe embeddings of judged shots, without an .npz.

Each judged segment becomes one sequence: its keyframes' embeddings in time order, as `add --keyframe-embeddings`
stored them (at most 64 a shot, `--keyframe-rate` a second), the sequence an applied temporal model reads too
(`extract.inputs.sample_sequence` at the index's keyframe rate). Its labels are its judgments: the concepts judged
positive for it. When every segment has exactly one positive concept the labels are classes (softmax), else label
sets (sigmoid; a concept judged negative, or not judged, is 0). The data record the index's backbone, weights and
keyframe rate, so that the model trained on them fits the index when applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from mmindex.errors import DataError
from mmindex.learn.sequence import SequenceData, make_sequences

__all__ = ["sequences_from_index"]


def sequences_from_index(store, judged: Mapping[int, Mapping[str, int]], weights_id: str
                         ) -> tuple[SequenceData, int]:
    """The training sequences of the judged segments of the index `store` (a `Store`), and how many judged segments
    were left out for want of keyframe embeddings; `judged` is {segment id: {concept: 0 or 1}}. Raises `DataError`
    when the index keeps no keyframe embeddings or no judged segment has any."""
    stored, rate = store.keyframe_settings()
    if not stored:
        raise DataError("the index stores no keyframe embeddings: index with `mmindex add --keyframe-embeddings` "
                        "(and `--keyframe-rate` for more keyframes a shot)")
    keyframes = store.segment_keyframes(sorted(judged))
    seqs, kept = [], []
    for segment_id in sorted(judged):
        frames = [e for _, e in keyframes.get(segment_id, [])]
        if frames and all(e is not None for e in frames):
            seqs.append(np.stack([np.frombuffer(e, np.float16) for e in frames]).astype(np.float32))
            kept.append(segment_id)
    if not kept:
        raise DataError(f"none of the {len(judged)} judged segments has keyframe embeddings (they were indexed "
                        "before `--keyframe-embeddings`: remove and add them again)")
    concepts = sorted({c for segment_id in kept for c in judged[segment_id]})
    targets = np.array([[judged[s].get(c, 0) for c in concepts] for s in kept], np.int64)
    exclusive = (targets.sum(1) == 1).all()
    lengths = np.array([len(s) for s in seqs], np.int64)
    x = np.zeros((len(seqs), int(lengths.max()), seqs[0].shape[1]), np.float32)
    for i, s in enumerate(seqs):
        x[i, :len(s)] = s
    data = make_sequences(x, targets.argmax(1) if exclusive else targets, lengths, concepts)
    return replace(data, rate=rate, backbone=store.meta("model"), weights_id=weights_id), len(judged) - len(kept)
