"""Teaching the index concepts: teach, label (active learning) and judgments (export, import). The requests the
HTTP API takes too (teach: `POST /api/concepts`, label: `GET /api/concepts/{name}/proposals`, judgments export:
`GET /api/judgments`) have their options made from mmindex/search/requests.py."""

from __future__ import annotations

import json
import sys

import click

from mmindex.cli.common import echo_concept_names, index_option, main, open_engine, printable
from mmindex.cli.options import request_options, request_values
from mmindex.search.requests import JudgmentsRequest, LabelRequest, TeachRequest

_FORMATS = ("csv", "qrels")


@main.command()
@request_options(TeachRequest)  # NAME, --positive, --negative
@index_option
@click.option("--from-feedback", is_flag=True,
              help="Also use the judgments made on the last query (`mmindex feedback`).")
@click.option("--json", "as_json", is_flag=True)
def teach(index, from_feedback, as_json, **options) -> None:
    """Teach the index the concept NAME from judged segments: record the judgments, train a detector on every
    judgment of NAME so far (in seconds), and apply it: --concept NAME then means it, and media added later
    are scored by it. Teaching NAME again, with more judgments, replaces it (a new version)."""
    request = TeachRequest(**request_values(TeachRequest, options))
    r = open_engine(index).teach(**request.engine_arguments(), from_feedback=from_feedback)
    if as_json:
        click.echo(json.dumps(r))
        return
    t, j = r["training"], r["judgments"]
    click.echo(f"recorded {j['added'] + j['changed'] + j['unchanged']} judgments ({j['added']} new, {j['changed']} "
               f"changed); taught {r['name']!r} version {r['version']} from {t['judged_positive']} positive and "
               f"{t['judged_negative']} negative judgments and {t['sampled_negative']} sampled negatives "
               f"(C={t['c']:g}) in {t['seconds']:.1f} s; applied to {r['segments']} segments")
    echo_concept_names(r)


@main.command()
@request_options(LabelRequest)  # NAME, -n, --strategy, --seed
@index_option
@click.option("--json", "as_json", is_flag=True)
def label(index, as_json, **options) -> None:
    """Propose the unjudged segments whose judgment helps the detector of NAME most (active learning); judge
    them with `mmindex teach NAME --positive ID ... --negative ID ...`, which trains it again."""
    request = LabelRequest(**request_values(LabelRequest, options))
    r = open_engine(index).label(**request.engine_arguments())
    if r["message"]:
        click.echo(r["message"], err=True)
    if as_json:
        click.echo(json.dumps(r))
        return
    from rich.console import Console  # deferred: `mmindex --help` stays fast
    from rich.table import Table

    table = Table("segment", "score", "time")
    table.add_column("path", overflow="fold")
    for s in r["segments"]:
        when = "" if s["start"] is None else f"{s['start']:.2f}–{s['end']:.2f} s"
        table.add_row(str(s["segment_id"]), "" if s["score"] is None else f"{s['score']:.4f}", when,
                      printable(s["path"]))
    Console().print(table if r["segments"] else f"no unjudged segment left for {r['name']!r}")
    j = r["judged"]
    click.echo(f"{r['name']!r}: {j['positive']} positive and {j['negative']} negative judgments so far; "
               f"strategy {r['strategy']}")


@main.group()
def judgments() -> None:
    """Judgments (labels of segments for concepts): export and import them as CSV or TRECVID-style qrels."""


@judgments.command("export")
@index_option
@request_options(JudgmentsRequest)  # --concept, --format
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False), default=None, help="File to write (default: "
              "standard output).")
def judgments_export(index, out, **options) -> None:
    """Write the index's judgments in a plain format."""
    request = JudgmentsRequest(**request_values(JudgmentsRequest, options))
    text = open_engine(index).export_judgments(**request.engine_arguments())
    if out is None:
        sys.stdout.write(text)
        return
    from mmindex.atomic import write_bytes

    write_bytes(out, text.encode("utf-8", "surrogateescape"))  # a file name that is not UTF-8: its own bytes
    lines = len(text.splitlines()) - (1 if request.format == "csv" else 0)  # a CSV file's header is no judgment
    click.echo(f"wrote {lines} judgments to {printable(out)}", err=True)


@judgments.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@index_option
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default=None,
              help="csv or qrels (default: csv for a .csv file, else qrels).")
@click.option("--json", "as_json", is_flag=True)
def judgments_import(file, index, fmt, as_json) -> None:
    """Record the judgments of FILE (origin "import"). Lines naming segments that are not in the index are
    reported and skipped; importing a file again adds nothing."""
    r = open_engine(index).import_judgments(file, fmt)
    if as_json:
        click.echo(json.dumps(r))
        return
    echo_import(r)


def echo_import(r: dict) -> None:
    """What an import of judgments did (`judgments import`, `import-labels`)."""
    for line in r["unknown"][:20]:
        click.echo(f"  skipped: {printable(line)}", err=True)
    if len(r["unknown"]) > 20:
        click.echo(f"  ... and {len(r['unknown']) - 20} more", err=True)
    click.echo(f"imported {r['lines']} lines: {r['added']} new judgments, {r['changed']} changed, {r['unchanged']} "
               f"unchanged, {len(r['unknown'])} naming no segment of the index, {r['skipped']} unjudged")
