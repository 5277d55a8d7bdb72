"""The stores' Arrow schemas, their header metadata, and opening and writing Parquet files.

Writers put every batch into a row group of its own (the unit tags cover) and
write to a temporary file renamed into place on success, so a failure leaves
nothing half-written.

Streams drop their pages from the page cache behind them (Linux,
``posix_fadvise``): a store is read or written once per pass, and a pass
through a store larger than memory gains nothing from caching it. Recycling a
few cached pages instead of taking fresh ones for the whole store is also what
makes streaming fast on the benchmark's virtual machine, where fresh memory
costs the kernel a host fault per page, far more than copying the bytes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import atomic_write
from ..errors import ShuffleBitsError

STORE_FORMAT = "shufflebits-feature-store"
STORE_VERSION = 1
HEADER_KEY = b"shufflebits"
TAGS_KEY = b"shufflebits.tags"
SUFFIX = ".parquet"
ID, VECTOR, CIPHERTEXT, NONCE = "id", "vector", "ciphertext", "nonce"
# Optional columns with a meaning: (check, what the check wants).
KNOWN_COLUMNS = {
    "path": (pa.types.is_string, "string"),
    "pid": (pa.types.is_integer, "an integer"),
    "camid": (pa.types.is_integer, "an integer"),
}
ROW_GROUP_BYTES = 16 << 20  # vectors per row group: 8192 at d=512; a dozen such buffers in flight stay < 1 GiB
READ_BUFFER = 8 << 20  # pages streamed from disk for row groups too large to read whole


def is_store(path: str | os.PathLike) -> bool:
    """A ``.parquet`` file or a folder (of ``.parquet`` files): what the stores read."""
    path = Path(path)
    return path.suffix == SUFFIX or path.is_dir()


def rows_per_group(dim: int) -> int:
    return max(1, ROW_GROUP_BYTES // (4 * max(dim, 1)))


def store_files(path: str | os.PathLike) -> list[Path]:
    """The Parquet files of a store, in the order their rows are read."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == SUFFIX and p.is_file())
        if not files:
            raise ShuffleBitsError(f"feature store {path} holds no {SUFFIX} files")
        return files
    if not path.is_file():
        raise ShuffleBitsError(f"feature store {path} does not exist")
    return [path]


def open_parquet(path: Path) -> pq.ParquetFile:
    """Row groups up to 4x ours are read whole (twice as fast); larger ones (other writers) page by page.

    Never ``pre_buffer``: it reads ahead every row group a batch iterator asks for, the whole file.
    """
    try:
        parquet = pq.ParquetFile(path, pre_buffer=False)
        sizes = [parquet.metadata.row_group(i).total_byte_size for i in range(parquet.metadata.num_row_groups)]
        if max(sizes, default=0) <= 4 * ROW_GROUP_BYTES:
            return parquet
        return pq.ParquetFile(path, buffer_size=READ_BUFFER, pre_buffer=False)
    except (pa.ArrowException, OSError) as error:
        raise ShuffleBitsError(f"cannot read {path}: not a Parquet file ({error})") from error


def header_of(parquet: pq.ParquetFile, path: Path) -> dict | None:
    """The ``shufflebits`` header of a store file, or None when another tool wrote it."""
    raw = (parquet.metadata.metadata or {}).get(HEADER_KEY)
    if raw is None:
        return None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ShuffleBitsError(f"{path}: corrupted shufflebits header ({error})") from error
    if not isinstance(header, dict) or header.get("format") != STORE_FORMAT:
        raise ShuffleBitsError(f"{path}: its {HEADER_KEY.decode()!r} metadata is not a feature store header")
    if header.get("version") != STORE_VERSION:
        raise ShuffleBitsError(
            f"{path}: unsupported feature store version {header.get('version')!r} (supported: {STORE_VERSION})"
        )
    return header


def encode_header(header: dict) -> bytes:
    return json.dumps({"format": STORE_FORMAT, "version": STORE_VERSION, **header}, sort_keys=True).encode()


def vector_type(dim: int) -> pa.DataType:
    return pa.list_(pa.field("element", pa.float32(), nullable=False), dim)


def check_plain_schema(schema: pa.Schema, path: Path) -> int:
    """The width ``d`` of a plaintext store's vectors; a schema that is not one is a one-line error."""
    names = schema.names
    if ID not in names or VECTOR not in names:
        raise ShuffleBitsError(
            f"{path} is not a plaintext feature store: needs columns {ID!r} (string) and {VECTOR!r} "
            f"(fixed-size list of float32), has {', '.join(names)}"
            + (" (an encrypted store? decrypt it first)" if CIPHERTEXT in names else "")
        )
    if len(set(names)) != len(names):
        raise ShuffleBitsError(f"{path}: duplicate column names {names}")
    if not pa.types.is_string(schema.field(ID).type):
        raise ShuffleBitsError(f"{path}: column {ID!r} must be string, got {schema.field(ID).type}")
    vector = schema.field(VECTOR).type
    if not pa.types.is_fixed_size_list(vector) or vector.value_type != pa.float32():
        raise ShuffleBitsError(f"{path}: column {VECTOR!r} must be a fixed-size list of float32, got {vector}")
    for name, (check, wanted) in KNOWN_COLUMNS.items():
        if name in names and not check(schema.field(name).type):
            raise ShuffleBitsError(f"{path}: column {name!r} must be {wanted}, got {schema.field(name).type}")
    return vector.list_size


def vectors_of(batch: pa.RecordBatch | pa.Table, path: Path) -> np.ndarray:
    """The ``vector`` column as a float32 ``(n, d)`` array (a view where Arrow allows)."""
    column = batch.column(VECTOR)
    if isinstance(column, pa.ChunkedArray):
        column = pa.concat_arrays(column.chunks) if column.num_chunks != 1 else column.chunk(0)
    if column.null_count or column.values.null_count:
        raise ShuffleBitsError(f"{path}: column {VECTOR!r} has missing vectors or values")
    return column.flatten().to_numpy().reshape(len(column), column.type.list_size)


