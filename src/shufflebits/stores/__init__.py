"""Parquet feature stores: plaintext and encrypted features, streamed one row group at a time.

A store is one ``.parquet`` file, or a folder of them read in name order (what
distributed writers produce). Memory stays at a few row groups whatever the
store's size. The Arrow schemas (``schema.py``) are the contract:

Plaintext store
    ``id`` string (not null), ``vector`` ``fixed_size_list<float32>[d]`` (not null);
    optional ``path`` (string), ``pid`` and ``camid`` (integers); any other
    column is carried through untouched. Any writer may produce one: the
    ``shufflebits`` metadata key is optional.
Encrypted store
    ``id``, ``ciphertext`` ``fixed_size_binary(4d + tag_bytes)`` (little-endian
    ciphertext words, then the cipher's own tag if it has one), ``nonce``
    ``fixed_size_binary(nonce_bytes)`` for nonce ciphers, then every other
    column of the plaintext store, in the clear. The schema metadata key
    ``shufflebits`` holds the header (format, version, cipher, mode, key
    fingerprint, dim, columns, a random file id); the footer key
    ``shufflebits.tags`` holds one HMAC-SHA256 tag per row group and a file tag
    over them (``tags.py``).
"""

from .plain import plain_batch, plain_writer, read_plain, write_plain
from .schema import is_store
from .sealed import decrypt_store, decrypted_batches, describe_store, encrypt_store, read_store

__all__ = [
    "decrypt_store",
    "decrypted_batches",
    "describe_store",
    "encrypt_store",
    "is_store",
    "plain_batch",
    "plain_writer",
    "read_plain",
    "read_store",
    "write_plain",
]
