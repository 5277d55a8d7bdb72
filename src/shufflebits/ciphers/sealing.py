"""Seals: what binds a batch of ciphertext rows to its key, layout, nonces, batch id and the caller's context.

A format-preserving cipher has no integrity of its own (flipping bit 31 of a
ChaChaPad value flips its sign), so ``encrypt(..., authenticate=True)`` adds a
``Seal``: an HMAC-SHA256 tag under an HKDF-derived key over the cipher, key
fingerprint, dtype, shape, nonces, ciphertext words, a random batch id and a
caller context (the HTTP answer binds its response id and row count there).
AES-GCM needs no extra tag: its associated data binds the same batch id, row
index, row count and context per row, so its seals carry an empty tag. Joined
answers keep one seal per batch (``rows`` says how many rows each covers), so a
row swapped, dropped, duplicated or spliced across batches fails verification.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

import numpy as np

from ..errors import IntegrityError, InvalidInputError

BATCH_BYTES = 16
TAG_BYTES = 32
MAX_CONTEXT_BYTES = 1024
_LABEL = b"shufflebits/seal/v1"
_MAC_PURPOSE = "seal-mac"


@dataclass(frozen=True)
class Seal:
    """One batch of rows: its random ``batch`` id, ``rows`` count, caller ``context`` and ``tag``."""

    batch: bytes
    rows: int
    context: bytes
    tag: bytes

    def as_dict(self) -> dict:
        """JSON-ready (hex strings), as files and the wire store it."""
        return {"batch": self.batch.hex(), "rows": self.rows, "context": self.context.hex(), "tag": self.tag.hex()}

    @classmethod
    def from_dict(cls, record) -> Seal:
        """Inverse of ``as_dict``; anything malformed is an ``InvalidInputError``."""
        if not isinstance(record, dict) or set(record) != {"batch", "rows", "context", "tag"}:
            raise InvalidInputError(f"malformed seal {str(record)[:80]!r}: expected batch, rows, context, tag")
        rows = record["rows"]
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            raise InvalidInputError(f"malformed seal: rows must be a non-negative integer, got {rows!r}")
        try:
            fields = [bytes.fromhex(record[name]) for name in ("batch", "context", "tag")]
        except (TypeError, ValueError) as error:
            raise InvalidInputError(f"malformed seal: batch, context and tag must be hex ({error})") from None
        return cls(fields[0], rows, fields[1], fields[2])


def check_seals(seals: tuple[Seal, ...], rows: int, tag_bytes: int) -> None:
    """Seals must cover ``rows`` exactly, with ``tag_bytes``-byte tags and well-formed fields."""
    for seal in seals:
        if not isinstance(seal, Seal):
            raise InvalidInputError(f"seals must be Seal records, got {type(seal).__name__}")
        if len(seal.batch) != BATCH_BYTES or len(seal.tag) != tag_bytes or len(seal.context) > MAX_CONTEXT_BYTES:
            raise InvalidInputError(
                f"a seal needs a {BATCH_BYTES}-byte batch id, a {tag_bytes}-byte tag and at most "
                f"{MAX_CONTEXT_BYTES} bytes of context"
            )
    if seals and sum(seal.rows for seal in seals) != rows:
        raise InvalidInputError(f"seals cover {sum(seal.rows for seal in seals)} rows, the ciphertext has {rows}")


def _field(mac, value: bytes) -> None:
    mac.update(len(value).to_bytes(8, "little") + value)


def _little_endian(words: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(words.astype(words.dtype.newbyteorder("<"), copy=False))


def compute_tag(
    mac_key: bytes,
    *,
    cipher: str,
    fingerprint: str,
    dtype: str,
    words: np.ndarray,
    nonces: np.ndarray | None,
    batch: bytes,
    context: bytes,
) -> bytes:
    """HMAC-SHA256 over one batch: every field length-prefixed, words as little-endian integers."""
    mac = hmac.new(mac_key, _LABEL, hashlib.sha256)
    header = json.dumps([cipher, fingerprint, dtype, list(words.shape), words.dtype.str[1:]]).encode()
    _field(mac, header)
    _field(mac, b"" if nonces is None else b"n" + np.ascontiguousarray(nonces, dtype=np.uint8).tobytes())
    _field(mac, batch)
    _field(mac, context)
    mac.update(memoryview(_little_endian(words)).cast("B"))
    return mac.digest()


def mac_key(key) -> bytes:
    """The tag key of ``key`` (HKDF, its own label)."""
    return key.subkey(_MAC_PURPOSE)


def row_ranges(seals: tuple[Seal, ...]) -> list[tuple[int, int, Seal]]:
    """``(start, stop, seal)`` of every batch, in row order."""
    ranges, start = [], 0
    for seal in seals:
        ranges.append((start, start + seal.rows, seal))
        start += seal.rows
    return ranges


def verify(key, sealed) -> None:
    """Check every seal's tag of a format-preserving ``sealed``; ``IntegrityError`` names the rows."""
    words, nonces, secret = sealed.payload(), sealed.nonces, mac_key(key)
    for start, stop, seal in row_ranges(sealed.seals):
        expected = compute_tag(
            secret,
            cipher=sealed.cipher,
            fingerprint=sealed.key_fingerprint,
            dtype=sealed.dtype,
            words=words[start:stop],
            nonces=None if nonces is None else nonces[start:stop],
            batch=seal.batch,
            context=seal.context,
        )
        if not hmac.compare_digest(expected, seal.tag):
            raise IntegrityError(
                f"authentication failed for ciphertext rows {start}..{stop - 1}: tampered with, reordered, "
                "or taken from another batch"
            )
