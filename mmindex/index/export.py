"""`mmindex export`: a `SegmentTable` (index/tables.py) written as a parquet or an npz file, one record batch at a
time, so that exporting a million segments holds one batch in memory, not the index.

    parquet  the table as it is; its schema's metadata `mmindex` (JSON) names the model, its preprocessing, the
             concept ids of `scores` and the detectors (`tables.table_metadata` reads it back)
    npz      one array per column: segment_id, media_id (int64), path, kind (fixed-width unicode), start, end
             (float64, NaN for an image), embedding (N, D), scores (N, C) or top_concepts (N, k) and top_scores
             (N, k), `detector:<id>` (N,), all float32; plus concept_ids (C,) and metadata (the same JSON, a 0-d
             string): `np.load(path)` reads it, with no pickle

An npz file is a zip of .npy files, each written whole: the columns go to temporary raw files beside the output
while the batches stream by, and are then copied into the zip behind their headers. Both formats are written under
a temporary name and renamed when complete: an interrupted export leaves no half file.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from mmindex.atomic import atomic_write
from mmindex.errors import DataError
from mmindex.index.tables import SegmentTable, require_pyarrow

FORMATS = ("parquet", "npz")
ProgressFn = Callable[[int, int], None]  # (segments written, segments in all)


def export(table: SegmentTable, path: str | os.PathLike, fmt: str, progress: ProgressFn | None = None) -> dict:
    """Write `table` to `path` as `fmt`; returns {path, format, segments, columns}."""
    if fmt not in FORMATS:
        raise DataError(f"unknown export format {fmt!r}; choose {' or '.join(FORMATS)}")
    target = Path(path).expanduser()
    if target.is_dir():
        raise DataError(f"{target} is a folder; --out names the file to write")
    if not target.parent.is_dir():
        raise DataError(f"folder {target.parent} does not exist")
    written = (_write_parquet if fmt == "parquet" else _write_npz)(table, target, progress or (lambda d, t: None))
    return {"path": str(target), "format": fmt, "segments": written, "columns": table.schema.names}


def _write_parquet(table: SegmentTable, target: Path, progress: ProgressFn) -> int:
    import pyarrow.parquet as pq

    require_pyarrow()
    written = 0
    with atomic_write(target) as tmp, pq.ParquetWriter(tmp, table.schema, compression="zstd") as writer:
        for batch in table:
            writer.write_batch(batch)
            written += batch.num_rows
            progress(written, len(table))
    return written


def _write_npz(table: SegmentTable, target: Path, progress: ProgressFn) -> int:
    pa = require_pyarrow()
    widths = {"path": max(table.store.longest_path(), 1), "kind": 5,
              "top_concepts": max((len(c) for c in table.metadata["concept_ids"]), default=1)}
    written = 0
    with ExitStack() as stack:
        raw = {name: stack.enter_context(_RawColumn(target, name, i)) for i, name in enumerate(table.schema.names)}
        for batch in table:
            for name, column in zip(batch.schema.names, batch.columns, strict=True):
                raw[name].append(_as_numpy(pa, column, widths.get(name)))
            written += batch.num_rows
            progress(written, len(table))
        meta = dict(table.metadata, segments=written)
        with atomic_write(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, column in raw.items():
                column.copy_into(zf, written, _dtype(table, name, widths))
            _put(zf, "concept_ids", np.array(meta["concept_ids"], dtype=str))
            _put(zf, "metadata", np.array(json.dumps(meta)))
    return written


def _as_numpy(pa, column, width: int | None) -> np.ndarray:
    """One column of a record batch as the rows of its npz array."""
    kind = column.type
    if pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind):
        values = column.flatten().to_numpy(zero_copy_only=False)
        if pa.types.is_string(kind.value_type):
            values = values.astype(f"<U{width}")
        return values.reshape(len(column), -1) if len(column) else values
    if pa.types.is_string(kind):
        return np.array(column.to_pylist(), dtype=f"<U{width}")
    if pa.types.is_floating(kind):
        return column.to_numpy(zero_copy_only=False).astype(column.type.to_pandas_dtype())  # nulls as NaN
    return column.to_numpy(zero_copy_only=False)


def _dtype(table: SegmentTable, name: str, widths: dict[str, int]) -> tuple[np.dtype, tuple[int, ...]]:
    """The dtype and the shape of one row of a column's npz array."""
    field = table.schema.field(name)
    if name in ("embedding", "scores"):
        return np.dtype(np.float32), (field.type.list_size,)
    if name in ("top_concepts", "top_scores"):
        k = min(table.top_k, len(table.builtin))
        return (np.dtype(f"<U{widths[name]}") if name == "top_concepts" else np.dtype(np.float32)), (k,)
    if name in widths:
        return np.dtype(f"<U{widths[name]}"), ()
    return np.dtype(field.type.to_pandas_dtype()), ()


class _RawColumn:
    """A column's bytes, batch after batch, in a temporary file beside the output (removed on exit)."""

    def __init__(self, target: Path, name: str, number: int):
        self.path = target.with_name(f".{target.name[:60]}.{os.getpid()}.{number}.col")
        self.name = name

    def __enter__(self) -> _RawColumn:
        self.file = open(self.path, "w+b")  # noqa: SIM115 (closed in __exit__)
        return self

    def append(self, rows: np.ndarray) -> None:
        self.file.write(np.ascontiguousarray(rows).tobytes())

    def copy_into(self, zf: zipfile.ZipFile, n: int, dtype_shape: tuple[np.dtype, tuple[int, ...]]) -> None:
        dtype, row_shape = dtype_shape
        self.file.flush()
        self.file.seek(0)
        with zf.open(f"{self.name}.npy", "w", force_zip64=True) as out:
            np.lib.format.write_array_header_2_0(out, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                       "fortran_order": False, "shape": (n, *row_shape)})
            shutil.copyfileobj(self.file, out, 1 << 20)

    def __exit__(self, *exc) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


def _put(zf: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with zf.open(f"{name}.npy", "w", force_zip64=True) as out:
        np.lib.format.write_array(out, array, allow_pickle=False)
