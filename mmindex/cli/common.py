"""What every command group shares: the `main` group, the `--index` option, the Engine and result printing."""

from __future__ import annotations

import json
import os
import sqlite3
import sys

import click

from mmindex.cli.choices import RegistryChoice
from mmindex.errors import MmindexError, missing_extra


class _Group(click.Group):
    """Turns library errors into a one-line message and exit status 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MmindexError as exc:
            click.echo(f"error: {printable(str(exc))}", err=True)
            sys.exit(1)
        except sqlite3.DatabaseError as exc:  # one the store did not name: damage it did not expect
            click.echo(f"error: the index database failed ({exc}); run `mmindex check`", err=True)
            sys.exit(1)
        except ImportError as exc:  # an optional extra that is not installed (PyTorch, MiniLM): say which
            if missing_extra(exc) is None:
                raise
            click.echo(f"error: {missing_extra(exc)}", err=True)
            sys.exit(1)


def printable(text: str) -> str:
    """Text for the terminal: the bytes of a file name that is not UTF-8 (which Python holds as lone
    surrogates) escaped as `caf\\xe9`, where printing the str as it is would raise UnicodeEncodeError.
    JSON output needs none of this: `json.dumps` escapes them (\\udce9) and `os.fsencode` undoes it."""
    try:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no file name decodes to
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


class ModelChoice(RegistryChoice):
    """`--model NAME`: a registered backbone. A name whose ONNX export is cached with its sidecar
    (models/exports.py) is accepted as it is: listing the registry imports PyTorch and timm (the backbones
    register themselves when their module is imported), which a run from the cache never needs. So is an
    EfficientNet-Lite where PyTorch is not installed: its graph is built without it (models/lite_graph.py)."""

    def __init__(self):
        super().__init__("mmindex.models:list_models")

    def convert(self, value, param, ctx):
        import importlib.util

        from mmindex.models import lite_graph  # deferred: `mmindex --help` stays fast
        from mmindex.models.exports import find

        if isinstance(value, str) and (find(value) is not None or (
                value in lite_graph.SIZES and importlib.util.find_spec("torch") is None)):
            return value
        return super().convert(value, param, ctx)


def index_option(f):
    return click.option(
        "--index", "index", type=click.Path(file_okay=False), default=None, envvar="MMINDEX_INDEX",
        help="Index folder (default: $MMINDEX_INDEX, else ~/.local/share/mmindex/index).",
    )(f)


def device_option(f):
    """`--device`: where the model runs (models/devices.py)."""

    def check(ctx, param, value):
        from mmindex.models import devices  # deferred: `mmindex --help` stays fast

        try:
            return devices.check(value)
        except MmindexError as exc:
            raise click.BadParameter(str(exc)) from None

    return click.option("--device", default="auto", show_default=True, callback=check, metavar="auto|cpu|cuda[:N]",
                        help="Where the model runs: a CUDA GPU when one answers, else the CPU (ONNX Runtime needs "
                             "its GPU build, onnxruntime-gpu; PyTorch its CUDA build).")(f)


def open_engine(index, config=None, **options):
    from mmindex import Engine  # deferred: `mmindex --help` stays fast

    return Engine(index, config, **options)


@click.group(cls=_Group)
@click.version_option(package_name="mmindex")
def main() -> None:
    """Index image and video collections with deep networks and search them."""


def echo_concept_names(report: dict) -> None:
    """After `apply` or `teach`: the name that queries each of the detector's concepts, and which built-in
    concepts those names now hide."""
    for c in report["concepts"]:
        click.echo(f"  --concept {c['query']!r}" + ("" if c["query"] == c["name"] else
                                                     f"  ({c['name']!r} names another detector's concept)"))
    for message in report["messages"]:
        click.echo(message)


def _mapped(criterion: dict) -> str:
    """A text criterion's parse and concepts for the table: '  read as "dog on a beach" → (dog: dog (1.00)) AND
    (beach: seashore (0.63), ...)'; other criteria: ''."""
    def concepts(found: list[dict]) -> str:  # those that show in two decimals
        return ", ".join(f"{m['name']} ({m['weight']:.2f})" for m in found if m["weight"] >= 0.005)

    parse = criterion.get("parse") or {}
    parts = parse.get("parts") or []
    mapped = (" AND ".join(f"({p['text']}: {concepts(p['concepts'])})" for p in parts)
              or concepts(criterion.get("concepts", [])))
    read = f'  read as "{parse["read_as"]}"' if parse.get("read_as") else ""
    ignored = f"  (left out: {', '.join(parse['ignored'])})" if parse.get("ignored") else ""
    return read + (f"  → {mapped}" if mapped else "") + ignored


def emit_hits(hits, as_json: bool, explain: bool) -> None:
    """Print results: JSON {"hits": [...]} (then "explain" with --explain, "message" when empty for a
    reason), or a table. A reason for no hits also goes to stderr."""
    message = getattr(hits, "message", None)
    if message:
        click.echo(f"no hits: {message}", err=True)
    if as_json:
        doc = {"hits": [h.to_dict() for h in hits]}
        if explain:
            doc["explain"] = getattr(hits, "explanation", {})
        if message:
            doc["message"] = message
        click.echo(json.dumps(doc))
        return
    if explain:
        for c in getattr(hits, "explanation", {}).get("criteria", []):
            click.echo(f"{c['label']}  weight {c['weight']:g}" + _mapped(c))
    from rich.console import Console
    from rich.table import Table

    table = Table("#", "score", "segment", "time")
    table.add_column("path", overflow="fold")
    for i, h in enumerate(hits, 1):
        when = "" if h.start is None else f"{h.start:.2f}–{h.end:.2f} s"
        table.add_row(str(i), f"{h.score:.4f}", str(h.segment_id), when, printable(h.path))
        if h.why:
            table.add_row("", "", "", "", "  " + ", ".join(f"{k} = {v:.4f}" for k, v in h.why.items()))
        if h.parts and len(h.parts) > 1:
            table.add_row("", "", "", "", "  share: " + ", ".join(f"{k} {v:+.4f}" for k, v in h.parts.items()))
        if h.then:  # a temporal query's chain: each later step's shot
            table.add_row("", "", "", "", "  then " + " → ".join(
                f"#{c['segment_id']} {c['start']:.2f}–{c['end']:.2f} s ({c['score']:.3f})" for c in h.then))
        if h.matches is not None:
            table.add_row("", "", "", "", f"  {h.matches} matching segment{'s' * (h.matches != 1)} in this file")
    Console().print(table if hits else "no hits")
