"""Building the index: add, info, remove, compact, rebuild."""

from __future__ import annotations

import json

import click

from mmindex.cli.choices import RegistryChoice
from mmindex.cli.common import ModelChoice, device_option, index_option, main, open_engine, printable
from mmindex.cli.options import request_options, request_values
from mmindex.config import DEFAULT_MODEL, IngestConfig
from mmindex.search.requests import AddRequest, RemoveRequest


@main.command()
@request_options(AddRequest)  # PATHS: POST /api/media's body; the options below make the IngestConfig
@index_option
@click.option("--model", type=ModelChoice(), default=DEFAULT_MODEL, show_default=True,
              metavar="NAME", help="Backbone (see `mmindex models list`).")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, 4096))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="Decoding threads (on a GPU, decoding runs in a process per core instead).")
@click.option("--runtime", "backend", type=click.Choice(["auto", "onnx", "torch"]), default="auto", show_default=True)
@device_option
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default=None,
              help="The model's (default: the index's own, fp32 for a new index): int8 is about twice as fast on "
                   "the CPU and agrees with fp32's top-1 on 97% of photos; built once (a minute; needs "
                   "mmindex[samples]). An index keeps its precision: adding in the other is refused.")
@click.option("--pool", type=click.Choice(["max", "mean"]), default="max", show_default=True,
              help="How a segment's scores are pooled over its keyframes.")
@click.option("--frame-step", default=1, show_default=True, type=click.IntRange(1, 100),
              help="Shot detection looks at every N-th video frame (faster; may miss short transitions).")
@click.option("--shots", default="builtin", show_default=True, type=RegistryChoice("mmindex.media.shots:DETECTORS"),
              help="Shot detector: builtin, or transnetv2 (learned; needs mmindex[shots]). docs/video.md compares "
                   "them.")
@click.option("--shots-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder of TRECVID master shot reference files <video stem>.msb, used instead of shot "
                   "detection (a sidecar clip.mp4.msb or clip.msb beside a video is always used).")
@click.option("--executor", "--engine", "executor", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="Where decoding and inference run: threads here, or Ray tasks and actors "
              "(docs/scale.md). `--engine` is its old name.")
@click.option("--address", "ray_address", default=None, metavar="ADDR",
              help="With --executor ray: the cluster (auto, HOST:PORT or ray://HOST:10001); default a local one.")
@click.option("--ray-workers", default=1, show_default=True, type=click.IntRange(1, 4096),
              help="With --executor ray: inference actors, one model each.")
@click.option("--vector-index", default=None, metavar="auto|flat|hnsw|ivfpq|FACTORY",
              help="Vector index of a new index (default auto: exact below 50,000 vectors, hnsw from there on; a "
                   "FAISS factory string is allowed). An existing "
                   "index keeps its own: naming another is an error (change it with `mmindex rebuild`).")
@click.option("--auto-compact", default=32, show_default=True, type=click.IntRange(0),
              help="Afterwards, compact when at least this many batch files would be merged (0: never).")
@click.option("--keyframe-rate", default=None, type=click.FloatRange(0, 60, min_open=True), metavar="FPS",
              help="Video keyframes per second of shot (at most 64 a shot) instead of one per 10 s (at most 8): for "
                   "temporal models; more inference. The index keeps it for later adds.")
