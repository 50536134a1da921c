"""One registry type for everything chosen by name: backbones, training architectures, text encoders,
fusion methods and shot detectors.

    DETECTORS = Registry("shot detector", MediaError)

    @DETECTORS.register("builtin", streaming=True)
    def builtin(fps: float) -> ShotDetector: ...

    DETECTORS.get("builtin")(25.0)

Names are kept in registration order (the order of the defining module, which is the order the docs
list them); `sorted(registry)` gives them alphabetically. Registering a name twice is a programming
error and raises `ValueError`, as torchvision's `register_model` does (a silent override would change
which model an index was built with). An unknown name raises the registry's typed error, naming the
close matches, so the CLI and the HTTP API can show it as a message.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from mmindex.errors import MmindexError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object under its name, with what is known about it without building it."""

    name: str
    obj: T
    metadata: dict[str, Any] = field(default_factory=dict)


@functools.cache
def _duplicate_error(error: type[MmindexError]) -> type[Exception]:
    # Both ValueError (torchvision's choice) and the registry's own type, which callers already catch.
    return type(f"Duplicate{error.__name__}", (error, ValueError), {"__module__": __name__})


class Registry(Generic[T]):
    """Objects of one kind by name; `kind` ("text encoder") words the errors, `error` is their type."""

    def __init__(self, kind: str, error: type[MmindexError] = MmindexError):
        self.kind, self.error = kind, error
        self._entries: dict[str, Entry[T]] = {}

    def add(self, name: str, obj: T, **metadata: Any) -> T:
        """Register `obj` under `name` with its metadata and return it; a duplicate name raises ValueError."""
        if name in self._entries:
            raise _duplicate_error(self.error)(f"{self.kind} {name!r} is already registered")
        self._entries[name] = Entry(name, obj, metadata)
        return obj

    def register(self, name: str | None = None, **metadata: Any) -> Callable[[T], T]:
        """Decorator: register a function or class under `name` (default: its `__name__`), unchanged."""

        def decorate(obj: T) -> T:
            return self.add(name or obj.__name__, obj, **metadata)  # type: ignore[attr-defined]

        return decorate

    def entry(self, name: str) -> Entry[T]:
        """The entry for `name`; the registry's error, naming close matches and the known names, if none."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self._unknown(name) from None

    def get(self, name: str) -> T:
        """The object registered under `name` (see `entry` for the error)."""
        return self.entry(name).obj

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        """Registered entries, in registration order."""
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"

    def _unknown(self, name: object) -> MmindexError:
        wanted = str(name).lower()
        close = difflib.get_close_matches(wanted, list(self._entries), n=5, cutoff=0.6)
        # Best first; equally close names alphabetically (difflib breaks ties in reverse order).
        close.sort(key=lambda c: (-difflib.SequenceMatcher(None, wanted, c).ratio(), c))
        hint = f"; did you mean: {', '.join(close)}" if close else ""
        exc = self.error(f"unknown {self.kind} {name!r}{hint}; known {self.kind}s: {', '.join(sorted(self))}")
        exc.suggestions = close  # type: ignore[attr-defined]  # for an API answer, as UnknownConcept has
        return exc
