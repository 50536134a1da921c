"""Word2vec skip-gram on the gensim test corpus: the engine (mmindex.backprop.word2vec) against gensim.

Both train on the same sentences with the same settings (skip-gram, 100 dimensions, window 5, 5 negative
samples, min_count 5, down-sampling 1e-3, η 0.025 decaying linearly). Both embeddings are scored by the
same function, gensim's `evaluate_word_pairs` on wordsim353, and their nearest neighbours are printed.
`--softmax` adds the lecture's plain form (full softmax over the vocabulary, no negative sampling) on the
smaller Lee corpus.

    .venv/bin/python bench/backprop_word2vec.py [--epochs 5] [--corpus lee|lee+wiki] [--softmax]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from gensim.corpora.wikicorpus import WikiCorpus
from gensim.models import KeyedVectors, Word2Vec
from gensim.test.utils import datapath
from gensim.utils import simple_preprocess

from mmindex.backprop.word2vec import CBOW, SkipGram, Vocab, most_similar, train

PROBES = ["government", "police", "president", "minister", "fire", "australia", "water", "music"]


def load_corpus(name: str) -> list[list[str]]:
    """Lee background news (one document per line); with "+wiki", the 106 Wikipedia articles as well."""
    sentences = [simple_preprocess(line) for line in Path(datapath("lee_background.cor")).read_text().splitlines()]
    if "wiki" in name:
        wiki = WikiCorpus(datapath("enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"),
                          dictionary={}, processes=1)
        sentences += [list(t) for t in wiki.get_texts()]
    return [s for s in sentences if s]


def score(kv: KeyedVectors) -> tuple[float, float]:
    """(wordsim353 Spearman, fraction of pairs out of vocabulary)."""
    _, spearman, oov = kv.evaluate_word_pairs(datapath("wordsim353.tsv"))
    return float(spearman.statistic if hasattr(spearman, "statistic") else spearman[0]), oov / 100


def engine_kv(vocab: Vocab, vectors: np.ndarray) -> KeyedVectors:
    kv = KeyedVectors(vectors.shape[1])
    kv.add_vectors(vocab.words, vectors.astype(np.float32))
    return kv


def plot(curves: dict[str, list[float]], path: Path, corpus: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for label, c in curves.items():
        ax.plot(range(1, len(c) + 1), c, marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean loss per training pair")
    ax.set_title(f"word2vec with the engine ({corpus} corpus)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default="lee+wiki", choices=["lee", "lee+wiki"])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--batch", type=int, default=256, help="engine mini-batch, in (centre, context) pairs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--softmax", action="store_true", help="also train full-softmax skip-gram and CBOW on Lee")
    ap.add_argument("--plot", type=Path, default=Path("docs/img/backprop_word2vec_loss.png"))
    a = ap.parse_args(argv)

    sentences = load_corpus(a.corpus)
    n_tokens = sum(map(len, sentences))
    print(f"corpus {a.corpus}: {len(sentences)} documents, {n_tokens} tokens")
    settings = dict(window=5, negative=5, sample=1e-3)

    t0 = time.perf_counter()
    g = Word2Vec(sentences, vector_size=a.dim, min_count=5, sg=1, epochs=a.epochs, alpha=0.025, min_alpha=1e-4,
                 seed=a.seed, workers=2, **settings)
    t_gensim = time.perf_counter() - t0
    print(f"gensim: {t_gensim:.1f} s", flush=True)

    vocab = Vocab.build(sentences, min_count=5)
    ids = vocab.encode(sentences)
    model = SkipGram(len(vocab.words), a.dim, rng=a.seed)
    t0 = time.perf_counter()
    curve = train(model, ids, vocab.counts, epochs=a.epochs, lr=0.025, batch_size=a.batch, rng=a.seed, **settings)
    t_engine = time.perf_counter() - t0
    print(f"engine: {t_engine:.1f} s, loss per epoch {np.round(curve, 3).tolist()}", flush=True)
    curves = {"skip-gram, negative sampling": curve}

    rows = [("gensim skip-gram (C, 2 workers)", len(g.wv), t_gensim, *score(g.wv)),
            ("engine SkipGram, negative sampling", len(vocab.words), t_engine,
             *score(engine_kv(vocab, model.vectors())))]

    if a.softmax:
        lee = load_corpus("lee")
        v2 = Vocab.build(lee, min_count=5)
        ids2 = v2.encode(lee)
        for cls in (SkipGram, CBOW):
            m = cls(len(v2.words), a.dim, rng=a.seed)
            t0 = time.perf_counter()
            c = train(m, ids2, v2.counts, epochs=a.epochs, lr=0.025, batch_size=32, negative=0, rng=a.seed,
                      window=5, sample=1e-3)
            print(f"engine {cls.__name__} full softmax: {time.perf_counter() - t0:.1f} s", flush=True)
            rows.append((f"engine {cls.__name__}, full softmax (Lee only)", len(v2.words), time.perf_counter() - t0,
                         *score(engine_kv(v2, m.vectors()))))
            curves[f"{cls.__name__}, full softmax (Lee only)"] = c

    print("\n| model | vocabulary | train s | wordsim353 Spearman | pairs OOV |\n|---|---:|---:|---:|---:|")
    for name, v, t, rho, oov in rows:
        print(f"| {name} | {v} | {t:.1f} | {rho:.3f} | {oov:.0%} |")
    print(f"\nengine / gensim training time: {t_engine / t_gensim:.1f}×  (epochs {a.epochs})")
    print("\nnearest neighbours (engine | gensim):")
    for w in PROBES:
        if w in vocab.index and w in g.wv:
            mine = ", ".join(x for x, _ in most_similar(model.vectors(), vocab, w, 5))
            theirs = ", ".join(x for x, _ in g.wv.most_similar(w, topn=5))
            print(f"- {w}: {mine} | {theirs}")
    plot(curves, a.plot, a.corpus)
    print(f"\nloss curve: {a.plot}")


if __name__ == "__main__":
    main()
