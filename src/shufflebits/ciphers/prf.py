"""The pseudo-random function behind every derived permutation: ChaCha20.

Keystreams come from ``cryptography``'s RFC 8439 ChaCha20 (OpenSSL). Its 16-byte
nonce is a 4-byte little-endian block counter followed by the 12-byte nonce;
we use exactly that layout for the per-vector nonces that travel with ciphertext.
"""

from __future__ import annotations

import itertools
import struct

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from ..errors import IntegrityError

BLOCK = 64
NONCE_BYTES = 16


def chacha20_xor(key: bytes, nonce16: bytes, data: bytes | memoryview) -> bytes:
    """``data`` XOR the ChaCha20 keystream starting at ``nonce16``'s counter."""
    encryptor = Cipher(algorithms.ChaCha20(key, bytes(nonce16)), mode=None).encryptor()
    return encryptor.update(data)


def keystream(key: bytes, nonce16: bytes, nbytes: int) -> np.ndarray:
    """``nbytes`` of ChaCha20 keystream as uint8."""
    return np.frombuffer(chacha20_xor(key, nonce16, bytes(nbytes)), dtype=np.uint8)


def nonce16(counter: int, nonce12: bytes) -> bytes:
    return struct.pack("<I", counter) + nonce12


def counters(nonces: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(nonces[:, :4]).view("<u4").reshape(-1).astype(np.int64)


def contiguous_runs(nonces: np.ndarray, blocks_per_row: int) -> list[tuple[int, int]]:
    """Row ranges whose keystreams are consecutive (one ChaCha20 call each).

    Encryption gives a batch one random 12-byte nonce and rows consecutive
    counters, so a whole batch is one run; row subsets still decrypt, in more runs.
    """
    n = len(nonces)
    if n == 0:
        return []
    count = counters(nonces)
    if np.any(count + blocks_per_row > 2**32):
        raise IntegrityError("nonce block counter overflows 32 bits (corrupted nonces)")
    same = np.all(nonces[1:, 4:] == nonces[:-1, 4:], axis=1) & (count[1:] == count[:-1] + blocks_per_row)
    breaks = np.flatnonzero(~same) + 1
    edges = [0, *breaks.tolist(), n]
    return list(itertools.pairwise(edges))


def batch_nonces(n: int, blocks_per_row: int, random12) -> np.ndarray:
    """uint8 ``(n, 16)`` nonces: one random 12-byte nonce per 2**32 blocks, consecutive counters."""
    if n == 1:  # single-vector latency: counter 0, no arrays to build
        return np.frombuffer(bytes(4) + random12(12), dtype=np.uint8).reshape(1, NONCE_BYTES).copy()
    rows_per_nonce = max(1, (2**32) // max(blocks_per_row, 1))
    out = np.empty((n, NONCE_BYTES), dtype=np.uint8)
    for start in range(0, n, rows_per_nonce):
        stop = min(n, start + rows_per_nonce)
        count = (np.arange(stop - start, dtype=np.uint64) * blocks_per_row).astype("<u4")
        out[start:stop, :4] = count.view(np.uint8).reshape(-1, 4)
        out[start:stop, 4:] = np.frombuffer(random12(12), dtype=np.uint8)
    return out


def fisher_yates(stream, size: int) -> np.ndarray | None:
    """Unbiased Fisher-Yates shuffle of ``arange(size)`` drawing bytes from ``stream``.

    Step ``i`` takes a byte, masks it to the next power of two above ``i`` and
    rejects values > ``i`` (no modulo bias). Returns None if ``stream`` runs out.
    """
    idx = np.arange(size)
    pos = 0
    for i in range(size - 1, 0, -1):
        mask = (1 << i.bit_length()) - 1
        while True:
            if pos >= len(stream):
                return None
            r = int(stream[pos]) & mask
            pos += 1
            if r <= i:
                break
        idx[i], idx[r] = idx[r], idx[i]
    return idx


def derived_permutation(key: bytes, tag: int, bits: int, index: int) -> np.ndarray:
    """The permutation ``(tag, bits, index)`` of a key: Fisher-Yates on its own keystream."""
    nonce12 = struct.pack("<BBHQ", tag, bits, 0, index)
    length = 4 * BLOCK
    while True:
        idx = fisher_yates(keystream(key, nonce16(0, nonce12), length), bits)
        if idx is not None:
            return idx
        length *= 2


def chacha20_xor_into(key: bytes, nonce16: bytes, data: np.ndarray, out: np.ndarray) -> None:
    """``out = data XOR keystream`` for C-contiguous uint8 arrays, without extra copies."""
    encryptor = Cipher(algorithms.ChaCha20(key, bytes(nonce16)), mode=None).encryptor()
    encryptor.update_into(np.ascontiguousarray(data).reshape(-1), out.reshape(-1))
