"""Key-derived floats for the searchable ciphers: Gaussians, orthonormal matrices, dimension shuffles.

Every draw comes from a keystream, so it is a function of a sub-key and a
nonce only: the same key rebuilds the same matrix, the same (key, nonce) the
same per-vector perturbation. Key-derived matrices and shuffles use ChaCha20
(``prf``); per-vector draws use AES-256-CTR (AES-NI makes it about 15x faster
than ChaCha20 here, and DCPE draws 2 KiB per 512-d vector): a vector's 16-byte
nonce is its initial counter block, a batch takes one random start (top bit of
the low 64-bit half cleared, so it never wraps) with rows ``blocks`` apart, so
one AES-CTR stream covers the batch and any subset of rows still decrypts. Gaussians come from Box-Muller on
24-bit uniforms (float32; the tails stop near 5.9 sigma, which changes nothing
for a direction on the sphere). Matrices are Haar-distributed: QR of a Gaussian
matrix with the signs of R's diagonal moved into Q (Mezzadri 2007).
"""

from __future__ import annotations

import itertools
import struct

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher as _OpenSSL
from cryptography.hazmat.primitives.ciphers import algorithms, modes

from ..errors import IntegrityError, InvalidInputError
from . import prf

_ROWS_PER_CHUNK = 2048
NONCE_BYTES = 16
AES_BLOCK = 16
_TAG_MATRIX, _TAG_SHUFFLE = 1, 2


def _words(stream: np.ndarray) -> np.ndarray:
    return stream.view("<u4").astype(np.uint32, copy=False)


def gaussians(words: np.ndarray) -> np.ndarray:
    """Standard normal float32 values from uint32 ``words`` (last axis even).

    Box-Muller on pairs: the first half of each row gives the radii, the second
    half the angles (halves instead of interleaved pairs keep every pass contiguous).
    """
    half = words.shape[-1] // 2
    u = (words >> np.uint32(8)).astype(np.float32)
    u += np.float32(0.5)
    u *= np.float32(2.0**-24)
    radius, angle = u[..., :half], u[..., half:]
    np.log(radius, out=radius)
    radius *= np.float32(-2.0)
    np.sqrt(radius, out=radius)
    angle *= np.float32(2.0 * np.pi)
    out = np.empty(words.shape, dtype=np.float32)
    np.cos(angle, out=out[..., :half])
    np.sin(angle, out=out[..., half:])
    out[..., :half] *= radius
    out[..., half:] *= radius
    return out


def uniforms(words: np.ndarray) -> np.ndarray:
    """Uniform float64 values in (0, 1) from uint32 ``words``."""
    return (words.astype(np.float64) + 0.5) * 2.0**-32


def _fixed_stream(key: bytes, tag: int, d: int, columns: int, nbytes: int) -> np.ndarray:
    return prf.keystream(key, prf.nonce16(0, struct.pack("<BBHII", tag, 0, 0, d, columns)), nbytes)


def orthonormal(key: bytes, d: int, columns: int) -> np.ndarray:
    """A Haar-random ``(d, columns)`` float64 matrix with orthonormal columns (``columns <= d``), from ``key``."""
    count = d * columns + (d * columns) % 2
    g = gaussians(_words(_fixed_stream(key, _TAG_MATRIX, d, columns, 4 * count)))[: d * columns]
    q, r = np.linalg.qr(g.astype(np.float64).reshape(d, columns))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)[None, :]


def shuffle(key: bytes, d: int) -> np.ndarray:
    """A uniform permutation of ``range(d)`` from ``key``: argsort of 64-bit keystream words."""
    stream = _fixed_stream(key, _TAG_SHUFFLE, d, 0, 8 * d)
    return np.argsort(stream.view("<u8"), kind="stable")


def counter_nonces(n: int, words_per_row: int, random16) -> np.ndarray:
    """uint8 ``(n, 16)`` initial counter blocks for rows of ``words_per_row`` keystream words."""
    blocks = row_blocks(words_per_row)
    start = bytearray(random16(NONCE_BYTES))
    start[8] &= 0x7F
    out = np.empty((n, NONCE_BYTES), dtype=np.uint8)
    out[:, :8] = np.frombuffer(bytes(start[:8]), np.uint8)
    low = np.uint64(int.from_bytes(start[8:], "big")) + np.arange(n, dtype=np.uint64) * np.uint64(blocks)
    out[:, 8:] = low.astype(">u8").view(np.uint8).reshape(n, 8)
    return out


def _runs(nonces: np.ndarray, blocks: int) -> list[tuple[int, int]]:
    """Row ranges whose keystreams are consecutive (one AES-CTR stream each)."""
    n = len(nonces)
    if n == 0:
        return []
    low = np.ascontiguousarray(nonces[:, 8:]).view(">u8").reshape(-1).astype(np.uint64)
    if np.any(low > np.uint64(2**64 - 1 - blocks * n)):
        raise IntegrityError("nonce counter would wrap 64 bits (corrupted nonces)")
    same = np.all(nonces[1:, :8] == nonces[:-1, :8], axis=1) & (low[1:] == low[:-1] + np.uint64(blocks))
    edges = [0, *(np.flatnonzero(~same) + 1).tolist(), n]
    return list(itertools.pairwise(edges))


def row_chunks(nonces: np.ndarray, words_per_row: int) -> list[tuple[int, int]]:
    """Row ranges of at most ``_ROWS_PER_CHUNK`` consecutive rows whose keystreams are contiguous."""
    if nonces.dtype != np.uint8 or nonces.ndim != 2 or nonces.shape[1] != NONCE_BYTES:
        raise InvalidInputError(f"nonces must be uint8 (n, {NONCE_BYTES}), got {nonces.dtype} {nonces.shape}")
    return [
        (a, min(stop, a + _ROWS_PER_CHUNK))
        for start, stop in _runs(nonces, row_blocks(words_per_row))
        for a in range(start, stop, _ROWS_PER_CHUNK)
    ]


def row_words(key: bytes, nonces: np.ndarray, a: int, b: int, words_per_row: int) -> np.ndarray:
    """Rows ``a:b``'s ``words_per_row`` uint32 AES-256-CTR words (one stream from row ``a``'s counter block).

    ``a:b`` must be one of ``row_chunks``; chunks are independent, so they can run on several threads.
    """
    nbytes = (b - a) * row_blocks(words_per_row) * AES_BLOCK
    out = np.empty(nbytes + AES_BLOCK - 1, dtype=np.uint8)
    stream = _OpenSSL(algorithms.AES(key), modes.CTR(bytes(nonces[a]))).encryptor()
    stream.update_into(np.zeros(nbytes, dtype=np.uint8), out)
    return _words(out[:nbytes]).reshape(b - a, -1)[:, :words_per_row]


def row_blocks(words_per_row: int) -> int:
    """AES blocks per row for ``row_words``."""
    return -(-4 * words_per_row // AES_BLOCK)
