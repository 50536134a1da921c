"""Word2vec (Mikolov et al., 2013) as the lecture draws it: a one-hot input, an encoding matrix (V → D),
a decoding matrix (D → V) and a softmax over the vocabulary.

A one-hot row times a matrix selects one row, so the encoding matrix is stored one row per word (V, D)
and "one-hot · W_enc" is a row lookup; the decoding matrix W_dec is also (V, D), logits = h · W_decᵀ.
Skip-gram predicts each neighbour from the centre word (the lecture's decoding matrices, one per
neighbour position, are one shared matrix here, as in word2vec); CBOW predicts the centre word from the
mean of its neighbours' codes. With `negative > 0` training replaces the softmax over V words by
negative sampling: −log σ(u_o · h) − Σ_k log σ(−u_k · h) over the true word o and k sampled words.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from mmindex.backprop.losses import SoftmaxCrossEntropy
from mmindex.backprop.modules import Module, RngLike, Sigmoid, _rng


@dataclass
class Vocab:
    """Words kept (count ≥ min_count), most frequent first, with their counts."""

    words: list[str]
    counts: np.ndarray

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], min_count: int = 5) -> Vocab:
        c = Counter(w for s in sentences for w in s)
        kept = sorted((w for w, n in c.items() if n >= min_count), key=lambda w: (-c[w], w))
        return cls(kept, np.array([c[w] for w in kept], dtype=np.int64))

    def encode(self, sentences: Iterable[Sequence[str]]) -> list[np.ndarray]:
        """Sentences → arrays of word ids (out-of-vocabulary words dropped)."""
        return [np.array([self.index[w] for w in s if w in self.index], dtype=np.int64) for s in sentences]


class _Word2Vec(Module):
    def __init__(self, n_words: int, dim: int, rng: RngLike = None) -> None:
        super().__init__()
        r = _rng(rng)
        # as word2vec: small random codes, decoder at zero
        self._param("W_enc", ((r.random((n_words, dim)) - 0.5) / dim).astype(np.float32))
        self._param("W_dec", np.zeros((n_words, dim), dtype=np.float32))

    def _encode(self, inputs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _encode_backward(self, dh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """dE/dh → (rows of W_enc, their gradients)."""
        raise NotImplementedError

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        """Word ids (the positions of the one-hot inputs) → scores over the vocabulary (softmax's input)."""
        self.h = self._encode(inputs)
        return self.h @ self.params["W_dec"].T  # decoding: y = W_dec · h

    def backward(self, grad_out: np.ndarray) -> None:
        """Accumulate dE/dW_dec and dE/dW_enc; the one-hot input has no gradient to pass on (returns None)."""
        self.grads["W_dec"] += grad_out.T @ self.h  # dE/dW_dec = dE/dy · h (outer product)
        rows, g = self._encode_backward(grad_out @ self.params["W_dec"])  # dE/dh = dE/dy · W_dec
        np.add.at(self.grads["W_enc"], rows, g)  # only the rows selected by the one-hot input
        return None

    def negative_sampling(self, inputs: np.ndarray, targets: np.ndarray, negatives: np.ndarray
                          ) -> tuple[float, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """Loss and sparse gradients of negative sampling, summed over the batch.

        E = Σ_b [−log σ(u_o · h) − Σ_k log σ(−u_k · h)], u = rows of W_dec for the target o and the
        negatives k. Returns (E, {"W_enc": (rows, grads), "W_dec": (rows, grads)}).
        """
        h = self._encode(inputs)
        rows = np.concatenate([targets[:, None], negatives], axis=1)  # (B, 1 + K)
        u = self.params["W_dec"][rows]
        score = np.einsum("bd,bkd->bk", h, u)
        sign = np.ones_like(score)
        sign[:, 1:] = -1  # label 1 for the true word, 0 for the sampled ones
        p = Sigmoid.f(sign * score)
        loss = float(-np.sum(np.log(np.maximum(p, 1e-30))))  # −log σ(u_o·h) − Σ_k log σ(−u_k·h)
        ds = -(1.0 - p) * sign  # dE/dscore = σ(score) − label
        du = ds[:, :, None] * h[:, None, :]
        enc = self._encode_backward(np.einsum("bk,bkd->bd", ds, u))
        return loss, {"W_enc": enc, "W_dec": (rows.ravel(), du.reshape(-1, h.shape[1]))}

    def sparse_step(self, grads: dict[str, tuple[np.ndarray, np.ndarray]], lr: float) -> None:
        """W = W − η · dE/dW on the rows that have a gradient."""
        for k, (rows, g) in grads.items():
            np.subtract.at(self.params[k], rows, (lr * g).astype(self.params[k].dtype, copy=False))

    def vectors(self) -> np.ndarray:
        """The embedding: one row of the encoding matrix per word."""
        return self.params["W_enc"]


class SkipGram(_Word2Vec):
    """Skip-gram: predict a neighbour from the centre word. Input: centre word ids (B,)."""

    def _encode(self, inputs: np.ndarray) -> np.ndarray:
        self.rows = inputs
        return self.params["W_enc"][inputs]  # encoding: h = one-hot(x) · W_enc, a row lookup

    def _encode_backward(self, dh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.rows, dh


class CBOW(_Word2Vec):
    """Continuous bag of words: predict the centre from its neighbours. Input: (B, 2c) word ids, −1 = none."""

    def _encode(self, inputs: np.ndarray) -> np.ndarray:
        self.mask = (inputs >= 0).astype(self.params["W_enc"].dtype)
        self.count = np.maximum(self.mask.sum(1, keepdims=True), 1)
        rows = self.params["W_enc"][np.maximum(inputs, 0)] * self.mask[:, :, None]
        self.inputs = inputs
        return rows.sum(1) / self.count  # h = mean of one-hot(x_j) · W_enc over the neighbours j

    def _encode_backward(self, dh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        g = (dh / self.count)[:, None, :] * self.mask[:, :, None]
        return np.maximum(self.inputs, 0).ravel(), g.reshape(-1, dh.shape[1])


def _subsample(ids: np.ndarray, counts: np.ndarray, sample: float, r: np.random.Generator) -> np.ndarray:
    """word2vec's down-sampling of frequent words: keep w with probability (√(f/s) + 1) · s / f, f = freq."""
    if not sample:
        return np.ones(len(ids), dtype=bool)
    f = counts[ids] / counts.sum()
    return r.random(len(ids)) < (np.sqrt(f / sample) + 1) * sample / f


def training_pairs(sentences: list[np.ndarray], window: int, r: np.random.Generator, counts: np.ndarray,
                   sample: float = 1e-3, cbow: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) for one epoch, shuffled. Each centre uses a random window 1..`window` (as word2vec).

    Skip-gram: inputs are centre ids (N,), targets neighbour ids. CBOW: inputs (N, 2·window) padded with −1,
    targets centre ids.
    """
    kept = [s[_subsample(s, counts, sample, r)] for s in sentences]
    tokens = np.concatenate(kept) if kept else np.zeros(0, np.int64)
    sent = np.repeat(np.arange(len(kept)), [len(s) for s in kept])
    reach = r.integers(1, window + 1, len(tokens))
    n = len(tokens)
    offsets = [d for d in range(-window, window + 1) if d]
    if cbow:
        ctx = np.full((n, len(offsets)), -1, dtype=np.int64)
        for j, d in enumerate(offsets):
            i = np.arange(max(0, -d), min(n, n - d))
            ok = (sent[i] == sent[i + d]) & (abs(d) <= reach[i])
            ctx[i[ok], j] = tokens[i[ok] + d]
        keep = (ctx >= 0).any(1)
        order = r.permutation(int(keep.sum()))
        return ctx[keep][order], tokens[keep][order]
    centres, contexts = [], []
    for d in offsets:
        i = np.arange(max(0, -d), min(n, n - d))
        ok = (sent[i] == sent[i + d]) & (abs(d) <= reach[i])
        centres.append(tokens[i[ok]])
        contexts.append(tokens[i[ok] + d])
    c, t = np.concatenate(centres), np.concatenate(contexts)
    order = r.permutation(len(c))
    return c[order], t[order]


def train(model: _Word2Vec, sentences: list[np.ndarray], counts: np.ndarray, epochs: int = 5, window: int = 5,
          negative: int = 5, lr: float = 0.025, min_lr: float = 1e-4, batch_size: int = 256, sample: float = 1e-3,
          rng: RngLike = 0) -> list[float]:
    """Train by SGD on mini-batches of (input, target) pairs; η decays linearly from `lr` to `min_lr`.

    `negative = 0` trains the full softmax over the vocabulary with the module API (forward, softmax
    cross-entropy, backward, update); `negative > 0` uses negative sampling with the unigram^¾ distribution.
    Returns the mean loss per pair of each epoch.
    """
    r = _rng(rng)
    cbow = isinstance(model, CBOW)
    noise = np.cumsum(counts**0.75)
    noise /= noise[-1]
    loss_fn = SoftmaxCrossEntropy(reduction="sum")
    epoch_pairs = [training_pairs(sentences, window, r, counts, sample, cbow) for _ in range(epochs)]
    total_steps = sum(-(-len(t) // batch_size) for _, t in epoch_pairs)
    step, curve = 0, []
    for inputs, targets in epoch_pairs:
        total = 0.0
        for i in range(0, len(targets), batch_size):
            eta = lr - (lr - min_lr) * step / max(1, total_steps)  # linear decay of the learning rate
            step += 1
            x, t = inputs[i : i + batch_size], targets[i : i + batch_size]
            if negative:
                negs = np.searchsorted(noise, r.random((len(t), negative)))
                loss, grads = model.negative_sampling(x, t, negs)
                model.sparse_step(grads, eta)
            else:
                model.zero_grad()
                loss = loss_fn.forward(model.forward(x), t)  # softmax over the vocabulary, cross-entropy
                model.backward(loss_fn.backward())
                for k, w in model.params.items():
                    w -= eta * model.grads[k]  # W = W − η · dE/dW
            total += loss
        curve.append(total / max(1, len(targets)))
    return curve


def most_similar(vectors: np.ndarray, vocab: Vocab, word: str, k: int = 10) -> list[tuple[str, float]]:
    """The k nearest words by cosine similarity."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sims = unit @ unit[vocab.index[word]]
    best = [i for i in np.argsort(-sims)[: k + 1] if i != vocab.index[word]][:k]
    return [(vocab.words[i], float(sims[i])) for i in best]
