"""FastAPI parameters and JSON bodies made from a request's fields (mmindex/search/requests.py), as
mmindex/cli/options.py makes the CLI's options from them: a tuple field is a repeatable parameter (a list in a
body), a field with a registry an enum of its registered names, limits become `ge`/`le` (of each item, for a
tuple), a field without a default is required; a field's `http` metadata gives what differs on the web (another
default, the parameter's name, the limits of a string, of a list and of its items, a description, and `"in":
"path"` for a part of the URL's path, `GET /api/concepts/{name}/proposals`).

`request_dependency(SearchRequest, Query)` is a dependency whose signature FastAPI reads (so the parameters
are validated and documented in /openapi.json like hand-written ones) and which returns the request.
`request_model(FeedbackRequest, "FeedbackIn")` is a pydantic model of a JSON body with the same fields, and
`request_from(FeedbackRequest, body)` the request it carries.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, create_model

from mmindex.search.requests import value_type


class StrictBody(BaseModel):
    """A JSON body taken as written: no "1" for 1, no false for 0."""

    model_config = ConfigDict(strict=True)


def request_dependency(cls: type, source: Callable[..., Any], overrides: dict[str, dict] | None = None,
                       only: Iterable[str] | None = None) -> Callable[..., Any]:
    """A dependency taking `cls`'s fields (or the `only` ones) as parameters of `source` (`fastapi.Query` or
    `fastapi.Form`) and returning a `cls`; `overrides` replace a field's metadata, e.g. {"k": {"max": 500}}.
    A field left out keeps its default."""
    params = []
    for f, (annotation, default) in _annotations(cls, source, overrides, only).items():
        default = inspect.Parameter.empty if default is ... else default
        params.append(inspect.Parameter(f, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation))

    def dependency(**values: Any) -> Any:
        return _request(cls, values)

    dependency.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    dependency.__name__ = f"{cls.__name__}_{source.__name__.lower()}"
    return dependency


def request_model(cls: type, name: str, overrides: dict[str, dict] | None = None, base: type[BaseModel] = StrictBody,
                  doc: str | None = None) -> type[BaseModel]:
    """A pydantic model `name` of a JSON body holding `cls`'s fields (after `base`'s own, if it has any);
    `overrides` as for `request_dependency`; `doc` the schema's description."""
    definitions: dict[str, Any] = dict(_annotations(cls, Field, overrides))
    return create_model(name, __base__=base, __doc__=doc, __module__=__name__, **definitions)


def request_from(cls: type, body: BaseModel) -> Any:
    """The request a body of `request_model(cls, ...)` carries."""
    return _request(cls, {f.name: getattr(body, f.name) for f in dataclasses.fields(cls)})


def http_name(f: dataclasses.Field) -> str:
    """The name of a field over HTTP: its `alias` (`GET /api/concepts?q=`), else its own."""
    return f.metadata.get("http", {}).get("alias", f.name)


def _request(cls: type, values: dict[str, Any]) -> Any:
    return cls(**{name: tuple(v) if isinstance(v, list) else v for name, v in values.items()})


def _annotations(cls: type, source: Callable[..., Any], overrides: dict[str, dict] | None,
                 only: Iterable[str] | None = None) -> dict[str, tuple[Any, Any]]:
    """Each chosen field's annotation (with `source`'s validation and documentation) and default (... when it
    is required)."""
    hints = typing.get_type_hints(cls)
    chosen = None if only is None else set(only)
    return {f.name: _annotation(f, hints[f.name], source, (overrides or {}).get(f.name, {}))
            for f in dataclasses.fields(cls) if chosen is None or f.name in chosen}


def _annotation(f: dataclasses.Field, kind: Any, source: Callable[..., Any], override: dict) -> tuple[Any, Any]:
    meta = {**f.metadata, **f.metadata.get("http", {}), **override}
    if meta.get("in") == "path":
        source = Path
    required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    default = ... if required else meta.get("default", [] if f.default is dataclasses.MISSING else f.default)
    text = {k: meta[k] for k in ("min_length", "max_length", "pattern") if k in meta}
    numbers = {k: meta[key] for k, key in (("gt" if meta.get("min_open") else "ge", "min"), ("le", "max"))
               if key in meta}
    described = {"description": meta.get("help"), **({"alias": meta["alias"]} if "alias" in meta else {})}
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        if text or numbers:
            item = Annotated[item, Field(**text, **numbers)]
        sizes = {k: meta[key] for k, key in (("min_length", "min_items"), ("max_length", "max_items")) if key in meta}
        return Annotated[list[item], source(**sizes, **described)], default if required else list(default)
    if default is not None:  # `int | None` with a default of 24 here: null is no value to send
        kind = value_type(kind)
    if "registry" in meta:
        module, _, attribute = meta["registry"].partition(":")
        kind = Literal[tuple(getattr(importlib.import_module(module), attribute))]
    return Annotated[kind, source(**numbers, **text, **described)], default
