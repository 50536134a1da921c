"""mmindex: deep-learning multimedia indexing and retrieval.

The Python API is the `Engine` facade: `Engine(index_dir).add(paths)`, `.search(...)`, `.info()`.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Engine", "Hit", "IngestConfig", "__version__"]


def __getattr__(name: str):
    # Imported lazily so that `mmindex --help` does not pay for numpy, FAISS and PyTorch.
    if name in ("Engine", "Hit"):
        from mmindex import engine  # deferred: `import mmindex` stays light

        return getattr(engine, name)
    if name == "IngestConfig":
        from mmindex.config import IngestConfig  # deferred: `import mmindex` stays light

        return IngestConfig
    raise AttributeError(name)
