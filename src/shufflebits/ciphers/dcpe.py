"""DCPE: approximate distance-comparison-preserving encryption, "scale-and-perturb".

Fuchsbauer, Ghosal, Hauke, O'Neill, "Approximate Distance-Comparison-Preserving
Symmetric Encryption" (SCN 2022), written here from the paper's algorithm:
``c = s * m + lambda``, where ``lambda`` is uniform in the ball of radius
``s * beta / 4``: a direction ``u / |u|`` with ``u ~ N(0, I_d)`` and a radius
``s * beta / 4 * x ** (1 / d)`` with ``x ~ U(0, 1)``, both drawn from a PRF of
the key and a fresh per-vector 16-byte nonce (AES-256-CTR under the sub-key
``dcpe-noise``, the nonce being the initial counter block: ``keyed.row_words``).
Then ``|m1 - m2| < |m1 - m3| - beta`` implies ``|c1 - c2| < |c1 - c3|``: Euclidean ranking survives up to ``beta``.

``dcpe-shuffle`` (the catalogue's mode ``scale-perturb-shuffle``) also permutes
the dimensions with a key-derived shuffle, as IronCore's Cloaked AI does.
Decryption recomputes ``lambda`` from the nonce: ``m = (c - lambda) / s``, equal
to the plaintext up to float rounding (``exact=False``).

Ciphertext is a float vector of the plaintext's shape and dtype (float32 or
float64): the catalogue calls it format-preserving, and ``Sealed`` keeps it as
the float's integer words like every other format-preserving ciphertext. Unlike
the bit-level ciphers, its values are meant to be read as floats: matching
computes Euclidean distances on them (``ciphers.matching``). ``beta`` and
``scale`` (defaults 1 and 1, IronCore's default scale) are the key's parameters
(``Key.params``, ``keygen --beta --scale``): a ciphertext made with other values
carries another key's fingerprint and is refused.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import InvalidInputError
from . import keyed
from .base import Cipher, Sealed
from .catalogue import spec
from .keys import Key, generate_key

SHUFFLE_MODE = "scale-perturb-shuffle"
THREADS = min(4, os.cpu_count() or 1)
FLOAT_DTYPES = ("float32", "float64")


def float_values(name: str, words: np.ndarray, dtype: str) -> np.ndarray:
    """Plaintext words as finite float32/float64 values; anything else is an ``InvalidInputError``."""
    if dtype not in FLOAT_DTYPES:
        raise InvalidInputError(f"{name} encrypts float32 or float64 features, got {dtype}")
    values = words.view(np.dtype(dtype))
    if not np.isfinite(values).all():
        raise InvalidInputError(f"{name} encrypts finite features; these contain NaN or Inf")
    return values


class Dcpe(Cipher):
    """Scale-and-perturb DCPE; ``beta`` (approximation) and ``scale`` (s) come from the key's ``params``."""

    def __init__(self, key: Key, *, nonce_source=None) -> None:
        super().__init__(key, nonce_source=nonce_source)
        params = dict(key.params)
        self.beta, self.scale = params["beta"], params["scale"]
        self.shuffled = spec(key.cipher).mode == SHUFFLE_MODE
        self._noise_key = key.derive("dcpe-noise")
        self._orders: dict[int, np.ndarray] = {}

    @classmethod
    def generate_key(cls) -> Key:
        return generate_key("dcpe")

    def order(self, d: int) -> np.ndarray:
        """Ciphertext dimension ``j`` holds plaintext dimension ``order(d)[j]`` (identity without the shuffle)."""
        if d not in self._orders:
            self._orders[d] = keyed.shuffle(self.key.derive("dcpe-shuffle"), d) if self.shuffled else np.arange(d)
        return self._orders[d]

    @staticmethod
    def _layout(d: int) -> tuple[int, int]:
        """``(gaussian words, words per row)``: an even number for Box-Muller, then one for the radius."""
        even = d + d % 2
        return even, even + 2

    def _perturbations(self, words: np.ndarray, d: int, dtype) -> np.ndarray:
        """``lambda`` for each row of keystream ``words``: uniform in the ball of radius ``s * beta / 4``."""
        even, _ = self._layout(d)
        if d == 0:
            return np.zeros((len(words), 0), dtype)
        u = keyed.gaussians(words[:, :even])[:, :d]
        radius = self.scale * self.beta / 4 * keyed.uniforms(words[:, even]) ** (1.0 / d)
        norm = np.sqrt(np.einsum("ij,ij->i", u, u, dtype=np.float64))
        return u * (radius / np.maximum(norm, 1e-30)).astype(dtype)[:, None]

    def _rows(self, nonces: np.ndarray, d: int, work) -> None:
        """Run ``work(a, b, keystream words)`` over the row chunks, on up to ``THREADS`` threads.

        numpy's ufuncs and OpenSSL release the GIL, so the chunks (independent
        AES-CTR streams) run in parallel; each writes its own rows.
        """
        _, per_row = self._layout(d)
        chunks = keyed.row_chunks(nonces, per_row)

        def one(chunk):
            a, b = chunk
            work(a, b, keyed.row_words(self._noise_key, nonces, a, b, per_row))

        if len(chunks) < 2:
            for chunk in chunks:
                one(chunk)
            return
        with ThreadPoolExecutor(max_workers=min(THREADS, len(chunks))) as pool:
            list(pool.map(one, chunks))

    def _encrypt_words(self, words, dtype):
        values = float_values(self.name, words, dtype)
        n, d = values.shape
        nonces = keyed.counter_nonces(n, self._layout(d)[1], self.nonce_source)
        out = np.empty_like(values)
        held = np.finfo(values.dtype)
        least, most = float(held.smallest_subnormal), float(held.max)  # compared as Python floats: no cast
        if not least <= self.scale <= most or self.scale * self.beta / 4 > most:
            raise InvalidInputError(
                f"{self.name} scale {self.scale:g} and beta {self.beta:g} do not fit {values.dtype} values "
                "(s and s * beta / 4 must be finite and s non-zero there): choose values near the features' norms"
            )
        scale = values.dtype.type(self.scale)

        def work(a, b, stream):
            if self.shuffled:  # np.take with out= is several times faster than fancy indexing
                np.take(values[a:b], self.order(d), axis=1, out=out[a:b])
                out[a:b] *= scale
            else:
                np.multiply(values[a:b], scale, out=out[a:b])
            out[a:b] += self._perturbations(stream, d, values.dtype)

        self.order(d)  # derive the shuffle once, before the threads
        self._rows(nonces, d, work)
        if not np.isfinite(out).all():
            raise InvalidInputError(
                f"{self.name} ciphertext overflows {values.dtype} at scale {self.scale:g}: scale the features "
                "down or choose a smaller scale"
            )
        return out.view(words.dtype), nonces

    def _decrypt_words(self, words, sealed: Sealed):
        if sealed.nonces is None:
            raise InvalidInputError(f"{self.name} ciphertext needs its nonces")
        c = float_values(self.name, words, sealed.dtype)
        d = c.shape[1]
        plain = np.empty_like(c)
        scale = c.dtype.type(self.scale)

        def work(a, b, stream):
            plain[a:b] = (c[a:b] - self._perturbations(stream, d, c.dtype)) / scale

        self._rows(sealed.nonces, d, work)
        if self.shuffled:
            plain = np.take(plain, np.argsort(self.order(d)), axis=1)
        return plain.view(words.dtype)
