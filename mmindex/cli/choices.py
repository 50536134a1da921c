"""Click choices read from a registry (mmindex/registry.py), so that the CLI offers exactly what is registered.

The registry is imported on first use, not when the CLI starts: the sequence and clip architectures live in
modules that import PyTorch, and `mmindex --help` should not pay for that.

    @click.option("--fusion", type=RegistryChoice("mmindex.search.fusion:METHODS"), default="combsum")
    @click.option("--model", type=RegistryChoice("mmindex.models:list_models"), metavar="NAME")

The attribute is a registry, or a function returning its names (the backbones register themselves when their
module is imported, which `list_models` does). A `metavar` keeps a long list of names out of `--help`.
"""

from __future__ import annotations

import importlib

import click


class RegistryChoice(click.Choice):
    """A `click.Choice` whose choices are the names of the registry (or of the function returning them) at
    `"module:attribute"`, read lazily."""

    def __init__(self, where: str, case_sensitive: bool = True):
        self.where = where
        self.case_sensitive = case_sensitive
        self._choices: tuple[str, ...] | None = None

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        if self._choices is None:
            module, _, attribute = self.where.partition(":")
            names = getattr(importlib.import_module(module), attribute)
            self._choices = tuple(names() if callable(names) else names)
        return self._choices

    @choices.setter
    def choices(self, value) -> None:
        self._choices = tuple(value)
