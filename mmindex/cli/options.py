"""Click options made from a request's fields (mmindex/search/requests.py), so that the CLI offers what the
HTTP API offers: a tuple field is a repeatable option, a bool a flag, a field with a registry a choice of its
registered names, an int with limits an `IntRange`; the help is the field's.

    @main.command()
    @request_options(SearchRequest)
    def search(**options): SearchRequest(**request_values(SearchRequest, options))
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any

import click

from mmindex.cli.choices import RegistryChoice


def request_options(cls: type) -> Callable[[Callable], Callable]:
    """A decorator adding one option per field of the request dataclass `cls`, in the fields' order."""
    hints = typing.get_type_hints(cls)
    options = [field_option(f, hints[f.name]) for f in dataclasses.fields(cls)]

    def decorate(command: Callable) -> Callable:
        for option in reversed(options):  # click.option stacks: the last applied is listed first
            command = option(command)
        return command

    return decorate


def request_values(cls: type, options: dict[str, Any]) -> dict[str, Any]:
    """Take the request's fields out of a command's keyword arguments (the rest stay in `options`)."""
    return {f.name: options.pop(f.name) for f in dataclasses.fields(cls)}


def field_option(f: dataclasses.Field, kind: Any) -> Callable[[Callable], Callable]:
    """The click option of one request field."""
    meta = f.metadata
    flags = list(meta.get("flags", (f"--{f.name.replace('_', '-')}",)))
    if kind is bool:
        return click.option(*flags, f.name, is_flag=True, default=f.default, help=meta.get("help"))
    if typing.get_origin(kind) is tuple:
        return click.option(*flags, f.name, multiple=True, help=meta.get("help"))
    if "registry" in meta:
        kind = RegistryChoice(meta["registry"])
    elif "min" in meta or "max" in meta:
        kind = click.IntRange(meta.get("min"), meta.get("max")) if kind is int else click.FloatRange(
            meta.get("min"), meta.get("max"))
    return click.option(*flags, f.name, type=kind, default=f.default, show_default=True, help=meta.get("help"))
