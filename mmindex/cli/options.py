"""Click options made from a request's fields (mmindex/search/requests.py), so that the CLI offers what the
HTTP API offers: a tuple field is a repeatable option (or an argument taking several values), a bool a flag, a
field with a registry a choice of its registered names, a number with limits an `IntRange` (of each item, for a
tuple), a field without a default a required one; the help is the field's.

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
from mmindex.search.requests import value_type


def request_options(cls: type) -> Callable[[Callable], Callable]:
    """A decorator adding one option (or argument) per field of the request dataclass `cls`, in the fields'
    order."""
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
    """The click option (or argument, with `argument` in the metadata) of one request field."""
    meta = f.metadata
    required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    many = typing.get_origin(kind) is tuple
    item = typing.get_args(kind)[0] if many else value_type(kind)
    param_type = _click_type(meta, item)
    if meta.get("argument"):
        return click.argument(f.name, nargs=-1 if many else 1, required=required, type=param_type)
    flags = list(meta.get("flags", (f"--{f.name.replace('_', '-')}",)))
    if item is bool:
        return click.option(*flags, f.name, is_flag=True, default=f.default, help=meta.get("help"))
    if many:
        return click.option(*flags, f.name, multiple=True, required=required, type=param_type, help=meta.get("help"))
    return click.option(*flags, f.name, type=param_type, required=required, show_default=True,
                        default=None if required else f.default, help=meta.get("help"))


def _click_type(meta: typing.Mapping[str, Any], kind: Any) -> Any:
    if "registry" in meta:
        return RegistryChoice(meta["registry"])
    if meta.get("path"):
        return click.Path()
    if "min" in meta or "max" in meta:
        if kind is int:
            return click.IntRange(meta.get("min"), meta.get("max"))
        return click.FloatRange(meta.get("min"), meta.get("max"), min_open=meta.get("min_open", False))
    return kind
