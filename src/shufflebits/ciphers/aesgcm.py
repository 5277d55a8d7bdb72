"""AesGcm: the authenticated baseline the paper compares with (AES-256-GCM).

Each vector is sealed separately under a random 96-bit nonce, with the dtype
and width as associated data, so a wrong key, a flipped bit or a relabelled
dtype all fail authentication. Not format-preserving: ciphertext is bytes.
"""

from __future__ import annotations

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import IntegrityError, ShuffleBitsError
from .base import Cipher, Sealed
from .keys import Key, generate_key

NONCE_BYTES = 12
TAG_BYTES = 16


class AesGcm(Cipher):
    """AES-256-GCM per vector; ``Sealed.data`` is uint8 ``(n, nbytes + 16)``."""

    @classmethod
    def generate_key(cls) -> Key:
        return generate_key("aes-gcm")

    def _aad(self, dtype: str, d: int) -> bytes:
        return f"shufflebits/aes-gcm/v1/{dtype}/{d}".encode()

    def _encrypt_words(self, words, dtype):
        n, d = words.shape
        aead = AESGCM(self.key.material)
        aad = self._aad(dtype, d)
        nonces = np.frombuffer(self.nonce_source(NONCE_BYTES * n), dtype=np.uint8).reshape(n, NONCE_BYTES).copy()
        row_bytes = d * words.itemsize
        data = np.empty((n, row_bytes + TAG_BYTES), dtype=np.uint8)
        rows = words.view(np.uint8).reshape(n, row_bytes)
        for i in range(n):
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
        aead = AESGCM(self.key.material)
        aad = self._aad(sealed.dtype, d)
        out = np.empty((n, d), dtype=word)
        raw = out.view(np.uint8).reshape(n, d * word.itemsize)
        for i in range(n):
            try:
                raw[i] = np.frombuffer(aead.decrypt(bytes(sealed.nonces[i]), data[i].tobytes(), aad), dtype=np.uint8)
            except InvalidTag:
                raise IntegrityError(
                    f"AES-GCM authentication failed at row {i}: wrong key or tampered ciphertext"
                ) from None
        return out
