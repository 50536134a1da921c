"""`mmindex info`: what an index holds and what searching it costs (the Searcher's `info`)."""

from __future__ import annotations

import os
from pathlib import Path

from mmindex.index import vectors
from mmindex.index.snapshot import Snapshot
from mmindex.index.store import Store
from mmindex.index.vector_settings import LEGACY_SETTING, describe_auto, normalise
from mmindex.index.vectors import VectorIndex


def describe(index_dir: Path, store: Store, snap: Snapshot, index: VectorIndex, detectors: list[dict]) -> dict:
    """Counts of media, segments and concepts, the model, batch files, the vector index, memory and disk use,
    every recorded error, and the detectors.

    `memory` is what searching costs, with the arrays and the vector index loaded: `rss_bytes` this process's
    resident memory, `mapped_bytes` the files mapped (shared with the page cache), `resident_bytes` what the
    arrays and indexes hold in this process's own memory. `vector_index` has the recorded `setting`, and for
    `auto` its rule and what it is now (`auto`), besides what `VectorIndex.describe` says.
    """
    described = index.describe()
    file_bytes = (index_dir / vectors.FOLDER / described["file"]).stat().st_size if described["file"] else 0
    index_mapped = file_bytes if described["mapped"] else 0
    setting = normalise(store.meta("vector_index") or LEGACY_SETTING)
    embed_dim = int(store.meta("embed_dim") or 0)
    vector_index = {"setting": setting, **described, "file_bytes": file_bytes}
    if setting == "auto":
        vector_index["auto"] = describe_auto(len(snap.ids), embed_dim)
    return {
        "index": str(index_dir),
        **store.counts(),
        "models": [store.meta("model")],
        "precision": store.meta("precision") or "fp32",  # indexes made before issue 20 are fp32
        "embed_dim": embed_dim,
        "batch_files": store.batch_files(),
        "vector_index": vector_index,
        "memory": {"rss_bytes": _rss_bytes(), "mapped_bytes": snap.mapped_bytes() + index_mapped,
                   "resident_bytes": snap.resident_bytes() + len(index.pending) * snap.embeddings.shape[1] * 4
                   + (0 if described["mapped"] else file_bytes)},
        "disk": store.disk_usage(),
        "disk_bytes": store.disk_bytes(),
        "errors": store.errors(),
        "detectors": detectors,
    }


def _rss_bytes() -> int:
    """This process's resident memory (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
