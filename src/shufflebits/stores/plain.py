"""Plaintext feature stores: write them batch by batch, read them batch by batch or whole."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import ShuffleBitsError
from ..features import FeatureFile
from .schema import (
    HEADER_KEY,
    ID,
    VECTOR,
    check_plain_schema,
    dropped_behind,
    encode_header,
    open_parquet,
    parquet_writer,
    rows_per_group,
    store_files,
    vector_array,
    vector_type,
    vectors_of,
    write_row_group,
)

LABEL_COLUMNS = (("path", pa.string()), ("pid", pa.int64()), ("camid", pa.int64()))


def plain_schema(dim: int, *, labels: bool, paths: bool = True) -> pa.Schema:
    """``id``, ``vector`` and (when known) ``path``, ``pid``, ``camid``, with a plaintext header."""
    fields = [pa.field(ID, pa.string(), nullable=False), pa.field(VECTOR, vector_type(dim), nullable=False)]
    fields += [pa.field(name, kind) for name, kind in LABEL_COLUMNS if (paths if name == "path" else labels)]
    return pa.schema(fields, metadata={HEADER_KEY: encode_header({"kind": "plaintext", "dim": dim})})


def plain_batch(
    schema: pa.Schema,
    features: np.ndarray,
    ids: list[str],
    paths: list[str] | None = None,
    pids: np.ndarray | None = None,
    camids: np.ndarray | None = None,
) -> pa.RecordBatch:
    """One batch of ``plain_schema`` rows from arrays (``None`` for columns the schema lacks)."""
    given = {ID: pa.array(ids, pa.string()), VECTOR: vector_array(features)}
    for name, values in (("path", paths), ("pid", pids), ("camid", camids)):
        if name in schema.names:
            given[name] = pa.array(values, schema.field(name).type)
    if len({len(column) for column in given.values()}) != 1:
        raise ShuffleBitsError(f"columns {', '.join(given)} have different row counts")
    return pa.RecordBatch.from_arrays([given[name] for name in schema.names], schema=schema)


@contextlib.contextmanager
def plain_writer(path: str | os.PathLike, schema: pa.Schema) -> Iterator[Callable[[pa.RecordBatch], None]]:
    """``write(batch)`` appends a row group; the store appears at ``path`` when the block ends."""
    with parquet_writer(path, schema, bulk=(VECTOR,)) as writer:
        yield lambda batch: write_row_group(writer, batch)


def write_plain(
    path: str | os.PathLike,
    features: np.ndarray,
    ids: list[str] | None = None,
    paths: list[str] | None = None,
    *,
    pids: np.ndarray | None = None,
    camids: np.ndarray | None = None,
) -> None:
    """Write in-memory features as a plaintext store (ids default to the row numbers)."""
    features = np.asarray(features)
    if features.ndim != 2 or features.dtype != np.float32:
        raise ShuffleBitsError(f"a feature store holds float32 (n, d) vectors, got {features.dtype} {features.shape}")
    n = len(features)
    ids = [str(i) for i in range(n)] if ids is None else list(ids)
    schema = plain_schema(features.shape[1], labels=pids is not None and camids is not None, paths=paths is not None)
    step = rows_per_group(features.shape[1])
    with plain_writer(path, schema) as write:
        for start in range(0, n, step):
            part = slice(start, start + step)
            write(
                plain_batch(
                    schema,
                    features[part],
                    ids[part],
                    None if paths is None else list(paths)[part],
                    None if pids is None else np.asarray(pids)[part],
                    None if camids is None else np.asarray(camids)[part],
                )
            )


def plain_batches(path: str | os.PathLike, rows: int | None = None) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The store's schema and an iterator over its rows in batches of at most ``rows``.

    Every file's schema is checked before the first batch, so a folder mixing
    widths or columns fails before any output is written.
    """
    files = store_files(path)
    opened = [(file, open_parquet(file)) for file in files]
    schema = opened[0][1].schema_arrow
    dim = check_plain_schema(schema, files[0])
    for file, parquet in opened[1:]:
        check_plain_schema(parquet.schema_arrow, file)
        if not parquet.schema_arrow.equals(schema):
            raise ShuffleBitsError(f"{file}: its columns differ from {files[0].name}'s; a store has one schema")
    step = rows or rows_per_group(dim)

    def batches() -> Iterator[pa.RecordBatch]:
        for file, parquet in opened:
            yield from dropped_behind(file, parquet, parquet.iter_batches(batch_size=step))

    return schema, batches()


def read_plain(path: str | os.PathLike) -> FeatureFile:
    """A whole plaintext store in memory (``reid`` needs the gallery at once): vectors, paths, labels."""
    schema, batches = plain_batches(path)
    return collect_features(schema, batches, Path(path))


def collect_features(schema: pa.Schema, batches: Iterator[pa.RecordBatch], path: Path) -> FeatureFile:
    """Plaintext batches gathered into a ``FeatureFile`` (vectors, paths, pids and camids when present)."""
    vectors, paths, pids, camids = [], [], [], []
    for batch in batches:
        vectors.append(vectors_of(batch, path))
        paths += batch.column("path").to_pylist() if "path" in schema.names else [""] * batch.num_rows
        for name, kept in (("pid", pids), ("camid", camids)):
            if name in schema.names:
                if batch.column(name).null_count:
                    raise ShuffleBitsError(f"{path}: column {name!r} has missing values")
                kept.append(batch.column(name).to_numpy())
    dim = schema.field(VECTOR).type.list_size
    features = np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)
    labels = [np.concatenate(kept).astype(np.int64) if kept else None for kept in (pids, camids)]
    return FeatureFile(features, [p or "" for p in paths], *labels)
