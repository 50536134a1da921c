"""Building the index: add, info, remove."""

from __future__ import annotations

import json

import click

from mmindex.cli.common import index_option, main, open_engine
from mmindex.config import DEFAULT_MODEL, IngestConfig


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@index_option
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
    eng = open_engine(index, config)
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
@index_option
@click.option("--json", "as_json", is_flag=True)
def info(index, as_json) -> None:
    """Counts, models, disk use and the files that failed."""
    data = open_engine(index).info()
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
@index_option
def remove(paths, index) -> None:
    """Remove media (files, or every file under a folder) from the index."""
    n = open_engine(index).remove(paths)
    click.echo(f"removed {n} media")
