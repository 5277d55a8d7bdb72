"""ShuffleBits: permute the bits of every float (Ni et al., ICCVW 2021).

Modes (the mode is part of the key: each is its own catalogue entry, see ``catalogue``):

- ``fixed``: one permutation for every element, as in the paper.
- ``per-dimension``: one permutation per feature dimension.
- ``one-time``: a fresh permutation for every element of every vector, from the
  key and a random per-vector nonce that travels with the ciphertext. No two
  elements of a vector (and no two vectors) share a permutation.

Real keys are 256-bit secrets; permutations come from unbiased Fisher-Yates
(``prf.fisher_yates``: masked bytes with rejection) on ChaCha20 keystreams under
domain-separated sub-keys:

- fixed / per-dimension: sub-key ``permutations``, nonce = (mode tag, word bits,
  dimension), counter 0; derived once per key and cached as lookup tables.
- one-time: sub-key ``one-time``; vector ``i``'s 16-byte nonce (counter ||
  12-byte nonce) starts its keystream, and element ``j`` draws from bytes
  ``[j*E, (j+1)*E)`` (``E = REGION_BYTES[bits]``). In the rare case (a few
  float32 elements per million) that ``E`` bytes do not finish the shuffle, it
  continues on its own overflow stream (sub-key ``one-time-overflow``, nonce
  from SHA-256(vector nonce || j)), so every permutation stays exactly uniform.

``from_seed`` reproduces the authors' numpy-seeded permutation for compatibility
only; that INSECURE recipe lives in ``decrepit``.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

from ..errors import ShuffleBitsError
from . import kernels_numpy, prf
from .base import Cipher, Sealed
from .catalogue import cipher_names, spec
from .keys import Key, generate_key

MODE_CIPHERS = {spec(name).mode: name for name in cipher_names(family="shufflebits")}
KERNELS = ("numba", "numpy")
# Keystream bytes each one-time element draws from before falling back to its
# overflow stream (expected need: 19, 41 and 85 bytes for 16, 32 and 64 bits).
REGION_BYTES = {16: 64, 32: 64, 64: 128}
_CHUNK_BYTES = 1 << 25
_TAG_FIXED, _TAG_DIMENSION = 1, 2


class ShuffleBits(Cipher):
    """Bit-permutation cipher. ``kernel`` picks the numba kernel or the numpy reference."""

    def __init__(self, key: Key, *, kernel: str = "numba", nonce_source=None) -> None:
        super().__init__(key, nonce_source=nonce_source)
        if kernel not in KERNELS:
            raise ShuffleBitsError(f"unknown kernel {kernel!r}; expected one of {', '.join(KERNELS)}")
        self.kernel = kernel
        self.needs_rows = self.mode != "fixed"
        self._cache: dict = {}

    @classmethod
    def generate_key(cls, mode: str = "one-time") -> Key:
        """A fresh 256-bit key; ``one-time`` is the default because it hides the most."""
        if mode not in MODE_CIPHERS:
            raise ShuffleBitsError(f"unknown mode {mode!r}; expected one of {', '.join(MODE_CIPHERS)}")
        return generate_key(MODE_CIPHERS[mode])

    @classmethod
    def from_seed(cls, seed: int, *, kernel: str = "numba") -> ShuffleBits:
        """INSECURE, paper-compatible: the authors' ``default_rng(seed)`` permutation (fixed mode).

        The key has only the seed's entropy and one permutation for everything;
        use it to read or reproduce the paper's ciphertexts, not to protect data.
        float16 / float64 use the same recipe on ``np.arange(16 or 64)``.
        """
        from .decrepit import seed_key

        return cls(seed_key(seed), kernel=kernel)

    @property
    def mode(self) -> str:
        return self.key.mode

    # -- permutations ---------------------------------------------------------

    def permutation(self, bits: int = 32, dimension: int | None = None) -> np.ndarray:
        """``idx`` (output bit j = input bit idx[j], MSB first) of the fixed or per-dimension mode."""
        if self.mode == "one-time":
            raise ShuffleBitsError("one-time keys have no fixed permutation (a fresh one per element)")
        if self.key.seed is not None:
            from .decrepit import paper_permutation

            return paper_permutation(self.key.seed, bits)
        if self.mode == "fixed":
            return prf.derived_permutation(self._subkey("permutations"), _TAG_FIXED, bits, 0)
        if dimension is None:
            raise ShuffleBitsError("per-dimension keys need a dimension index")
        return prf.derived_permutation(self._subkey("permutations"), _TAG_DIMENSION, bits, dimension)

    def destinations(self, bits: int, d: int | None = None, decrypt: bool = False) -> np.ndarray:
        """Kernel form of the permutation(s): ``(bits,)`` for fixed, ``(d, bits)`` per dimension."""
        key = ("dst", bits, d, decrypt)
        if key not in self._cache:
            if self.mode == "fixed":
                dst = kernels_numpy.destinations(self.permutation(bits))
            else:
                perms = [self.permutation(bits, j) for j in range(d)]
                dst = kernels_numpy.destinations(np.array(perms, dtype=np.int64).reshape(d, bits))
            self._cache[key] = kernels_numpy.inverse(dst) if decrypt else dst
        return self._cache[key]

    def tables(self, bits: int, d: int | None, decrypt: bool) -> np.ndarray:
        """Byte lookup tables of the fast kernels (cached per word size and width)."""
        key = ("lut", bits, d, decrypt)
        if key not in self._cache:
            word = np.dtype(f"u{bits // 8}")
            self._cache[key] = kernels_numpy.lookup_tables(self.destinations(bits, d, decrypt), word)
        return self._cache[key]

    def _subkey(self, purpose: str) -> bytes:
        if ("subkey", purpose) not in self._cache:
            self._cache["subkey", purpose] = self.key.derive(purpose)
        return self._cache["subkey", purpose]

    # -- encryption -----------------------------------------------------------

    def _encrypt_words(self, words, dtype):
        return self._apply(words, None, decrypt=False)

    def _decrypt_words(self, words, sealed: Sealed):
        if self.mode == "one-time":
            if sealed.nonces is None or sealed.nonces.shape[1:] != (prf.NONCE_BYTES,):
                raise ShuffleBitsError("one-time ciphertext needs uint8 (n, 16) nonces")
        return self._apply(words, sealed.nonces, decrypt=True)[0]

    def _apply(self, words: np.ndarray, nonces, decrypt: bool):
        bits = 8 * words.dtype.itemsize
        if self.mode == "fixed":
            if self.kernel == "numpy":
                return kernels_numpy.permute(words, self.destinations(bits, None, decrypt)), None
            from . import kernels_numba

            flat = words.reshape(-1)
            out = kernels_numba.fixed(flat, self.tables(bits, None, decrypt), np.empty_like(flat))
            return out.reshape(words.shape), None
        _n, d = words.shape
        if self.mode == "per-dimension":
            if self.kernel == "numpy" or d == 0:
                return kernels_numpy.permute(words, self.destinations(bits, d, decrypt)), None
            from . import kernels_numba

            return kernels_numba.per_dimension(words, self.tables(bits, d, decrypt), np.empty_like(words)), None
        return self._one_time(words, bits, nonces, decrypt)

    def _one_time_streams(self, n: int, d: int, bits: int, nonces):
        """``(nonces, chunks)``: chunks of ``(start, stop, stream (rows, d, E))`` covering all rows."""
        region = REGION_BYTES[bits]
        blocks = -(-d * region // prf.BLOCK)
        if nonces is None:
            nonces = prf.batch_nonces(n, blocks, self.nonce_source)
        rows_per_chunk = max(1, _CHUNK_BYTES // max(1, blocks * prf.BLOCK))
        stream_key = self._subkey("one-time")

        def chunks():
            for start, stop in prf.contiguous_runs(nonces, blocks):
                for a in range(start, stop, rows_per_chunk):
                    b = min(stop, a + rows_per_chunk)
                    stream = prf.keystream(stream_key, bytes(nonces[a]), (b - a) * blocks * prf.BLOCK)
                    yield a, b, stream.reshape(b - a, blocks * prf.BLOCK)[:, : d * region].reshape(b - a, d, region)

        return nonces, chunks()

    def _one_time(self, words, bits, nonces, decrypt):
        n, d = words.shape
        out = np.empty_like(words)
        nonces, chunks = self._one_time_streams(n, d, bits, nonces)
        for a, b, stream in chunks:
            out[a:b] = self._one_time_rows(words[a:b], stream, nonces[a:b], bits, decrypt)
        return out, nonces

    def one_time_destinations(self, n: int, d: int, bits: int = 32, nonces=None):
        """``(nonces, dst)``: every element's permutation as destinations ``(n, d, bits)`` uint8.

        Depends only on the key and nonces, never on features: the torch path
        computes it on the host and ships it to the device beside the features.
        """
        from . import kernels_numba

        dst = np.empty((n, d, bits), dtype=np.uint8)
        nonces, chunks = self._one_time_streams(n, d, bits, nonces)
        for a, b, stream in chunks:
            exhausted = kernels_numba.one_time_destinations(stream, bits, dst[a:b])
            for i, j in zip(*np.nonzero(exhausted)):
                idx = self._element_permutation(stream[i, j], nonces[a + i], j, bits)
                dst[a + i, j] = kernels_numpy.destinations(idx)
        return nonces, dst

    def _one_time_rows(self, words, stream, nonces, bits, decrypt):
        if self.kernel == "numpy":
            idx = np.empty((*words.shape, bits), dtype=np.int64)
            for i, j in np.ndindex(words.shape):
                idx[i, j] = self._element_permutation(stream[i, j], nonces[i], j, bits)
            dst = kernels_numpy.destinations(idx)
            return kernels_numpy.permute(words, kernels_numpy.inverse(dst) if decrypt else dst)
        from . import kernels_numba

        out = np.empty_like(words)
        exhausted = kernels_numba.one_time(words, stream, bits, decrypt, out)
        for i, j in zip(*np.nonzero(exhausted)):
            dst = kernels_numpy.destinations(self._element_permutation(stream[i, j], nonces[i], j, bits))
            out[i, j] = kernels_numpy.permute(words[i, j], kernels_numpy.inverse(dst) if decrypt else dst)
        return out

    def _element_permutation(self, region: np.ndarray, nonce: np.ndarray, j: int, bits: int) -> np.ndarray:
        """One element's permutation: Fisher-Yates on its region, then its own overflow stream."""
        idx = prf.fisher_yates(region, bits)
        length = 4 * prf.BLOCK
        overflow_nonce = hashlib.sha256(bytes(nonce) + struct.pack("<Q", int(j))).digest()[:12]
        while idx is None:
            extra = prf.keystream(self._subkey("one-time-overflow"), prf.nonce16(0, overflow_nonce), length)
            idx = prf.fisher_yates(np.concatenate([region, extra]), bits)
            length *= 2
        return idx

    # -- torch ----------------------------------------------------------------

    def encrypt_tensor(self, x):
        """Torch path (CPU or CUDA, in-graph): ``(ciphertext tensor, nonces tensor or None)``.

        Fixed and per-dimension modes gather from lookup tables on the device
        (no nonces). One-time mode derives each element's permutation on the
        host from key + fresh nonces (no feature data involved), uploads them
        as uint8 destinations (``bits`` bytes per element) and moves the bits
        on the device; it returns the uint8 ``(n, 16)`` nonces.
        """
        import torch

        from . import kernels_torch

        words = kernels_torch.int_view(x)
        bits = 8 * words.element_size()
        if self.mode != "fixed" and words.ndim != 2:
            raise ShuffleBitsError(f"{self.name} needs (n, d) tensors, got {tuple(words.shape)}")
        if self.mode == "one-time":
            nonces, dst = self.one_time_destinations(words.shape[0], words.shape[1], bits)
            out = kernels_torch.permute_elements(words, torch.from_numpy(dst).to(words.device))
            return out.view(x.dtype), torch.from_numpy(nonces).to(words.device)
        d = None if self.mode == "fixed" else words.shape[-1]
        cache_key = ("torch", bits, d, str(words.device))
        if cache_key not in self._cache:
            tables = self.tables(bits, d, decrypt=False)
            if self.mode == "fixed":
                tables = kernels_torch.wide_tables(tables)
            self._cache[cache_key] = kernels_torch.table_tensor(tables, words.device)
        if self.mode == "fixed":
            out = kernels_torch.permute_fixed(words, self._cache[cache_key])
        else:
            out = kernels_torch.permute_per_dimension(words, self._cache[cache_key])
        return out.view(x.dtype), None
