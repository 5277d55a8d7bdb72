"""Fast CPU kernels (numba, parallel, cached on disk so start-up stays short).

Fixed and per-dimension modes OR together one 256-entry table per byte of the
word (16 KiB of tables for float32: stays in L1). One-time mode runs each
element's Fisher-Yates on its own keystream bytes and applies the swaps to the
word's bits directly, so no permutation array is ever materialised. Kernels
write into a caller-supplied ``out`` (the benchmark reuses one buffer).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_M = np.uint32(255)
_S8 = np.uint32(8)
_S16 = np.uint32(16)
_S24 = np.uint32(24)
_CHUNK = 1 << 15


@njit(error_model="numpy", cache=True)
def _span32(x, o, t0, t1, t2, t3):
    for i in range(x.size):
        v = x[i]
        o[i] = t0[v & _M] | t1[(v >> _S8) & _M] | t2[(v >> _S16) & _M] | t3[v >> _S24]


@njit(error_model="numpy", cache=True)
def _span(x, o, t):
    nbytes = t.shape[0]
    for i in range(x.size):
        v = np.uint64(x[i])
        acc = t[0, v & np.uint64(255)]
        for k in range(1, nbytes):
            acc |= t[k, (v >> np.uint64(8 * k)) & np.uint64(255)]
        o[i] = acc


@njit(parallel=True, error_model="numpy", cache=True)
def fixed(words, tables, out):
    """``words``/``out`` 1-D, ``tables`` ``(nbytes, 256)`` of the word type."""
    chunks = (words.size + _CHUNK - 1) // _CHUNK
    for c in prange(chunks):
        a = c * _CHUNK
        b = min(words.size, a + _CHUNK)
        if tables.shape[0] == 4:
            _span32(words[a:b], out[a:b], tables[0], tables[1], tables[2], tables[3])
        else:
            _span(words[a:b], out[a:b], tables)
    return out


@njit(error_model="numpy", cache=True)
def _row32(x, o, tables):
    for j in range(x.size):
        v = x[j]
        t = tables[j]
        o[j] = t[0, v & _M] | t[1, (v >> _S8) & _M] | t[2, (v >> _S16) & _M] | t[3, v >> _S24]


@njit(error_model="numpy", cache=True)
def _row(x, o, tables):
    nbytes = tables.shape[1]
    for j in range(x.size):
        v = np.uint64(x[j])
        acc = tables[j, 0, v & np.uint64(255)]
        for k in range(1, nbytes):
            acc |= tables[j, k, (v >> np.uint64(8 * k)) & np.uint64(255)]
        o[j] = acc


@njit(parallel=True, error_model="numpy", cache=True)
def per_dimension(words, tables, out):
    """``words``/``out`` ``(n, d)``, ``tables`` ``(d, nbytes, 256)``."""
    for i in prange(words.shape[0]):
        if tables.shape[1] == 4:
            _row32(words[i], out[i], tables)
        else:
            _row(words[i], out[i], tables)
    return out


@njit(error_model="numpy", cache=True)
def _masks():
    masks = np.zeros(64, dtype=np.int64)
    for s in range(1, 64):
        m = 1
        while m < s:
            m = (m << 1) | 1
        masks[s] = m
    return masks


@njit(error_model="numpy", cache=True)
def _draw_swaps(region, bits, masks, swaps):
    """Fisher-Yates draws (masked bytes, rejection) into ``swaps[s]``; False if ``region`` ran out."""
    pos = 0
    for s in range(bits - 1, 0, -1):
        while True:
            if pos >= region.size:
                return False
            r = region[pos] & masks[s]
            pos += 1
            if r <= s:
                break
        swaps[s] = r
    return True


@njit(parallel=True, error_model="numpy", cache=True)
def one_time(words, stream, bits, decrypt, out):
    """Per-element Fisher-Yates from ``stream`` ``(n, d, E)`` bytes, applied as bit swaps.

    Returns ``exhausted`` ``(n, d)``: an element whose ``E`` bytes ran out is
    left unchanged (the caller finishes it with the reference code).
    """
    n, d = words.shape
    exhausted = np.zeros((n, d), dtype=np.bool_)
    top = np.uint64(bits - 1)
    one = np.uint64(1)
    masks = _masks()
    for i in prange(n):
        swaps = np.zeros(64, dtype=np.int64)
        for j in range(d):
            x = np.uint64(words[i, j])
            if not _draw_swaps(stream[i, j], bits, masks, swaps):
                exhausted[i, j] = True
            elif decrypt:
                for s in range(1, bits):
                    p = top - np.uint64(s)
                    q = top - np.uint64(swaps[s])
                    t = ((x >> p) ^ (x >> q)) & one
                    x ^= (t << p) | (t << q)
            else:
                for s in range(bits - 1, 0, -1):
                    p = top - np.uint64(s)
                    q = top - np.uint64(swaps[s])
                    t = ((x >> p) ^ (x >> q)) & one
                    x ^= (t << p) | (t << q)
            out[i, j] = x
    return exhausted


@njit(parallel=True, error_model="numpy", cache=True)
def one_time_destinations(stream, bits, dst):
    """Per-element destinations ``dst`` ``(n, d, bits)`` (LSB numbering) for the torch kernel.

    Same draws as ``one_time``; returns ``exhausted`` like it.
    """
    n, d = stream.shape[0], stream.shape[1]
    exhausted = np.zeros((n, d), dtype=np.bool_)
    masks = _masks()
    for i in prange(n):
        swaps = np.zeros(64, dtype=np.int64)
        idx = np.zeros(64, dtype=np.int64)
        for j in range(d):
            if not _draw_swaps(stream[i, j], bits, masks, swaps):
                exhausted[i, j] = True
                continue
            for k in range(bits):
                idx[k] = k
            for s in range(bits - 1, 0, -1):
                idx[s], idx[swaps[s]] = idx[swaps[s]], idx[s]
            for k in range(bits):
                dst[i, j, bits - 1 - idx[k]] = bits - 1 - k
    return exhausted
