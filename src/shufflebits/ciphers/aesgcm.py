"""AesGcm: the authenticated baseline the paper compares with (AES-256-GCM).

Each vector is sealed separately under a random 96-bit nonce. The associated
data binds dtype, width, the batch id, the row's index, the batch's row count
and the caller's context (the ``Seal`` of the batch), so a wrong key, a flipped
bit, a relabelled dtype and a row swapped, dropped, duplicated or spliced from
another batch all fail authentication; ciphertext without its seals cannot be
checked and is refused. The AES
key is an HKDF subkey of the key (``Key.subkey``), never the master material.
Not format-preserving: ciphertext is bytes.
"""

from __future__ import annotations

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import IntegrityError, ShuffleBitsError
from .base import Cipher, Sealed
from .keys import Key, generate_key
from .sealing import Seal, row_ranges

NONCE_BYTES = 12
TAG_BYTES = 16
SUBKEY_LABEL = "aes-256-gcm"


class AesGcm(Cipher):
    """AES-256-GCM per vector; ``Sealed.data`` is uint8 ``(n, nbytes + 16)``."""

    @classmethod
    def generate_key(cls) -> Key:
        return generate_key("aes-gcm")

    @staticmethod
    def _aad(dtype: str, d: int, seal: Seal, index: int) -> bytes:
        """Associated data of one row: dtype, width, index in its batch, the batch's row count, id and context."""
        numbers = b"".join(value.to_bytes(8, "little") for value in (d, index, seal.rows, len(seal.context)))
        return b"shufflebits/aes-gcm/v2\0" + dtype.encode() + b"\0" + numbers + seal.batch + seal.context

    def _aead(self) -> AESGCM:
        return AESGCM(self.key.subkey(SUBKEY_LABEL))

    def _encrypt_words(self, words, dtype, *, seal: Seal):
        n, d = words.shape
        aead = self._aead()
        nonces = np.frombuffer(self.nonce_source(NONCE_BYTES * n), dtype=np.uint8).reshape(n, NONCE_BYTES).copy()
        row_bytes = d * words.itemsize
        data = np.empty((n, row_bytes + TAG_BYTES), dtype=np.uint8)
        rows = words.view(np.uint8).reshape(n, row_bytes)
        for i in range(n):
            aad = self._aad(dtype, d, seal, i)
            data[i] = np.frombuffer(aead.encrypt(bytes(nonces[i]), rows[i].tobytes(), aad), dtype=np.uint8)
        return data, nonces

    def _decrypt_words(self, words, sealed: Sealed):
        n, d = sealed.shape
        if sealed.nonces is None or sealed.nonces.shape != (n, NONCE_BYTES):
            raise ShuffleBitsError(f"aes-gcm ciphertext needs uint8 ({n}, {NONCE_BYTES}) nonces")
        data = np.ascontiguousarray(sealed.data)
        word = words.dtype
        if data.dtype != np.uint8 or data.shape != (n, d * word.itemsize + TAG_BYTES):
            raise ShuffleBitsError(f"aes-gcm ciphertext must be uint8 ({n}, {d * word.itemsize + TAG_BYTES})")
        if not sealed.seals:
            raise IntegrityError(
                "aes-gcm ciphertext without its seals (batch id, row count, context) cannot be checked"
            )
        aead = self._aead()
        ranges = row_ranges(sealed.seals)
        out = np.empty((n, d), dtype=word)
        raw = out.view(np.uint8).reshape(n, d * word.itemsize)
        for start, stop, seal in ranges:
            for i in range(start, stop):
                aad = self._aad(sealed.dtype, d, seal, i - start)
                try:
                    raw[i] = np.frombuffer(
                        aead.decrypt(bytes(sealed.nonces[i]), data[i].tobytes(), aad), dtype=np.uint8
                    )
                except InvalidTag:
                    raise IntegrityError(
                        f"AES-GCM authentication failed at row {i}: wrong key, tampered ciphertext, "
                        "or a row moved from its place in its batch"
                    ) from None
        return out
