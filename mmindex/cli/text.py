"""Text encoders: train and evaluate word2vec."""

from __future__ import annotations

import json

import click

from mmindex.cli.common import main, open_engine


@main.group()
def text() -> None:
    """Text encoders: train and evaluate word2vec."""


@text.command("train-word2vec")
@click.argument("corpus", nargs=-1, type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Where to save the vectors.")
@click.option("--from-index", "from_index", type=click.Path(file_okay=False), default=None,
              help="Also train on this index's own text: file and folder names, sidecar captions.")
@click.option("--cbow/--skip-gram", "cbow", default=False, show_default=True, help="Architecture.")
@click.option("--dim", default=100, show_default=True, type=click.IntRange(2, 2000))
@click.option("--window", default=5, show_default=True, type=click.IntRange(1, 50))
@click.option("--min-count", default=5, show_default=True, type=click.IntRange(1))
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.option("--negative", default=5, show_default=True, type=click.IntRange(0, 100), help="Negative samples.")
@click.option("--evaluate/--no-evaluate", default=True, show_default=True,
              help="Report WordSim-353, SimLex-999 and analogy scores.")
def train_word2vec(corpus, out, from_index, cbow, dim, window, min_count, epochs, negative, evaluate) -> None:
    """Train word2vec on CORPUS (text files or folders) and save it, for --text-encoder word2vec:OUT."""
    from mmindex.text import word2vec as w2v  # deferred: `mmindex --help` stays fast

    if not corpus and not from_index:
        raise click.UsageError("give a CORPUS or --from-index")
    sentences = list(w2v.Corpus(corpus)) if corpus else []
    if from_index:
        sentences += w2v.collection_sentences(open_engine(from_index).media_paths())
    config = w2v.Word2VecConfig(sg=not cbow, vector_size=dim, window=window, min_count=min_count, epochs=epochs,
                                negative=negative)
    done = w2v.train_and_save(sentences, out, config)
    click.echo(f"trained on {len(sentences):,} sentences: {done['words']:,} words in {done['seconds']:.1f} s "
               f"-> {done['path']} (use --text-encoder word2vec:{done['path']})")
    if evaluate:
        _echo_word2vec_scores(w2v.evaluate(done["vectors"]))


@text.command("evaluate-word2vec")
@click.argument("vectors", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def evaluate_word2vec(vectors, as_json) -> None:
    """Score saved word vectors on WordSim-353, SimLex-999 and questions-words."""
    from pathlib import Path

    from mmindex.text.encoders import load_keyed_vectors  # deferred: `mmindex --help` stays fast
    from mmindex.text.word2vec import evaluate  # deferred: `mmindex --help` stays fast

    scores = evaluate(load_keyed_vectors(Path(vectors)))
    if as_json:
        click.echo(json.dumps(scores))
    else:
        _echo_word2vec_scores(scores)


def _echo_word2vec_scores(s: dict) -> None:
    click.echo(f"wordsim353 spearman {s['wordsim353']:.3f} (oov {s['wordsim353_oov']:.0%}), "
               f"simlex999 spearman {s['simlex999']:.3f} (oov {s['simlex999_oov']:.0%}), "
               f"analogies {s['analogies']:.3f} ({s['analogies_answered']:.0f} answered)")
