"""The index as a table of segments, one Arrow record batch at a time: what notebooks read (`Engine.segments`) and
what `mmindex export` writes (index/export.py).

A `SegmentTable` maps a snapshot of the index when it is made (segment ids, and the batch files memory-mapped) and
reads `batch_size` segments per step: their metadata by id range from SQLite, their rows from the mapped files.
So a million segments never sit in memory at once; what one step holds is batch_size × (1 + D + C) floats at most.

Columns, by what is asked for (`WHAT`):

    segments    segment_id, media_id, path, kind ("image" or "video"), start, end (seconds; null for an image)
    embeddings  embedding: fixed_size_list<float32>[D], the stored (float16) embedding, L2-normalised
    scores      scores: fixed_size_list<float32>[C], each built-in concept's probability (ids in the metadata);
                with a top-k (`scores:5`) instead top_concepts: list<string> (concept ids) and top_scores: list<float32>
    detectors   one float32 column per concept of the detectors applied to or taught in the index, named
                `detector:<concept id>`

`segment_id` is always there. The schema's metadata (`b"mmindex"`, JSON) says what the file holds and how it was
made: the model, its precision and preprocessing, the embedding size, the concept ids of `scores`, the detectors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mmindex.errors import DataError, MmindexError

if TYPE_CHECKING:  # pyarrow is an extra (`pip install 'mmindex[data]'`): imported when a table is read
    import pyarrow as pa

    from mmindex.index.snapshot import Snapshot
    from mmindex.index.store import Store

WHAT = ("segments", "embeddings", "scores", "detectors")
DEFAULT_BATCH = 8192  # segments per record batch: with 1000 scores and 1280-d embeddings, about 75 MB of float32
METADATA_KEY = b"mmindex"
_DETECTOR_PREFIX = "detector:"


def parse_what(what: str | Sequence[str]) -> tuple[tuple[str, ...], int | None]:
    """(parts, top_k) of `segments,embeddings,scores:5`: which parts, and the top-k of `scores` (None: all).
    `DataError` naming the choices for an unknown part or a bad k."""
    items = [w.strip() for w in (what.split(",") if isinstance(what, str) else what) if w.strip()]
    parts, top_k = [], None
    for item in items:
        name, _, k = item.partition(":")
        if name not in WHAT or (k and name != "scores"):
            raise DataError(f"cannot export {item!r}; choose from {', '.join(WHAT)} (scores:K for the top K)")
        if k:
            if not k.isdigit() or int(k) < 1:
                raise DataError(f"scores:K takes a whole number of concepts K >= 1, not {k!r}")
            top_k = int(k)
        parts.append(name)
    if not parts:
        raise DataError(f"nothing to export; choose from {', '.join(WHAT)}")
    return tuple(dict.fromkeys(parts)), top_k


def require_pyarrow():
    """pyarrow, or a `MmindexError` saying how to install it."""
    try:
        import pyarrow as pa
    except ImportError:
        raise MmindexError("tables of segments need pyarrow: pip install 'mmindex[data]'") from None
    return pa


class SegmentTable:
    """A lazy table of the index's segments (see the module docstring): iterate it for `pyarrow.RecordBatch`es,
    or take it whole (`to_arrow`, `to_pandas`) when it is small enough."""

    def __init__(self, store: Store, what: str | Sequence[str] = ("segments",), top_k: int | None = None,
                 batch_size: int = DEFAULT_BATCH, info: dict[str, Any] | None = None):
        """`store` is a reader kept for the table's life; `info` goes into the metadata (model, preprocessing)."""
        parts, k = parse_what(what)
        self.what, self.top_k = parts, top_k if top_k is not None else k
        if batch_size < 1:
            raise DataError("batch_size must be at least 1")
        self.batch_size = batch_size
        self.store = store
        self.snapshot: Snapshot = store.snapshot()
        columns = store.concept_columns()
        self.builtin = [(col, cid) for col, cid, _name, source in columns if source != "trained"]
        self.detector_columns = [(col, cid) for col, cid, _name, source in columns
                                 if source == "trained" and col in self.snapshot.scores.trained]
        self.metadata = {**(info or {}), "what": list(self.what), "top_k": self.top_k,
                         "segments": len(self), "embed_dim": self.snapshot.embeddings.shape[1],
                         "concept_ids": [cid for _col, cid in self.builtin],
                         "detectors": [cid for _col, cid in self.detector_columns]}
        self.schema = self._schema()

    def __len__(self) -> int:
        """Segments in the snapshot (a segment removed while the table is read is left out of its batch)."""
        return len(self.snapshot.ids)

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        ids = self.snapshot.ids
        for lo in range(0, len(ids), self.batch_size):
            batch = self._batch(lo, min(lo + self.batch_size, len(ids)))
            if batch.num_rows:
                yield batch

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The record batches, in segment id order."""
        return iter(self)

    def to_reader(self) -> pa.RecordBatchReader:
        """A `pyarrow.RecordBatchReader` over the batches (what DuckDB, Polars and `pyarrow.dataset` take)."""
        pa = require_pyarrow()
        return pa.RecordBatchReader.from_batches(self.schema, iter(self))

    def to_arrow(self) -> pa.Table:
        """The whole table in memory."""
        pa = require_pyarrow()
        return pa.Table.from_batches(list(self), schema=self.schema)

    def to_pandas(self):
        """The whole table as a pandas DataFrame (list columns hold NumPy arrays)."""
        return self.to_arrow().to_pandas()

    def close(self) -> None:
        """Close the table's connection to the index (the table cannot be read afterwards)."""
        self.store.close()

    def __enter__(self) -> SegmentTable:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SegmentTable {len(self)} segments: {', '.join(self.schema.names)}>"

    # ---- building batches ----------------------------------------------------------------------------
    def _schema(self) -> pa.Schema:
        pa = require_pyarrow()
        fields = [pa.field("segment_id", pa.int64(), nullable=False)]
        if "segments" in self.what:
            fields += [pa.field("media_id", pa.int64()), pa.field("path", pa.string()), pa.field("kind", pa.string()),
                       pa.field("start", pa.float64()), pa.field("end", pa.float64())]
        if "embeddings" in self.what:
            fields.append(pa.field("embedding", pa.list_(pa.float32(), self.snapshot.embeddings.shape[1])))
        if "scores" in self.what and self.top_k:
            fields += [pa.field("top_concepts", pa.list_(pa.string())), pa.field("top_scores", pa.list_(pa.float32()))]
        elif "scores" in self.what:
            fields.append(pa.field("scores", pa.list_(pa.float32(), len(self.builtin))))
        if "detectors" in self.what:
            fields += [pa.field(f"{_DETECTOR_PREFIX}{cid}", pa.float32()) for _col, cid in self.detector_columns]
        return pa.schema(fields, metadata={METADATA_KEY: json.dumps(self.metadata).encode()})

    def _batch(self, lo: int, hi: int) -> pa.RecordBatch:
        """Rows lo..hi-1 of the snapshot, less the segments removed since it was taken."""
        pa = require_pyarrow()
        ids = self.snapshot.ids[lo:hi]
        meta = self.store.segment_rows(int(ids[0]), int(ids[-1]))
        found = np.array([r[0] for r in meta], dtype=np.int64)
        keep = np.flatnonzero(np.isin(ids, found))  # new segments get larger ids: only removals can differ
        rows = lo + keep
        columns: dict[str, Any] = {"segment_id": pa.array(ids[keep])}
        if "segments" in self.what:
            by_id = {r[0]: r for r in meta}
            chosen = [by_id[int(i)] for i in ids[keep]]
            for j, name in enumerate(("media_id", "path", "kind", "start", "end"), 1):
                columns[name] = [r[j] for r in chosen]
        if "embeddings" in self.what:
            columns["embedding"] = _fixed_lists(pa, self.snapshot.embeddings[rows])
        if "scores" in self.what:
            columns.update(self._scores(pa, rows))
        if "detectors" in self.what:
            trained = self.snapshot.scores.trained
            for col, cid in self.detector_columns:
                columns[f"{_DETECTOR_PREFIX}{cid}"] = trained[col][rows].astype(np.float32)
        arrays = [columns[f.name] if isinstance(columns[f.name], pa.Array) else pa.array(columns[f.name], type=f.type)
                  for f in self.schema]  # plain lists and NumPy columns typed as the schema says
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _scores(self, pa, rows: np.ndarray) -> dict[str, Any]:
        cols = np.array([col for col, _cid in self.builtin], dtype=np.int64)
        scores = self.snapshot.scores.columns_at(rows)[cols].T  # (B, C)
        if not self.top_k:
            return {"scores": _fixed_lists(pa, scores)}
        k = min(self.top_k, scores.shape[1])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, 1)
        offsets = pa.array(np.arange(0, top.size + 1, k, dtype=np.int32))
        names = pa.array([cid for _col, cid in self.builtin], type=pa.string()).take(pa.array(top.reshape(-1)))
        values = pa.array(np.take_along_axis(scores, top, 1).reshape(-1))
        return {"top_concepts": pa.ListArray.from_arrays(offsets, names),
                "top_scores": pa.ListArray.from_arrays(offsets, values)}


def _fixed_lists(pa, matrix: np.ndarray) -> pa.FixedSizeListArray:
    """An (N, D) matrix as a fixed_size_list<float32>[D] array, without a copy per row."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


def table_metadata(schema: pa.Schema) -> dict:
    """The metadata `SegmentTable` wrote into a schema (of a parquet file read back)."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}
