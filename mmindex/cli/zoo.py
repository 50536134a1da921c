"""The ILSVRC task and the model zoo: classify, evaluate-ilsvrc, models list / describe / plot."""

from __future__ import annotations

import json
import sys

import click

from mmindex.cli.choices import RegistryChoice
from mmindex.cli.common import ModelChoice, device_option, main
from mmindex.config import DEFAULT_MODEL
from mmindex.errors import MediaError


def _weights(value: str) -> str | None:
    return None if value == "random" else value


_model_option = click.option("--model", type=ModelChoice(), default=DEFAULT_MODEL,
                             show_default=True, metavar="NAME", help="Registered model (see `mmindex models list`).")
_weights_option = click.option("--weights", default="default", show_default=True,
                               help="default (the model's published weights), random, or a weights file or URL.")


def _progress(label: str, disable: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=disable)


def _report_errors(errors: list[tuple[str, str]]) -> None:
    for path, why in errors[:20]:
        click.echo(f"  skipped: {path}: {why}", err=True)
    if len(errors) > 20:
        click.echo(f"  ... and {len(errors) - 20} more skipped", err=True)


@main.command()
@click.argument("paths", nargs=-1, required=True)
@_model_option
@_weights_option
@click.option("--top", default=5, show_default=True, type=click.IntRange(1, 1000), help="Categories per image / shot.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, 4096))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Decoding threads.")
@click.option("--runtime", "backend", type=click.Choice(["auto", "onnx", "torch"]), default="auto", show_default=True)
@device_option
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default="fp32", show_default=True,
              help="int8: the statically quantized model `add --precision int8` runs (default weights only).")
@click.option("--shots", default="builtin", show_default=True, type=RegistryChoice("mmindex.media.shots:DETECTORS"),
              help="Shot detector that cuts a video into shots: builtin, or transnetv2 (needs mmindex[shots]).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def classify(paths, model, weights, top, batch_size, workers, backend, device, precision, shots, as_json,
             quiet) -> None:
    """The ILSVRC task: rank the 1000 ImageNet categories of each image (each shot of a video), best first.

    PATHS are files and folders (scanned recursively). Files that cannot be read are reported and skipped.
    """
    from mmindex.extract.classify import classify_paths, make_runtime  # deferred: `mmindex --help` stays fast

    # A bad model, weights or device fails before the bar shows.
    runtime = make_runtime(model, _weights(weights), backend, device=device, precision=precision)
    with _progress("classifying", quiet or as_json) as bar:
        task = bar.add_task("classify", total=None)
        report = classify_paths(paths, top=top, batch_size=batch_size, workers=workers, backend=backend,
                                runtime=runtime, shots=shots,
                                progress=lambda done, total: bar.update(task, completed=done, total=total))
    if not report.results and not report.errors:
        raise MediaError(f"no image or video under {', '.join(paths)}")
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        for r in report.results:
            click.echo(r.path)
            for s in r.segments:
                if s.start is not None:
                    click.echo(f"  shot {s.start:.2f}–{s.end:.2f} s")
                indent = "    " if s.start is not None else "  "
                for i, c in enumerate(s.top, 1):
                    click.echo(f"{indent}{i}. {c.probability:.4f}  {c.wnid}  {c.name}")
        click.echo(f"{len(report.results)} files classified by {report.model} ({report.backend}) in "
                   f"{report.seconds:.1f} s" + (f"; {len(report.errors)} skipped" if report.errors else ""))
    _report_errors(report.errors)
    if not report.results:
        click.echo("error: no file could be classified", err=True)
        sys.exit(1)


