"""Data in and out in the field's formats: export (parquet, npz), import-labels (CSV, qrels) and evaluate-run
(trec_eval). `search --format trec` (cli/search.py) writes the runs that evaluate-run scores."""

from __future__ import annotations

import json

import click

from mmindex.cli.common import echo_concept_names, index_option, main, open_engine, printable
from mmindex.cli.index import with_progress
from mmindex.cli.teach import echo_import


@main.command()
@index_option
@click.option("--format", "fmt", type=click.Choice(["parquet", "npz"]), default="parquet", show_default=True,
              help="parquet (one row per segment) or npz (one NumPy array per column).")
@click.option("--what", default="segments", show_default=True, metavar="PARTS",
              help="Comma-separated: segments, embeddings, scores (scores:K: each segment's top K concepts), "
                   "detectors (your concepts' scores).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="File to write.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def export(index, fmt, what, out, as_json, quiet) -> None:
    """Write the index's segments, embeddings and scores to a parquet or npz file, in batches (a million segments
    never sit in memory at once); the file's metadata names the model, its preprocessing and the concept ids."""
    eng = open_engine(index)
    report = with_progress("exporting", quiet or as_json, lambda progress: eng.export(out, fmt, what, progress),
                           lazy=True)
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"wrote {report['segments']} segments ({', '.join(report['columns'])}) to {printable(report['path'])}")


@main.command("import-labels")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@index_option
@click.option("--format", "fmt", type=click.Choice(["csv", "qrels"]), default=None,
              help="csv or qrels (default: csv for a .csv file, else qrels).")
@click.option("--teach", "teach", is_flag=True, help="Then teach each concept of the file from all its judgments.")
@click.option("--json", "as_json", is_flag=True)
def import_labels(file, index, fmt, teach, as_json) -> None:
    """Record the labels of FILE as judgments (as `mmindex judgments import` does: CSV
    `segment_path,start,end,concept,label` or qrels `concept 0 doc relevance`); with --teach, train each concept's
    detector on them. The judgments are then what `teach` trains on and what `judgments export --format qrels`
    hands to `evaluate-run`."""
    r = open_engine(index).import_labels(file, fmt, teach)
    if as_json:
        click.echo(json.dumps(r))
        return
    echo_import(r)
    for t in r.get("taught", []):
        c = t["training"]
        click.echo(f"taught {t['name']!r} version {t['version']} from {c['judged_positive']} positive and "
                   f"{c['judged_negative']} negative judgments")
        echo_concept_names(t)
    for name in r.get("not_taught", []):
        click.echo(f"not taught {name!r}: no positive judgment", err=True)


@main.command("evaluate-run")
@click.argument("qrels", type=click.Path(exists=True, dir_okay=False))
@click.argument("run", type=click.Path(exists=True, dir_okay=False))
@click.option("-k", "ks", multiple=True, type=click.IntRange(1), help="Cut-offs of P@k and nDCG@k (default 5, 10).")
@click.option("--json", "as_json", is_flag=True)
def evaluate_run(qrels, run, ks, as_json) -> None:
    """Score a trec_eval RUN against QRELS with trec_eval's own code (pytrec_eval): MAP, P@k, nDCG@k and infAP
    per topic and their means over the qrels' topics (a topic missing from the run scores 0)."""
    from mmindex.evaluate.trec import evaluate_files  # deferred: `mmindex --help` stays fast

    r = evaluate_files(qrels, run, tuple(sorted(set(ks))) or (5, 10))
    if as_json:
        click.echo(json.dumps(r))
        return
    names = {"map": "MAP", "infAP": "infAP", **{m: m.replace("P_", "P@").replace("ndcg_cut_", "nDCG@")
                                                  for m in r["measures"] if m not in ("map", "infAP")}}
    click.echo("topic".ljust(24) + "".join(names[m].rjust(9) for m in r["measures"]))
    for topic, scores in sorted(r["topics"].items()):
        click.echo(printable(topic)[:23].ljust(24) + "".join(f"{scores[m]:9.4f}" for m in r["measures"]))
    click.echo(f"all ({len(r['topics'])})".ljust(24) + "".join(f"{r['all'][m]:9.4f}" for m in r["measures"]))
    if r["run_topics_unjudged"]:
        click.echo(f"not scored: {len(r['run_topics_unjudged'])} topics of the run have no judgment in {qrels}: "
                   f"{', '.join(r['run_topics_unjudged'][:10])}", err=True)
