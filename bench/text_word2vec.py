"""word2vec trained with gensim on the text gensim ships, scored next to gensim's defaults on the same corpus.

    python bench/text_word2vec.py

Corpus: gensim/test/test_data/lee_background.cor (300 news documents) plus the 106-article Wikipedia
excerpt (markup removed by gensim's wikicorpus). Scores: WordSim-353 and SimLex-999 Spearman ρ over
known pairs, questions-words analogy accuracy over answerable questions (mmindex.text.word2vec.evaluate).
"""

from __future__ import annotations

import bz2
import time
from pathlib import Path

import gensim
from gensim.corpora.wikicorpus import extract_pages, filter_wiki

from mmindex.text.encoders import tokenize
from mmindex.text.word2vec import Corpus, Word2VecConfig, evaluate, train

DATA = Path(gensim.__file__).parent / "test" / "test_data"
CONFIGS = [
    ("gensim defaults (CBOW, 100-d, window 5, min_count 5, 5 epochs)", Word2VecConfig()),
    ("skip-gram, otherwise gensim defaults", Word2VecConfig(sg=True)),
    ("skip-gram, 15 epochs, min_count 3, 10 negatives", Word2VecConfig(sg=True, epochs=15, min_count=3, negative=10)),
    ("CBOW, 15 epochs, min_count 3, 10 negatives", Word2VecConfig(epochs=15, min_count=3, negative=10)),
]


def sentences() -> list[list[str]]:
    out = list(Corpus([DATA / "lee_background.cor"]))
    wiki = DATA / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    with bz2.open(wiki) as f:
        for _title, text, _pageid in extract_pages(f):
            for line in filter_wiki(text).splitlines():
                if words := tokenize(line):
                    out.append(words)
    return out


def main() -> None:
    sents = sentences()
    print(f"corpus: {len(sents):,} lines, {sum(map(len, sents)):,} tokens")
    print()
    print("| settings | words | train s | WordSim-353 ρ | SimLex-999 ρ | analogies acc (answered) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, config in CONFIGS:
        t = time.perf_counter()
        kv = train(sents, config)
        s = evaluate(kv)
        print(f"| {name} | {len(kv):,} | {time.perf_counter() - t:.1f} | {s['wordsim353']:.3f} | {s['simlex999']:.3f} "
              f"| {s['analogies']:.3f} ({s['analogies_answered']:.0f}) |")


if __name__ == "__main__":
    main()
