"""Rotation: a key-derived random orthogonal matrix, optionally plus Gaussian noise.

A common "lightweight" template protection (and a step of SecureVector):
``c = R m (+ sigma * n)`` with ``R`` Haar-random orthogonal, derived from the
key for each dimension ``d`` (``keyed.orthonormal`` under the sub-key
``rotation``). Distances and inner products are kept exactly (up to float
rounding), so matching needs no key, and so does the attack: orthogonal
Procrustes recovers ``R`` from about ``d`` known pairs (``attacks.searchable``).

``noise`` (sigma, default 0; the key's parameter, ``keygen --noise``) adds
fresh N(0, sigma^2 I) noise per vector from the nonce source (a ChaCha20
stream under 32 fresh bytes); it is not stored, so decryption ``R^T c``
returns the plaintext plus rotated noise. The ciphertext is
a float vector of the plaintext's shape and dtype, kept in ``Sealed`` as its
integer words (see ``dcpe`` for why the catalogue calls that format-preserving).
"""

from __future__ import annotations

import numpy as np

from . import keyed, prf
from .base import Cipher, Sealed
from .dcpe import float_values
from .keys import Key, generate_key


class Rotation(Cipher):
    """``c = R m + noise * N(0, I)``; ``noise`` (>= 0) comes from the key's ``params``."""

    def __init__(self, key: Key, *, nonce_source=None) -> None:
        super().__init__(key, nonce_source=nonce_source)
        self.noise = dict(key.params)["noise"]
        self._matrices: dict[int, np.ndarray] = {}

    @classmethod
    def generate_key(cls) -> Key:
        return generate_key("rotation")

    def matrix(self, d: int) -> np.ndarray:
        """The secret ``(d, d)`` orthogonal matrix ``R`` for ``d``-dimensional features."""
        if d not in self._matrices:
            self._matrices[d] = keyed.orthonormal(self.key.derive("rotation"), d, d)
        return self._matrices[d]

    def _encrypt_words(self, words, dtype):
        values = float_values(self.name, words, dtype)
        n, d = values.shape
        out = (values @ self.matrix(d).T.astype(values.dtype)).astype(values.dtype, copy=False)
        if self.noise > 0:
            seed = self.nonce_source(32)
            stream = prf.keystream(seed, bytes(prf.NONCE_BYTES), 4 * n * (d + d % 2))
            noise = keyed.gaussians(stream.view("<u4").reshape(n, -1))[:, :d]
            out += (self.noise * noise).astype(values.dtype)
        return np.ascontiguousarray(out).view(words.dtype), None

    def _decrypt_words(self, words, sealed: Sealed):
        c = float_values(self.name, words, sealed.dtype)
        plain = (c @ self.matrix(c.shape[1]).astype(c.dtype)).astype(c.dtype, copy=False)
        return np.ascontiguousarray(plain).view(words.dtype)
