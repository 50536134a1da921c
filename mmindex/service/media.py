"""Which files the service may read, and the thumbnails it makes of segments.

The rule for serving a file: it must be a media path recorded in the index (clients name segments by
id, never by path), and its *real* path, symlinks resolved, must lie inside one of the media roots.
A file swapped for a symlink to /etc/passwd after indexing is therefore refused (403), and a path
that no longer exists is 404. The roots are the folders given to `serve --media-root`, or else the
folders that hold the indexed media.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from mmindex.atomic import write_bytes
from mmindex.media.thumbnails import thumbnail_jpeg

log = logging.getLogger(__name__)


class Forbidden(Exception):
    """A path outside the media roots (403)."""


class Missing(Exception):
    """A path that does not exist or is not a regular file (404)."""


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class MediaRoots:
    """The folders media may be read from and added from.

    `media_paths` lists the indexed media paths; it is called again only when `generation` changes.
    """

    def __init__(self, configured: Sequence[str], media_paths: Callable[[], Iterable[str]]):
        self._configured = [os.path.abspath(os.path.expanduser(r)) for r in configured]
        self._media_paths = media_paths
        self._derived: tuple[int, list[str]] | None = None
        self._lock = threading.Lock()

    def roots(self, generation: int) -> list[str]:
        """Lexical (absolute, normalised) root folders."""
        if self._configured:
            return self._configured
        with self._lock:
            if self._derived is None or self._derived[0] != generation:
                folders = sorted({os.path.dirname(p) for p in self._media_paths()})
                minimal: list[str] = []
                for f in folders:  # sorted, so a folder's ancestors come before it
                    if not any(_inside(f, m) for m in minimal):
                        minimal.append(f)
                self._derived = (generation, minimal)
            return self._derived[1]

    def containing(self, paths: Iterable[str], generation: int) -> list[str]:
        """The roots that hold `paths` (lexically): the folders an add of `paths` is confined to."""
        return [r for r in self.roots(generation) if any(_inside(p, r) for p in paths)]

    def check(self, path: str, generation: int, must_exist: bool = True) -> str:
        """The real path to open for `path`, or Forbidden / Missing.

        `path` must be absolute and free of `..`; lexically and after resolving symlinks it must be
        inside the same root.
        """
        if not os.path.isabs(path) or os.path.normpath(path) != path:
            raise Forbidden(f"not an absolute, normalised path: {path!r}")
        real = os.path.realpath(path)
        for root in self.roots(generation):
            if _inside(path, root) and _inside(real, os.path.realpath(root)):
                break
        else:
            raise Forbidden("outside the media roots")
        if must_exist and not os.path.isfile(real):
            raise Missing("media file is missing")
        return real


class Thumbnails:
    """JPEG thumbnails of segments, cached as `<cache>/<segment id>-<size>.jpg`.

    Segment ids are never reused (a changed file gets new segments), so a cached thumbnail never goes
    stale. Files are written under a temporary name and renamed, so a reader never sees half of one.
    Without a writable cache folder they are made on every request.
    """

    def __init__(self, cache: Path | None, size: int = 320, max_pixels: int = 89_478_485):
        self.size = size
        self.max_pixels = max_pixels
        self.cache = cache
        if cache is not None:
            try:
                cache.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                log.warning("thumbnail cache %s is not writable (%s); thumbnails will not be cached", cache, exc)
                self.cache = None

    def get(self, segment_id: int, real_path: str, kind: str, start: float | None, end: float | None) -> bytes:
        """The thumbnail's JPEG bytes. Raises MediaError when the media cannot be decoded."""
        cached = self.cache / f"{segment_id}-{self.size}.jpg" if self.cache is not None else None
        if cached is not None:
            try:
                return cached.read_bytes()
            except FileNotFoundError:
                pass
        data = thumbnail_jpeg(real_path, kind, start, end, self.size, self.max_pixels)
        if cached is not None:
            self._write(cached, data)
        return data

    def _write(self, target: Path, data: bytes) -> None:
        try:
            write_bytes(target, data)  # concurrent writers of the same thumbnail both succeed
        except OSError as exc:
            log.warning("cannot cache thumbnail %s: %s", target, exc)
