"""Encrypted feature stores: encrypt and decrypt a store row group by row group.

Decryption checks, before a byte is written: every file's header (one cipher,
one key fingerprint, the key's), its schema (ciphertext width, nonce column)
and its file tag; then each row group's tag before decrypting it. Ciphertext
goes from the cipher to Parquet as bytes (integer views only). Each row group's
cipher seals (AES-GCM binds its batch id and row count into every row's AAD)
are kept in the footer beside its tag.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..ciphers.base import Cipher, Sealed
from ..ciphers.catalogue import cipher_names, spec
from ..ciphers.files import check_key
from ..ciphers.sealing import Seal
from ..ciphers.words import WORD_DTYPES
from ..errors import IntegrityError, ShuffleBitsError
from ..features import FeatureFile
from .overlap import prefetched, written_behind
from .plain import collect_features, plain_batches, read_plain
from .schema import (
    CIPHERTEXT,
    HEADER_KEY,
    ID,
    NONCE,
    TAGS_KEY,
    VECTOR,
    binary_array,
    binary_rows,
    drop_row_groups,
    encode_header,
    header_of,
    open_parquet,
    parquet_writer,
    store_files,
    vector_array,
    vector_type,
    vectors_of,
    write_row_group,
)
from .tags import file_tag, row_group_tag, tag_key

DTYPE = "float32"


@dataclass(frozen=True)
class StoreSummary:
    """What a store command wrote."""

    rows: int
    row_groups: int
    dim: int


def _sealed_schema(plain: pa.Schema, cipher: Cipher) -> tuple[pa.Schema, bytes]:
    record = spec(cipher.name)
    dim = plain.field(VECTOR).type.list_size
    fields = [plain.field(ID), pa.field(CIPHERTEXT, pa.binary(4 * dim + record.tag_bytes), nullable=False)]
    if record.nonce_bytes:
        fields.append(pa.field(NONCE, pa.binary(record.nonce_bytes), nullable=False))
    fields += [field for field in plain if field.name not in (ID, VECTOR)]
    header = encode_header(
        {
            "kind": "encrypted",
            "cipher": cipher.name,
            "mode": cipher.key.mode,
            "key_fingerprint": cipher.key.fingerprint,
            "dtype": DTYPE,
            "dim": dim,
            "nonce_bytes": record.nonce_bytes,
            "columns": [[field.name, str(field.type)] for field in fields],
            "file_id": secrets.token_hex(16),
        }
    )
    return pa.schema(fields, metadata={HEADER_KEY: header}), header


def seal_batch(
    cipher: Cipher, batch: pa.RecordBatch | pa.Table, schema: pa.Schema, source
) -> tuple[pa.RecordBatch, list]:
    """One plaintext batch as a batch of ``schema`` (ciphertext, nonces, the other columns) and its seals.

    The one per-batch step of encryption, whichever engine drives it (``encrypt_store`` here,
    ``engine.on_ray`` on a cluster's workers); ciphertext stays bytes.
    """
    sealed = cipher.encrypt(vectors_of(batch, source))
    columns = {CIPHERTEXT: binary_array(np.ascontiguousarray(sealed.payload()).view(np.uint8))}
    if sealed.nonces is not None:
        columns[NONCE] = binary_array(sealed.nonces)
    arrays = [columns[name] if name in columns else _one_chunk(batch.column(name)) for name in schema.names]
    return pa.RecordBatch.from_arrays(arrays, schema=schema), [seal.as_dict() for seal in sealed.seals]


def _one_chunk(column):
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


@contextlib.contextmanager
def sealed_writer(
    target: str | os.PathLike, plain: pa.Schema, cipher: Cipher
) -> Iterator[tuple[pa.Schema, Callable[[pa.RecordBatch, list], None]]]:
    """``(schema, put)``: ``put(batch, seals)`` tags and appends one row group; the footer is written at the end.

    Tags need each group's index and row offset, so they are computed here, in
    write order, by whoever holds the output (the driver on a cluster).
    """
    if not spec(cipher.name).exact:
        exact = ", ".join(cipher_names(exact=True))
        raise ShuffleBitsError(
            f"feature stores hold bit-exact ciphertexts ({exact}); {cipher.name} is approximate, "
            "encrypt it to .npz for matching"
        )
    schema, header = _sealed_schema(plain, cipher)
    key = tag_key(cipher.key)
    counts, tags, seals = [], [], []
    with parquet_writer(target, schema, bulk=(CIPHERTEXT, NONCE)) as writer:
        with written_behind(lambda out: write_row_group(writer, out)) as write:

            def put(out: pa.RecordBatch, batch_seals: list) -> None:
                tags.append(row_group_tag(key, header, len(counts), sum(counts), out))
                counts.append(out.num_rows)
                seals.append(batch_seals)
                write(out)

            yield schema, put
        footer = {
            "rows": counts,
            "tags": [tag.hex() for tag in tags],
            "file_tag": file_tag(key, header, counts, tags).hex(),
            "seals": seals,
        }
        writer.add_key_value_metadata({TAGS_KEY: json.dumps(footer)})


def encrypt_store(
    source: str | os.PathLike, target: str | os.PathLike, cipher: Cipher, rows: int | None = None
) -> StoreSummary:
    """Encrypt a plaintext store into an encrypted one, one row group (``rows`` vectors) at a time."""
    source = Path(source)
    plain, batches = plain_batches(source, rows)
    total = groups = 0
    with sealed_writer(target, plain, cipher) as (schema, put):
        for batch in prefetched(batches):
            if batch.num_rows:
                put(*seal_batch(cipher, batch, schema, source))
                total, groups = total + batch.num_rows, groups + 1
    return StoreSummary(total, groups, plain.field(VECTOR).type.list_size)


@dataclass(frozen=True)
class SealedFile:
    path: Path
    parquet: object
    header: dict
    raw_header: bytes
    tags: list[bytes]
    rows: list[int]
    seals: list[tuple[Seal, ...]]


def _open_sealed(path: Path) -> tuple[object, dict]:
    parquet = open_parquet(path)
    header = header_of(parquet, path)
    if header is None or header.get("kind") != "encrypted":
        raise ShuffleBitsError(f"{path} is not an encrypted feature store (no encrypted shufflebits header)")
    return parquet, header


def _check_sealed(path: Path, parquet, header: dict, cipher: Cipher) -> SealedFile:
    """Header against the key, schema against the header, file tag against the tag list."""
    check_key(path, header, cipher)
    record = spec(cipher.name)
    schema = parquet.schema_arrow
    if record.nonce_bytes and NONCE not in schema.names:
        raise ShuffleBitsError(f"{path}: {cipher.name} ciphertext needs its {NONCE!r} column, which is missing")
    try:
        width = 4 * int(header["dim"]) + record.tag_bytes
        columns = [[field.name, str(field.type)] for field in schema]
    except (KeyError, TypeError, ValueError) as error:
        raise ShuffleBitsError(f"{path}: malformed feature store header ({error})") from error
    if CIPHERTEXT not in schema.names or schema.field(CIPHERTEXT).type != pa.binary(width):
        raise ShuffleBitsError(f"{path}: column {CIPHERTEXT!r} must be fixed_size_binary({width})")
    if columns != header.get("columns"):
        raise ShuffleBitsError(f"{path}: columns {columns} do not match its header's {header.get('columns')}")
    raw_header = parquet.metadata.metadata[HEADER_KEY]
    try:
        footer = json.loads(parquet.metadata.metadata[TAGS_KEY])
        tags = [bytes.fromhex(tag) for tag in footer["tags"]]
        rows = [int(count) for count in footer["rows"]]
        stored = bytes.fromhex(footer["file_tag"])
        seals = [tuple(Seal.from_dict(seal) for seal in group) for group in footer["seals"]]
    except (KeyError, TypeError, ValueError, ShuffleBitsError) as error:
        raise IntegrityError(f"{path}: row-group tags missing or malformed ({error})") from error
    key = tag_key(cipher.key)
    if not hmac.compare_digest(stored, file_tag(key, raw_header, rows, tags)):
        raise IntegrityError(f"{path}: authentication failed (file tag; row groups dropped, reordered or tampered)")
    actual = [parquet.metadata.row_group(i).num_rows for i in range(parquet.metadata.num_row_groups)]
    if actual != rows:
        raise IntegrityError(f"{path}: row groups of {actual} rows, its tags cover {rows} (truncated or spliced)")
    if len(seals) != len(rows):
        raise IntegrityError(f"{path}: seals for {len(seals)} row groups, its tags cover {len(rows)}")
    return SealedFile(path, parquet, header, raw_header, tags, rows, seals)


def checked_files(source: str | os.PathLike, cipher: Cipher) -> list[SealedFile]:
    opened = [(path, *_open_sealed(path)) for path in store_files(source)]
    fingerprints = sorted({str(header.get("key_fingerprint")) for _, _, header in opened})
    if len(fingerprints) > 1:
        shown = ", ".join(f"{fingerprint[:16]}…" for fingerprint in fingerprints)
        raise ShuffleBitsError(f"{source}: the store mixes key fingerprints ({shown}); one store, one key")
    checked = [_check_sealed(path, parquet, header, cipher) for path, parquet, header in opened]
    if len({(f.header["dim"], tuple(map(tuple, f.header["columns"]))) for f in checked}) > 1:
        raise ShuffleBitsError(f"{source}: its files have different columns; a store has one schema")
    return checked


def open_group(file: SealedFile, index: int, offset: int, cipher: Cipher, schema: pa.Schema) -> pa.RecordBatch:
    """Row group ``index`` (rows from ``offset``) of a checked file, its tag verified, then decrypted.

    The one per-group step of decryption, whichever engine drives it.
    """
    record = spec(cipher.name)
    table = file.parquet.read_row_group(index)
    drop_row_groups(file.path, file.parquet, index, index + 1)
    if not hmac.compare_digest(
        file.tags[index], row_group_tag(tag_key(cipher.key), file.raw_header, index, offset, table)
    ):
        raise IntegrityError(f"{file.path}: authentication failed in row group {index} (tampered or damaged)")
    raw = binary_rows(table.column(CIPHERTEXT), CIPHERTEXT, file.path)
    words = raw.view(WORD_DTYPES[DTYPE]) if record.format_preserving else raw
    nonces = binary_rows(table.column(NONCE), NONCE, file.path) if record.nonce_bytes else None
    sealed = Sealed.from_words(
        words,
        cipher=cipher.name,
        key_fingerprint=cipher.key.fingerprint,
        dtype=DTYPE,
        nonces=nonces,
        seals=file.seals[index],
    )
    vectors = vector_array(cipher.decrypt(sealed))
    arrays = [vectors if name == VECTOR else table.column(name).combine_chunks() for name in schema.names]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def decrypted_schema(files: list[SealedFile]) -> pa.Schema:
    """The plaintext schema of checked encrypted files: ``id``, ``vector``, then the columns kept in the clear."""
    sealed_schema = files[0].parquet.schema_arrow
    dim = int(files[0].header["dim"])
    fields = [sealed_schema.field(ID), pa.field(VECTOR, vector_type(dim), nullable=False)]
    fields += [field for field in sealed_schema if field.name not in (ID, CIPHERTEXT, NONCE)]
    return pa.schema(fields, metadata={HEADER_KEY: encode_header({"kind": "plaintext", "dim": dim})})


def decrypted_batches(source: str | os.PathLike, cipher: Cipher) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The plaintext schema and batches (one per row group) of an encrypted store, each authenticated first."""
    files = checked_files(source, cipher)
    schema = decrypted_schema(files)

    def batches() -> Iterator[pa.RecordBatch]:
        for file in files:
            offset = 0
            for index, rows in enumerate(file.rows):
                yield open_group(file, index, offset, cipher, schema)
                offset += rows

    return schema, batches()


def decrypt_store(source: str | os.PathLike, target: str | os.PathLike, cipher: Cipher) -> StoreSummary:
    """Decrypt an encrypted store into a plaintext one; nothing is written unless every tag holds."""
    schema, batches = decrypted_batches(source, cipher)
    rows = groups = 0
    with parquet_writer(target, schema, bulk=(VECTOR,)) as writer:
        for batch in prefetched(batches):  # the next group is read, checked and decrypted while this one is written
            write_row_group(writer, batch)
            rows, groups = rows + batch.num_rows, groups + 1
    return StoreSummary(rows, groups, schema.field(VECTOR).type.list_size)


def read_store(path: str | os.PathLike, cipher: Cipher | None = None) -> FeatureFile:
    """A whole store in memory as a ``FeatureFile``: plaintext, or encrypted and decrypted with ``cipher``."""
    if cipher is None:
        return read_plain(path)
    schema, batches = decrypted_batches(path, cipher)
    return collect_features(schema, batches, Path(path))


def describe_store(path: str | os.PathLike) -> list[str]:
    """``inspect`` lines for a store: its kind, shape, columns, and for an encrypted one its header."""
    files = store_files(path)
    opened = [(file, open_parquet(file)) for file in files]
    rows = sum(parquet.metadata.num_rows for _, parquet in opened)
    groups = sum(parquet.metadata.num_row_groups for _, parquet in opened)
    header = header_of(opened[0][1], files[0])
    schema = opened[0][1].schema_arrow
    encrypted = header is not None and header.get("kind") == "encrypted"
    lines = [
        f"{'encrypted' if encrypted else 'plaintext'} feature store {path}",
        f"  files: {len(files)}, rows: {rows}, row groups: {groups}",
        f"  columns: {', '.join(f'{field.name} ({field.type})' for field in schema)}",
    ]
    if encrypted:
        fields = ("version", "cipher", "mode", "key_fingerprint", "dtype", "dim", "nonce_bytes")
        lines += [f"  {name}: {header.get(name)}" for name in fields]
        fingerprints = {str((header_of(parquet, file) or {}).get("key_fingerprint")) for file, parquet in opened}
        if len(fingerprints) > 1:
            lines.append(f"  WARNING: the files mix {len(fingerprints)} key fingerprints")
        tagged = all(TAGS_KEY in (parquet.metadata.metadata or {}) for _, parquet in opened)
        lines.append(f"  authenticated: {'HMAC-SHA256 tag per row group' if tagged else 'NO row-group tags'}")
    return lines
