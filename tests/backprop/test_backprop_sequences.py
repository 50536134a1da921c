"""Recurrent nets that learn through time, and word2vec (negative sampling against torch, training on a toy corpus)."""

from __future__ import annotations

import numpy as np
import torch

import mmindex.backprop as bp
from mmindex.backprop.word2vec import most_similar, train, training_pairs


def test_elman_learns_to_echo_the_previous_input():
    r = np.random.default_rng(0)
    x = r.integers(0, 2, (256, 8, 1)).astype(np.float64)
    y = np.concatenate([np.zeros((256, 1, 1)), x[:, :-1]], axis=1)  # y_t = x_{t−1}: needs the hidden state
    net = bp.Sequential(bp.Elman(1, 8, activation="tanh", rng=1), bp.Linear(8, 1, rng=2)).astype(np.float64)
    loss, opt = bp.SigmoidCrossEntropy(), bp.SGD(net, 0.5, momentum=0.9)
    for _ in range(150):
        opt.zero_grad()
        loss.forward(net.forward(x), y)
        net.backward(loss.backward())
        opt.step()
    assert loss.accuracy(net.forward(x), y) > 0.97


def test_jordan_is_trainable():
    r = np.random.default_rng(0)
    x = r.standard_normal((64, 5, 2))
    y = (np.cumsum(x[..., :1], axis=1) > 0).astype(float)
    net = bp.Jordan(2, 8, 1, rng=1).astype(np.float64)
    loss, opt = bp.MSE(), bp.SGD(net, 0.5, momentum=0.9)
    first = loss.forward(net.forward(x), y)
    for _ in range(100):
        opt.zero_grad()
        last = loss.forward(net.forward(x), y)
        net.backward(loss.backward())
        opt.step()
    assert last < 0.6 * first


def test_negative_sampling_gradients_match_torch():
    for cls, inputs in ((bp.SkipGram, np.array([1, 4, 4])), (bp.CBOW, np.array([[0, 2, -1], [5, 5, 1], [3, -1, -1]]))):
        m = cls(6, 3, rng=0).astype(np.float64)
        m.params["W_dec"][...] = np.random.default_rng(1).standard_normal((6, 3))
        targets, negatives = np.array([2, 0, 5]), np.array([[1, 3], [4, 4], [0, 2]])
        loss, grads = m.negative_sampling(inputs, targets, negatives)
        dense = {k: np.zeros_like(v) for k, v in m.params.items()}
        for k, (rows, g) in grads.items():
            np.add.at(dense[k], rows, g)

        P = {k: torch.tensor(v, requires_grad=True) for k, v in m.params.items()}
        x = torch.from_numpy(inputs)
        if cls is bp.SkipGram:
            h = P["W_enc"][x]
        else:
            mask = (x >= 0).double()
            h = (P["W_enc"][x.clamp(min=0)] * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        u = P["W_dec"][torch.from_numpy(np.concatenate([targets[:, None], negatives], 1))]
        s = torch.einsum("bd,bkd->bk", h, u)
        ref = -(torch.nn.functional.logsigmoid(s[:, 0]).sum() + torch.nn.functional.logsigmoid(-s[:, 1:]).sum())
        ref.backward()
        np.testing.assert_allclose(loss, ref.item(), rtol=1e-6)
        for k in P:
            np.testing.assert_allclose(dense[k], P[k].grad.numpy(), rtol=1e-6, atol=1e-10)


def test_training_pairs_stay_in_window_and_sentence():
    sentences = [np.arange(10), np.arange(100, 105)]
    counts = np.ones(200, dtype=np.int64)
    c, t = training_pairs(sentences, 2, np.random.default_rng(0), counts, sample=0)
    assert len(c) > 0 and np.all(np.abs(c - t) <= 2) and np.all(c != t)
    assert np.all((c < 100) == (t < 100))
    ctx, centre = training_pairs(sentences, 2, np.random.default_rng(0), counts, sample=0, cbow=True)
    assert ctx.shape[1] == 4 and len(centre) == 15


def _toy_corpus(r: np.random.Generator) -> tuple[bp.Vocab, list[np.ndarray]]:
    """Two topics that never share a sentence: animals and vehicles."""
    topics = [["cat", "dog", "horse", "cow", "sheep"], ["car", "bus", "train", "truck", "plane"]]
    sentences = [list(r.choice(topics[i % 2], 12)) for i in range(300)]
    vocab = bp.Vocab.build(sentences, min_count=1)
    return vocab, vocab.encode(sentences)


def test_word2vec_neighbours_come_from_the_same_topic():
    r = np.random.default_rng(0)
    vocab, ids = _toy_corpus(r)
    for cls, negative in ((bp.SkipGram, 5), (bp.CBOW, 0)):
        m = cls(len(vocab.words), 8, rng=1)
        curve = train(m, ids, vocab.counts, epochs=3, window=3, negative=negative, lr=0.05, sample=0,
                      batch_size=32, rng=2)
        assert curve[-1] < curve[0]
        near = [w for w, _ in most_similar(m.vectors(), vocab, "cat", 4)]
        assert set(near) == {"dog", "horse", "cow", "sheep"}, (cls.__name__, near)
