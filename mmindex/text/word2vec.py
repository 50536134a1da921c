"""Training word2vec (skip-gram or CBOW) with gensim, and evaluating it on gensim's test sets.

A corpus is one or more text files (plain, .gz or .bz2; one sentence or document per line) or folders
of them, or the collection's own text: media file names, folder names and sidecar captions
(`photo.jpg.txt` or `photo.txt` beside `photo.jpg`). The result is saved as gensim KeyedVectors and is
usable as a text encoder: `--text-encoder word2vec:FILE`.

Evaluation uses the files gensim ships in `gensim/test/test_data/`: WordSim-353 and SimLex-999
(Spearman ρ between cosine similarity and human ratings, over the pairs whose words are known) and
Mikolov's questions-words analogies (accuracy over the questions whose words are known; gensim's
default restricts the vocabulary to the 300,000 most frequent words).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mmindex.atomic import atomic_write
from mmindex.errors import MmindexError, QueryError
from mmindex.text.encoders import tokenize

TEXT_SUFFIXES = (".txt", ".cor", ".gz", ".bz2")


@dataclass(frozen=True)
class Word2VecConfig:
    """gensim Word2Vec settings. The defaults are gensim's own (CBOW, 100-d, window 5, min_count 5,
    5 epochs, 5 negative samples), so that "our settings vs gensim's defaults" is one field away."""

    sg: bool = False  # skip-gram (True) or CBOW (False)
    vector_size: int = 100
    window: int = 5
    min_count: int = 5
    epochs: int = 5
    negative: int = 5
    sample: float = 1e-3
    workers: int = 2
    seed: int = 1


class Corpus:
    """Re-iterable token lists from text files and folders (gensim iterates once per epoch)."""

    def __init__(self, paths: Iterable[str | os.PathLike]):
        self.files: list[Path] = []
        for p in map(Path, paths):
            if p.is_dir():
                self.files += sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith(TEXT_SUFFIXES))
            elif p.is_file():
                self.files.append(p)
            else:
                raise QueryError(f"corpus: no file or folder {p}")
        if not self.files:
            raise QueryError("corpus: no text files found")

    def __iter__(self) -> Iterator[list[str]]:
        from gensim.utils import open as gopen  # transparently reads .gz and .bz2

        for f in self.files:
            with gopen(str(f), "rb") as fh:
                for line in fh:
                    words = tokenize(line.decode("utf-8", errors="replace"))
                    if words:
                        yield words


def collection_sentences(paths: Iterable[str]) -> list[list[str]]:
    """The collection's own text: for each media file, its folder and file names and sidecar captions."""
    out = []
    for path in paths:
        p = Path(path)
        words = tokenize(f"{p.parent.name} {p.stem}")
        for side in (p.with_name(p.name + ".txt"), p.with_suffix(".txt")):
            if side.is_file() and side != p:
                words += tokenize(side.read_text(errors="replace")[:100_000])
        if words:
            out.append(words)
    return out


def train(sentences: Iterable[list[str]], config: Word2VecConfig | None = None):
    """Train word2vec; returns gensim KeyedVectors. MmindexError if no word reaches min_count."""
    from gensim.models import Word2Vec

    c = config or Word2VecConfig()
    model = Word2Vec(vector_size=c.vector_size, window=c.window, min_count=c.min_count, sg=int(c.sg),
                     negative=c.negative, sample=c.sample, workers=c.workers, seed=c.seed)
    model.build_vocab(sentences)
    if not model.wv.key_to_index:
        raise MmindexError(f"word2vec: no word occurs at least {c.min_count} times in the corpus")
    model.train(sentences, total_examples=model.corpus_count, epochs=c.epochs)
    return model.wv


def evaluate(kv) -> dict[str, float]:
    """WordSim-353 and SimLex-999 Spearman ρ, analogy accuracy, and the share of each set left out (OOV)."""
    import logging

    from gensim.test.utils import datapath

    logging.getLogger("gensim").setLevel(logging.WARNING)  # gensim logs every evaluation at INFO
    out: dict[str, float] = {}
    for name, file in (("wordsim353", "wordsim353.tsv"), ("simlex999", "simlex999.txt")):
        _, spearman, oov = kv.evaluate_word_pairs(datapath(file))
        out[name] = float(spearman.statistic if hasattr(spearman, "statistic") else spearman[0])
        out[f"{name}_oov"] = float(oov) / 100.0
    score, sections = kv.evaluate_word_analogies(datapath("questions-words.txt"))
    total = next(s for s in sections if s["section"] == "Total accuracy")
    out["analogies"] = float(score)
    out["analogies_answered"] = float(len(total["correct"]) + len(total["incorrect"]))
    return out


def train_and_save(sentences, out: str | os.PathLike, config: Word2VecConfig | None = None) -> dict:
    """Train, save KeyedVectors to `out` (atomically) and return {"words", "seconds", "path"}."""
    t = time.perf_counter()
    kv = train(sentences, config)
    seconds = time.perf_counter() - t
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp:
        kv.save(str(tmp), separately=[])  # one file: the rename then moves all of it
    return {"words": len(kv.key_to_index), "seconds": seconds, "path": str(out), "vectors": kv}