@click.option("--keyframe-embeddings", is_flag=True, default=False,
              help="Also store each keyframe's embedding (float16), which temporal models applied to the index read "
                   "(docs/learning.md#apply). The index keeps doing so for later adds.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def add(index, model, batch_size, workers, backend, device, precision, pool, frame_step, shots, shots_dir, executor,
        ray_address, ray_workers, vector_index, auto_compact, keyframe_rate, keyframe_embeddings, quiet,
        **options) -> None:
    """Index files and folders (recursively); unchanged files are skipped."""
    request = AddRequest(**request_values(AddRequest, options))
    config = IngestConfig(model=model, batch_size=batch_size, workers=workers, backend=backend, device=device,
                          precision=precision, pool=pool, frame_step=frame_step, shots=shots, shots_dir=shots_dir,
                          executor=executor, ray_address=ray_address,
                          ray_workers=ray_workers, auto_compact=auto_compact, keyframe_rate=keyframe_rate,
                          keyframe_embeddings=keyframe_embeddings)
    eng = open_engine(index, config, vector_index=vector_index)
    # The bar waits for the engine's first report (once it holds the writer lock): a locked index gives
    # its one-line error alone.
    report = with_progress("indexing", quiet, lambda progress: eng.add(request.paths, progress), lazy=True)
    click.echo(
        f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
        f"failed {report.failed} in {report.seconds:.1f} s (index: {printable(str(eng.index_dir))})"
        + (f"; compacted {report.compacted} batch files" if report.compacted else "")
    )
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    for path, error in report.errors[:20]:
        click.echo(f"  failed: {printable(path)}: {printable(error)}", err=True)
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
    click.echo(f"index:     {printable(data['index'])}")
    click.echo(f"media:     {data['media']}")
    click.echo(f"segments:  {data['segments']}")
    click.echo(f"keyframes: {data['keyframes']}")
    click.echo(f"concepts:  {data['concepts']}")
    click.echo(f"models:    {', '.join(data['models'])} ({data['precision']}, {data['embed_dim']}-d embeddings)")
    files = data["batch_files"]
    click.echo(f"segments on disk: {files['files']} batch files ({files['legacy_files']} in the old format), "
               f"{files['rows']} rows of which {files['dead_rows']} dead" +
               ("  (run `mmindex compact`)" if files["dead_rows"] or files["files"] > 64 else ""))
    v = data["vector_index"]
    click.echo(f"vector index: {v['setting']} ({v['factory']}): {v['vectors']} vectors, {v['in_index']} in the "
               f"index file ({v['file_bytes'] / 1e6:.2f} MB{', memory-mapped' if v['mapped'] else ''}), "
               f"{v['pending']} pending, {v['tombstones']} tombstones")
    if v.get("auto"):
        click.echo(f"              auto: {v['auto']}")
    mem, disk = data["memory"], data["disk"]
    click.echo(f"memory:    {mem['rss_bytes'] / 1e6:.1f} MB resident after loading, {mem['mapped_bytes'] / 1e6:.1f} "
               f"MB mapped from files, {mem['resident_bytes'] / 1e6:.1f} MB held by the arrays and indexes")
    parts = ", ".join(f"{key} {disk[key] / 1e6:.2f}" for key in ("batches", "vectors", "sqlite", "detectors"))
    click.echo(f"disk:      {data['disk_bytes'] / 1e6:.2f} MB ({parts})")
    for d in data["detectors"]:
        j = d["judgments"]
        click.echo(f"detector:  {d['name']!r} ({d['kind']}, version {d['version']}): {', '.join(d['labels'])}" +
                   (f"; {j['positive']} positive and {j['negative']} negative judgments" if sum(j.values()) else ""))
    click.echo(f"errors:    {len(data['errors'])}")
    for e in data["errors"]:
        click.echo(f"  {printable(e['path'])}: {printable(e['error'])}")


@main.command()
@request_options(RemoveRequest)  # PATHS: DELETE /api/media's path
@index_option
def remove(index, **options) -> None:
    """Remove media (files, or every file under a folder) from the index."""
    request = RemoveRequest(**request_values(RemoveRequest, options))
    n = open_engine(index).remove(request.paths)
    click.echo(f"removed {n} media")


def with_progress(label: str, quiet: bool, job, lazy: bool = False):
    """job(progress) under a rich progress bar (none when `quiet`); what job returns.

    With `lazy` the bar is drawn at the job's first report only (a total of 0 there means not known yet).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), disable=quiet)
    task = bar.add_task(label, total=None)

    def progress(done: int, total: int) -> None:
        if not bar.live.is_started:
            bar.start()
        bar.update(task, completed=done, total=total or None)

    if not lazy:
        bar.start()
    try:
        return job(progress)
    finally:
        if bar.live.is_started:  # stopping a bar never drawn would still print a blank line
            bar.stop()


@main.command()
@index_option
@click.option("--target-rows", default=None, type=click.IntRange(1), help="Rows per merged batch file (65536).")
@click.option("--json", "as_json", is_flag=True)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def compact(index, target_rows, as_json, quiet) -> None:
    """Merge small batch files into larger ones and drop the rows of removed segments (safe to interrupt)."""
    eng = open_engine(index)
    report = with_progress("compacting", quiet or as_json, lambda progress: eng.compact(target_rows, progress))
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"batch files {report['files_before']} -> {report['files_after']}, {report['rows_dropped']} dead rows "
               f"dropped in {report['seconds']:.1f} s; vector index: {report['vector_index']['action']}")


@main.command()
@index_option
@click.option("--vector-index", default=None, metavar="auto|flat|hnsw|ivfpq|FACTORY",
              help="Rebuild as this kind of vector index (recorded; queries then use it). Default: the index's own.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def rebuild(index, vector_index, as_json, quiet) -> None:
    """Rebuild the vector index from the stored embeddings (e.g. to change its type, or retrain it)."""
    eng = open_engine(index)
    report = with_progress("adding vectors", quiet or as_json, lambda progress: eng.rebuild(vector_index, progress))
    if as_json:
        click.echo(json.dumps(report))
        return
    built = report["factory"] or "none yet (too few vectors to train; search stays exact)"
    click.echo(f"vector index {built}: {report['vectors']} vectors in {report['seconds']:.1f} s")