@main.command("evaluate-ilsvrc")
@click.argument("val_dir", type=click.Path(file_okay=False))
@_model_option
@_weights_option
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, 4096))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Decoding threads.")
@click.option("--runtime", "backend", type=click.Choice(["auto", "onnx", "torch"]), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def evaluate_ilsvrc(val_dir, model, weights, batch_size, workers, backend, as_json, quiet) -> None:
    """Top-1 and top-5 error on the ILSVRC2012 validation images in VAL_DIR (ILSVRC2012_val_00000001.JPEG ...)."""
    from mmindex.evaluate.ilsvrc import evaluate_ilsvrc as run  # deferred: `mmindex --help` stays fast

    with _progress("evaluating", quiet or as_json) as bar:
        task = bar.add_task("evaluate", total=None)
        r = run(val_dir, model, weights=_weights(weights), batch_size=batch_size, workers=workers, backend=backend,
                progress=lambda done, total: bar.update(task, completed=done, total=total))
    if as_json:
        click.echo(json.dumps(r.to_dict()))
    else:
        click.echo(f"{r.model} on {r.images} ILSVRC2012 validation images: top-1 error {r.top1_error:.4f}, "
                   f"top-5 error {r.top5_error:.4f} ({r.seconds:.1f} s)")
        if r.skipped:
            click.echo(f"  {len(r.skipped)} files left out: not ILSVRC2012 validation file names", err=True)
    _report_errors(r.errors)


@main.group()
def models() -> None:
    """The model zoo: list the registered networks, count their layers, plot the revolution of depth."""


def _error(acc: float | None) -> str:
    return "—" if acc is None else f"{100 - acc:.2f}"


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def list_(as_json) -> None:
    """Every registered architecture: depth, parameters, multiply-adds at its input size, weights, published error."""
    from mmindex.models import list_models, model_info  # deferred: `mmindex --help` stays fast
    from mmindex.models.describe import describe_model  # deferred: `mmindex --help` stays fast
    from mmindex.models.registry import get_entry  # deferred: `mmindex --help` stays fast
    from mmindex.models.weights import weights_availability  # deferred: `mmindex --help` stays fast

    rows = []
    for name in list_models():
        info = model_info(name)
        d = describe_model(name)
        rows.append({**info, "weighted_layers": d.weighted_layers, "macs": d.macs,
                     "weights_status": weights_availability(get_entry(name).default_weights),
                     "top1_error": None if info["top1"] is None else round(100 - info["top1"], 3),
                     "top5_error": None if info["top5"] is None else round(100 - info["top5"], 3)})
    if as_json:
        click.echo(json.dumps({"models": rows}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("model", "depth", "params", "GMACs", "input", "weights", "top-1 err %", "top-5 err %",
                  title="Registered models (published ILSVRC-2012 validation error; sources: --json or docs/zoo.md)")
    for r in rows:
        table.add_row(r["name"], str(r["depth"] or "—"), f"{r['params'] / 1e6:.1f} M", f"{r['macs'] / 1e9:.2f}",
                      str(r["input_size"]), r["weights_status"], _error(r["top1"]), _error(r["top5"]))
    Console(width=max(120, Console().width)).print(table)


@models.command()
@click.argument("name")
@click.option("--input", "input_shape", default=None, metavar="CxHxW",
              help="Input shape (default: the model's own, e.g. 3x224x224).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def describe(name, input_shape, as_json) -> None:
    """Per-layer output shape, units, weights (without / with biases) and connections of model NAME."""
    from mmindex.models.describe import describe_model, parse_input  # deferred: `mmindex --help` stays fast

    d = describe_model(name, parse_input(input_shape) if input_shape else None)
    if as_json:
        click.echo(json.dumps(d.to_dict()))
        return
    from rich.console import Console
    from rich.table import Table

    c, h, w = d.input_shape
    table = Table("layer", "module", "type", "output", "units", "weights", "with biases", "connections",
                  title=f"{d.model} at {c}x{h}x{w}")
    for r in d.layers:
        table.add_row(r.label, r.name, r.kind, "×".join(map(str, r.output_shape)), f"{r.units:,}",
                      f"{r.weights:,}" if r.weights_with_biases else "", f"{r.weights_with_biases:,}" if
                      r.weights_with_biases else "", f"{r.connections:,}" if r.connections else "")
    console = Console(width=max(130, Console().width))
    console.print(table)
    console.print(f"{d.weighted_layers} conv/fc layers, {d.params:,} parameters, "
                  f"{d.macs:,} connections = multiply-adds per image ({d.macs / 1e9:.2f} G)")


@models.command()
@click.option("--out", "-o", "out", default="depth.png", show_default=True, type=click.Path(dir_okay=False))
def plot(out) -> None:
    """Draw the "revolution of depth" chart: ILSVRC winners' top-5 error against depth and year (PNG)."""
    from mmindex.evaluate.depth import plot_depth_chart  # deferred: `mmindex --help` stays fast

    click.echo(f"wrote {plot_depth_chart(out)}")