def vector_array(features: np.ndarray) -> pa.FixedSizeListArray:
    features = np.ascontiguousarray(features, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(features.reshape(-1)), type=vector_type(features.shape[1]))


def binary_array(rows: np.ndarray) -> pa.FixedSizeBinaryArray:
    """uint8 ``(n, w)`` rows as ``fixed_size_binary(w)`` (no copy of the bytes beyond contiguity)."""
    rows = np.ascontiguousarray(rows, dtype=np.uint8)
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(rows.shape[1]), len(rows), [None, pa.py_buffer(rows)])


def binary_rows(column: pa.Array | pa.ChunkedArray, what: str, path: Path) -> np.ndarray:
    """A ``fixed_size_binary(w)`` column as uint8 ``(n, w)`` rows."""
    if isinstance(column, pa.ChunkedArray):
        column = pa.concat_arrays(column.chunks) if column.num_chunks != 1 else column.chunk(0)
    if column.null_count:
        raise ShuffleBitsError(f"{path}: {what} column has missing rows")
    width = column.type.byte_width
    data = np.frombuffer(column.buffers()[1], np.uint8)
    return data[column.offset * width : (column.offset + len(column)) * width].reshape(len(column), width)


PAGE_BYTES = 4 << 20
DROP_BYTES = 64 << 20  # streams drop their cached pages in steps this large (see the module docstring)
DROP_BEHIND = hasattr(os, "posix_fadvise")  # Linux; elsewhere the page cache is left to the kernel


def drop_cached(fd: int, start: int, stop: int) -> None:
    """Advise the kernel to drop the file's cached pages in ``[start, stop)`` (advice: errors are ignored)."""
    with contextlib.suppress(OSError):
        os.posix_fadvise(fd, start, stop - start, os.POSIX_FADV_DONTNEED)


class DropBehind:
    """The output file: every ``DROP_BYTES``, its newest pages are sent to disk and the step before dropped.

    Asked to drop dirty pages, Linux starts writing them back instead, so the
    step before is clean by its turn: nothing waits for the disk, and the
    closing fsync finds little left to write.
    """

    def __init__(self, handle) -> None:
        self.handle = handle
        self.written = self.sent = self.dropped = 0

    def write(self, data) -> int:
        count = self.handle.write(data)
        self.written += count
        if self.written - self.sent >= DROP_BYTES:
            self.handle.flush()
            drop_cached(self.handle.fileno(), self.dropped, self.written)
            self.dropped, self.sent = self.sent, self.written
        return count

    def __getattr__(self, name: str):
        return getattr(self.handle, name)  # tell, flush, closed: what Arrow's file wrapper asks for


def drop_row_groups(path: Path, parquet: pq.ParquetFile, first: int, stop: int) -> None:
    """Drop the cached pages of row groups ``first`` to ``stop - 1``, read: their rows are in memory."""
    if DROP_BEHIND:
        with contextlib.suppress(OSError), open(path, "rb") as handle:
            drop_cached(handle.fileno(), _span(parquet, first)[0], _span(parquet, stop - 1)[1])


def _span(parquet: pq.ParquetFile, index: int) -> tuple[int, int]:
    """The bytes ``[start, stop)`` of the file that hold row group ``index``'s column chunks."""
    group = parquet.metadata.row_group(index)
    chunks = [group.column(i) for i in range(group.num_columns)]
    starts = [chunk.dictionary_page_offset or chunk.data_page_offset for chunk in chunks]
    return min(starts), max(start + chunk.total_compressed_size for start, chunk in zip(starts, chunks, strict=True))


def dropped_behind(path: Path, parquet: pq.ParquetFile, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """``batches`` (of any size) read from ``parquet``, each row group's pages dropped once its rows are read."""
    ends = list(itertools.accumulate(parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)))
    rows = done = 0
    for batch in batches:
        rows += batch.num_rows
        first = done
        while done < len(ends) and ends[done] <= rows:
            done += 1
        if done > first:
            drop_row_groups(path, parquet, first, done)
        yield batch


@contextlib.contextmanager
def parquet_writer(path: str | os.PathLike, schema: pa.Schema, *, bulk: tuple[str, ...]) -> Iterator[pq.ParquetWriter]:
    """A ``ParquetWriter`` on a temporary file that replaces ``path`` if the block succeeds.

    ``bulk`` columns (vectors, ciphertext, nonces) are written plain: random
    words do not compress, and dictionaries or statistics on them only cost time.
    Pages of ``PAGE_BYTES``: reading fixed-size binary ciphertext in 1 MiB pages
    (Arrow's default) runs at about half the speed of 4 MiB ones.
    """
    path = Path(path)
    if path.suffix != SUFFIX:
        raise ShuffleBitsError(f"a feature store file ends in {SUFFIX}, got {path.name}")
    small = [name for name in schema.names if name not in bulk]
    with atomic_write(path) as handle:
        writer = pq.ParquetWriter(
            DropBehind(handle) if DROP_BEHIND else handle,
            schema,
            compression="none",
            use_dictionary=small,
            write_statistics=small,
            data_page_version="2.0",
            data_page_size=PAGE_BYTES,
        )
        try:
            yield writer
        finally:
            writer.close()


def write_row_group(writer: pq.ParquetWriter, batch: pa.RecordBatch) -> None:
    """One batch, one row group (the unit tags cover)."""
    writer.write_table(pa.Table.from_batches([batch]), row_group_size=max(1, batch.num_rows))
