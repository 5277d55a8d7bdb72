"""HMAC-SHA256 tags of an encrypted store's row groups and of the file.

The tag key is derived from the cipher key with HKDF-SHA256 (its own label), so
it reveals nothing about the cipher's sub-keys. A row group's tag covers the
file's header (cipher, key fingerprint, columns, random file id), the group's
index, row offset and row count, and every column of the group: ciphertext,
nonces, ids and the columns carried in the clear. Tags are written for every
cipher: an authenticated cipher's own tags cover each vector, not its id, its
labels or its place in the file. The file tag covers the header and the list
of row-group tags, so dropping, reordering or splicing row groups (even from
another store under the same key) fails.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import numpy as np
import pyarrow as pa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..ciphers.keys import Key

_INFO = b"shufflebits/feature-store/v1/row-group-tags"


def tag_key(key: Key) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(key.material)


def _frame(mac: hmac.HMAC, label: str, payload: bytes | memoryview) -> None:
    mac.update(label.encode() + b"\0" + len(payload).to_bytes(8, "little"))
    mac.update(payload)


def column_bytes(column: pa.Array | pa.ChunkedArray) -> bytes | memoryview:
    """A canonical byte string of a column's values (the same for a written and a re-read column)."""
    if isinstance(column, pa.ChunkedArray):
        column = pa.concat_arrays(column.chunks) if column.num_chunks != 1 else column.chunk(0)
    kind = column.type
    if column.null_count == 0 and pa.types.is_fixed_size_binary(kind):
        width = kind.byte_width
        return memoryview(column.buffers()[1])[column.offset * width : (column.offset + len(column)) * width]
    if column.null_count == 0 and (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        return np.ascontiguousarray(column.to_numpy()).view(np.uint8).data
    if column.null_count == 0 and (pa.types.is_string(kind) or pa.types.is_binary(kind)):
        wide = column.cast(pa.large_binary())
        offsets = np.frombuffer(wide.buffers()[1], np.int64)[wide.offset : wide.offset + len(wide) + 1]
        data = memoryview(wide.buffers()[2] or b"")[offsets[0] : offsets[-1]]
        return (offsets - offsets[0]).tobytes() + bytes(data)
    # Anything else (nested values, nulls): slower, but still canonical.
    return json.dumps(column.to_pylist(), default=repr).encode()


def row_group_tag(tag_key: bytes, header: bytes, index: int, offset: int, table: pa.RecordBatch | pa.Table) -> bytes:
    mac = hmac.new(tag_key, digestmod=hashlib.sha256)
    _frame(mac, "header", header)
    _frame(mac, "place", np.array([index, offset, table.num_rows], "<u8").tobytes())
    for name in table.schema.names:
        _frame(mac, f"{name}:{table.schema.field(name).type}", column_bytes(table.column(name)))
    return mac.digest()


def file_tag(tag_key: bytes, header: bytes, rows: list[int], tags: list[bytes]) -> bytes:
    mac = hmac.new(tag_key, digestmod=hashlib.sha256)
    _frame(mac, "header", header)
    _frame(mac, "rows", np.array(rows, "<u8").tobytes())
    _frame(mac, "tags", b"".join(tags))
    return mac.digest()
