"""Walk files and folders, pick the media files, and report what cannot be read.

The scan never raises on bad input: an unreadable folder, a broken symlink or a symlink loop
becomes a `ScanItem` with an error, so that the run goes on and the error is recorded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov"})
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS


@dataclass(frozen=True)
class ScanItem:
    """A file found by the scan, or a path that could not be scanned (`error` is set)."""

    path: str
    error: str | None = None


def media_kind(path: str | os.PathLike) -> str | None:
    """'image' or 'video' from the file name's extension, None for anything else."""
    ext = os.path.splitext(str(path))[1].lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return None


def scan(paths: Iterable[str | os.PathLike], confine_to: Iterable[str | os.PathLike] | None = None
         ) -> Iterator[ScanItem]:
    """Yield the media files under `paths`, recursively, each once, in a stable order.

    A file named explicitly is yielded whatever its extension (the decoder decides); files met
    while walking a folder are yielded only when their extension is a known media type.
    With `confine_to` (folders), a path or symbolic link whose real path lies outside all of them is
    not followed: it becomes an error item (the HTTP API confines writes to its media roots this way).
    """
    seen_files: set[str] = set()
    inside = _confinement(confine_to)
    for raw in paths:
        path = os.path.abspath(os.fspath(raw))
        if inside is not None and os.path.lexists(path) and not inside(path):
            yield ScanItem(path, OUTSIDE)
        elif os.path.isdir(path):
            yield from _walk(path, seen_files, inside)
        elif os.path.islink(path) and not os.path.exists(path):
            yield ScanItem(path, "broken symbolic link")
        elif not os.path.exists(path):
            yield ScanItem(path, "no such file or folder")
        elif path not in seen_files:
            seen_files.add(path)
            yield ScanItem(path)


OUTSIDE = "outside the allowed folders (a symbolic link out of them is not followed)"
LOOP = "symbolic link loop (folder already visited)"


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _confinement(folders: Iterable[str | os.PathLike] | None) -> Callable[[str], bool] | None:
    """None, or a test: does this path's real path (symlinks resolved) lie inside one of `folders`?"""
    if folders is None:
        return None
    real = [os.path.realpath(os.fspath(f)) for f in folders]
    prefixes = tuple(r.rstrip(os.sep) + os.sep for r in real)
    return lambda path: (p := os.path.realpath(path)) in real or p.startswith(prefixes)


def _walk(root: str, seen_files: set[str], inside: Callable[[str], bool] | None = None) -> Iterator[ScanItem]:
    # Real folders already visited, by (device, inode): following symlinks must not loop forever.
    visited: set[tuple[int, int]] = set()
    root_real = os.path.realpath(root)
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
            key = (st.st_dev, st.st_ino)
            if key in visited:
                yield ScanItem(folder, LOOP)
                continue
            visited.add(key)
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            yield ScanItem(folder, f"cannot read folder: {exc.strerror or exc}")
            continue
        subfolders = []
        for entry in entries:
            try:
                if inside is not None and entry.is_symlink() and not inside(entry.path):
                    if entry.is_dir() or media_kind(entry.name):
                        yield ScanItem(entry.path, OUTSIDE)
                elif entry.is_dir():  # follows symlinks; loops are caught by `visited`
                    linked = entry.is_symlink() and _within(os.path.realpath(entry.path), root_real)
                    if linked and _within(os.path.realpath(folder), os.path.realpath(entry.path)):
                        yield ScanItem(entry.path, LOOP)  # a link to this folder or one above it
                    elif not linked:  # a link to a folder of this walk: walked under its own name
                        subfolders.append(entry.path)
                elif entry.is_file():
                    if media_kind(entry.name) and entry.path not in seen_files:
                        seen_files.add(entry.path)
                        yield ScanItem(entry.path)
                elif entry.is_symlink() and media_kind(entry.name):
                    yield ScanItem(entry.path, "broken symbolic link")
            except OSError as exc:
                yield ScanItem(entry.path, f"cannot stat: {exc.strerror or exc}")
        stack.extend(reversed(subfolders))
