"""The `mmindex` command line. It parses, calls the Engine, and formats; nothing else."""

from __future__ import annotations

import json
import sys

import click

from mmindex.config import DEFAULT_MODEL, IngestConfig
from mmindex.errors import MmindexError


class _Group(click.Group):
    """Turns library errors into a one-line message and exit status 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MmindexError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


def _index_option(f):
    return click.option(
        "--index", "index", type=click.Path(file_okay=False), default=None, envvar="MMINDEX_INDEX",
        help="Index folder (default: $MMINDEX_INDEX, else ~/.local/share/mmindex/index).",
    )(f)


def _engine(index, config=None):
    from mmindex import Engine

    return Engine(index, config)


@click.group(cls=_Group)
@click.version_option(package_name="mmindex")
def main() -> None:
    """Index image and video collections with deep networks and search them."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@_index_option
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Backbone (see `mmindex models`).")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, 4096))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Decoding threads.")
@click.option("--runtime", "engine", type=click.Choice(["auto", "onnx", "torch"]), default="auto", show_default=True)
@click.option("--pool", type=click.Choice(["max", "mean"]), default="max", show_default=True,
              help="How a segment's scores are pooled over its keyframes.")
@click.option("--frame-step", default=1, show_default=True, type=click.IntRange(1, 100),
              help="Shot detection looks at every N-th video frame (faster; may miss short transitions).")
@click.option("--shots-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder of TRECVID master shot reference files <video stem>.msb, used instead of shot "
                   "detection (a sidecar clip.mp4.msb or clip.msb beside a video is always used).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def add(paths, index, model, batch_size, workers, engine, pool, frame_step, shots_dir, quiet) -> None:
    """Index files and folders (recursively); unchanged files are skipped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    config = IngestConfig(model=model, batch_size=batch_size, workers=workers, engine=engine, pool=pool,
                          frame_step=frame_step, shots_dir=shots_dir)
    eng = _engine(index, config)
    with Progress(TextColumn("indexing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=quiet, transient=False) as bar:
        task = bar.add_task("add", total=None)
        report = eng.add(paths, progress=lambda done, total: bar.update(task, completed=done, total=total))
    click.echo(
        f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
        f"failed {report.failed} in {report.seconds:.1f} s (index: {eng.index_dir})"
    )
    for path, error in report.errors[:20]:
        click.echo(f"  failed: {path}: {error}", err=True)
    if report.failed > 20:
        click.echo(f"  ... and {report.failed - 20} more (see `mmindex info`)", err=True)


@main.command()
@_index_option
@click.option("--concept", "-c", "concepts", multiple=True, help='Concept expression, e.g. "cat AND NOT dog".')
@click.option("--like", "-l", "like", multiple=True, help="Example: a segment id or an image file.")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, 100_000), help="Number of hits.")
@click.option("--normalise", type=click.Choice(["minmax", "zscore", "rank"]), default="minmax", show_default=True,
              help="Score normalisation before fusing several criteria.")
@click.option("--explain", is_flag=True, help="Show each criterion's score for each hit.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object {\"hits\": [...]}.")
def search(index, concepts, like, k, normalise, explain, as_json) -> None:
    """Search by concept and/or by example; criteria are fused."""
    hits = _engine(index).search(concepts, like, k=k, explain=explain, normalise=normalise)
    if as_json:
        click.echo(json.dumps({"hits": [h.to_dict() for h in hits]}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("#", "score", "segment", "time")
    table.add_column("path", overflow="fold")
    for i, h in enumerate(hits, 1):
        when = "" if h.start is None else f"{h.start:.2f}–{h.end:.2f} s"
        table.add_row(str(i), f"{h.score:.4f}", str(h.segment_id), when, h.path)
        if h.why:
            table.add_row("", "", "", "", "  " + ", ".join(f"{k} = {v:.4f}" for k, v in h.why.items()))
    Console().print(table if hits else "no hits")


@main.command()
@_index_option
@click.option("--json", "as_json", is_flag=True)
def info(index, as_json) -> None:
    """Counts, models, disk use and the files that failed."""
    data = _engine(index).info()
    if as_json:
        click.echo(json.dumps(data))
        return
    click.echo(f"index:     {data['index']}")
    click.echo(f"media:     {data['media']}")
    click.echo(f"segments:  {data['segments']}")
    click.echo(f"keyframes: {data['keyframes']}")
    click.echo(f"concepts:  {data['concepts']}")
    click.echo(f"models:    {', '.join(data['models'])} ({data['embed_dim']}-d embeddings)")
    click.echo(f"disk:      {data['disk_bytes'] / 1e6:.2f} MB")
    click.echo(f"errors:    {len(data['errors'])}")
    for e in data["errors"]:
        click.echo(f"  {e['path']}: {e['error']}")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@_index_option
def remove(paths, index) -> None:
    """Remove media (files, or every file under a folder) from the index."""
    n = _engine(index).remove(paths)
    click.echo(f"removed {n} media")


@main.command()
@click.argument("text", required=False)
@click.option("--limit", default=None, type=click.IntRange(1), help="At most this many.")
@click.option("--json", "as_json", is_flag=True)
def concepts(text, limit, as_json) -> None:
    """List the concept vocabulary, or search it by name, synonym or WordNet id."""
    from mmindex.concepts import Vocabulary

    found = Vocabulary.imagenet().search(text, limit)
    if as_json:
        click.echo(json.dumps({"concepts": [
            {"id": c.id, "name": c.name, "synonyms": list(c.synonyms), "source": c.source,
             "classes": len(c.classes)} for c in found]}))
        return
    for c in found:
        extra = f"  [{len(c.classes)} classes]" if c.source != "imagenet" else ""
        click.echo(f"{c.id}  {', '.join(c.synonyms)}{extra}")
    if not found:
        click.echo(f"no concept matches {text!r}", err=True)


if __name__ == "__main__":
    main()
