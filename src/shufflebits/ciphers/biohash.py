"""BioHashing (Teoh, Ngo, Goh 2004): keyed orthonormal projection to ``bits`` bits, matched by Hamming distance.

The feature vector is projected on ``bits`` (default: ``d``; the key's parameter,
``keygen --bits``) orthonormal random directions (``keyed.orthonormal`` under
the sub-key ``biohash``: Gram-Schmidt of a key-derived Gaussian matrix, here as
its QR) and each projection is thresholded at 0. One-way and lossy: the
catalogue declares it not invertible and not exact, so ``decrypt`` refuses.

Ciphertext layout: the bits of each row packed most significant first
(``np.packbits``), zero-padded to whole plaintext words, as uint8 rows like
AES-GCM's (``format_preserving=False``, no tag). ``Sealed.shape`` is therefore
``(n, words)``, the ciphertext's width in plaintext-sized words, and
``words()`` reads those bytes as words. The padding bits are 0 in every row, so
they never add to a Hamming distance.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError, ShuffleBitsError
from . import keyed
from .base import Cipher, Sealed
from .dcpe import float_values
from .keys import Key, generate_key


class BioHash(Cipher):
    """``bits`` sign bits of a keyed orthonormal projection (the key's ``params``: ``bits`` in 1..d; None: ``d``)."""

    def __init__(self, key: Key, *, nonce_source=None) -> None:
        super().__init__(key, nonce_source=nonce_source)
        self.bits = dict(key.params)["bits"]
        self._projections: dict[int, np.ndarray] = {}

    @classmethod
    def generate_key(cls) -> Key:
        return generate_key("biohash")

    def projection(self, d: int) -> np.ndarray:
        """The secret ``(d, bits)`` matrix with orthonormal columns."""
        bits = d if self.bits is None else self.bits
        if bits > d:
            raise InvalidInputError(f"biohash bits must be in 1..d (d = {d}), got {bits}")
        if d not in self._projections:
            self._projections[d] = keyed.orthonormal(self.key.derive("biohash"), d, bits)
        return self._projections[d]

    def hash_bits(self, features: np.ndarray) -> np.ndarray:
        """``(n, bits)`` uint8 BioHash bits of float features."""
        values = np.asarray(features)
        return (values @ self.projection(values.shape[1]).astype(values.dtype) > 0).astype(np.uint8)

    def _encrypt_words(self, words, dtype):
        values = float_values(self.name, words, dtype)
        packed = np.packbits(self.hash_bits(values), axis=1)
        itemsize = words.itemsize
        width = -(-packed.shape[1] // itemsize) * itemsize
        data = np.zeros((len(values), width), dtype=np.uint8)
        data[:, : packed.shape[1]] = packed
        return data, None

    def _decrypt_words(self, words, sealed: Sealed):
        raise ShuffleBitsError(
            f"{self.name} ciphertexts cannot be decrypted (one-way: invertible=False in the catalogue); "
            "compare them with `shufflebits reid` instead"
        )
