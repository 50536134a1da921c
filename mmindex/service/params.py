"""FastAPI parameters made from a request's fields (mmindex/search/requests.py), as mmindex/cli/options.py makes
the CLI's options from them: a tuple field is a repeatable parameter, a field with a registry an enum of its
registered names, limits become `ge`/`le`; a field's `http` metadata gives what differs on the web (another
default, the limits of a list's items, a description).

`request_dependency(SearchRequest, Query)` is a dependency whose signature FastAPI reads (so the parameters
are validated and documented in /openapi.json like hand-written ones) and which returns the request.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal

from pydantic import Field


def request_dependency(cls: type, source: Callable[..., Any], overrides: dict[str, dict] | None = None,
                       only: Iterable[str] | None = None) -> Callable[..., Any]:
    """A dependency taking `cls`'s fields (or the `only` ones) as parameters of `source` (`fastapi.Query` or
    `fastapi.Form`) and returning a `cls`; `overrides` replace a field's metadata, e.g. {"k": {"max": 500}}.
    A field left out keeps its default."""
    hints = typing.get_type_hints(cls)
    chosen = [f for f in dataclasses.fields(cls) if only is None or f.name in set(only)]
    params = [_parameter(f, hints[f.name], source, (overrides or {}).get(f.name, {})) for f in chosen]

    def dependency(**values: Any) -> Any:
        return cls(**{name: tuple(v) if isinstance(v, list) else v for name, v in values.items()})

    dependency.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    dependency.__name__ = f"{cls.__name__}_{source.__name__.lower()}"
    return dependency


def _parameter(f: dataclasses.Field, kind: Any, source: Callable[..., Any], override: dict) -> inspect.Parameter:
    meta = {**f.metadata, **f.metadata.get("http", {}), **override}
    default = meta.get("default", [] if f.default is dataclasses.MISSING else f.default)
    if typing.get_origin(kind) is tuple:
        (item, _) = typing.get_args(kind)
        limits = {k: meta[k] for k in ("min_length", "max_length", "pattern") if k in meta}
        annotation: Any = Annotated[list[Annotated[item, Field(**limits)]] if limits else list[item],
                                    source(max_length=meta.get("max_items"), description=meta.get("help"))]
        return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=list(default), annotation=annotation)
    if "registry" in meta:
        module, _, attribute = meta["registry"].partition(":")
        kind = Literal[tuple(getattr(importlib.import_module(module), attribute))]
    annotation = Annotated[kind, source(ge=meta.get("min"), le=meta.get("max"), description=meta.get("help"))]
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
