"""Fast CPU kernels (numba, parallel, cached on disk so start-up stays short).

Fixed and per-dimension modes OR together one 256-entry table per byte of the
word (16 KiB of tables for float32: stays in L1). One-time mode runs each
float32 through its Beneš network as nine delta swaps whose masks come straight
from the keystream words. ``fisher_yates`` derives the per-dimension key
schedule. Kernels write into a caller-supplied ``out`` (the benchmark reuses one buffer).
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


@njit(error_model="numpy", cache=True)
def _fixed_chunk(words, tables, out, c):
    a = c * _CHUNK
    b = min(words.size, a + _CHUNK)
    if tables.shape[0] == 4:
        _span32(words[a:b], out[a:b], tables[0], tables[1], tables[2], tables[3])
    else:
        _span(words[a:b], out[a:b], tables)


@njit(parallel=True, error_model="numpy", cache=True)
def fixed(words, tables, out):
    """``words``/``out`` 1-D, ``tables`` ``(nbytes, 256)`` of the word type."""
    for c in prange((words.size + _CHUNK - 1) // _CHUNK):
        _fixed_chunk(words, tables, out, c)
    return out


@njit(error_model="numpy", cache=True)
def fixed_serial(words, tables, out):
    """``fixed`` on the calling thread only (see ``SERIAL_BELOW``)."""
    for c in range((words.size + _CHUNK - 1) // _CHUNK):
        _fixed_chunk(words, tables, out, c)
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


@njit(error_model="numpy", cache=True)
def _table_row(words, tables, out, i):
    if tables.shape[1] == 4:
        _row32(words[i], out[i], tables)
    else:
        _row(words[i], out[i], tables)


@njit(parallel=True, error_model="numpy", cache=True)
def per_dimension(words, tables, out):
    """``words``/``out`` ``(n, d)``, ``tables`` ``(d, nbytes, 256)``."""
    for i in prange(words.shape[0]):
        _table_row(words, tables, out, i)
    return out


@njit(error_model="numpy", cache=True)
def per_dimension_serial(words, tables, out):
    """``per_dimension`` on the calling thread only (see ``SERIAL_BELOW``)."""
    for i in range(words.shape[0]):
        _table_row(words, tables, out, i)
    return out


@njit(error_model="numpy", cache=True)
def _direct_row(words, dst, out, i):
    bits = dst.shape[1]
    one = words.dtype.type(1)
    for j in range(words.shape[1]):
        x = words[i, j]
        acc = words.dtype.type(0)
        for p in range(bits):
            acc |= ((x >> words.dtype.type(p)) & one) << words.dtype.type(dst[j, p])
        out[i, j] = acc


@njit(parallel=True, error_model="numpy", cache=True)
def per_dimension_direct(words, dst, out):
    """Per-dimension mode from destinations ``dst`` ``(d, bits)``: each bit moved on its own.

    Slower per element than the tables, but needs no table setup (4 KiB per
    dimension for float32): what a few vectors of a very wide key should use.
    """
    for i in prange(words.shape[0]):
        _direct_row(words, dst, out, i)
    return out


@njit(error_model="numpy", cache=True)
def per_dimension_direct_serial(words, dst, out):
    """``per_dimension_direct`` on the calling thread only (see ``SERIAL_BELOW``)."""
    for i in range(words.shape[0]):
        _direct_row(words, dst, out, i)
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


@njit(error_model="numpy", cache=True)
def fisher_yates(streams, bits, idx):
    """``prf.fisher_yates`` on every row of ``streams`` ``(m, E)`` into ``idx`` ``(m, bits)``.

    Returns ``exhausted`` ``(m,)``: rows whose ``E`` bytes ran out (the caller
    redoes those with a longer stream).
    """
    m = streams.shape[0]
    exhausted = np.zeros(m, dtype=np.bool_)
    masks = _masks()
    swaps = np.zeros(64, dtype=np.int64)
    for i in range(m):
        for k in range(bits):
            idx[i, k] = k
        if not _draw_swaps(streams[i], bits, masks, swaps):
            exhausted[i] = True
            continue
        for s in range(bits - 1, 0, -1):
            r = swaps[s]
            idx[i, s], idx[i, r] = idx[i, r], idx[i, s]
    return exhausted


_M16 = np.uint32(0x0000FFFF)
_M8 = np.uint32(0x00FF00FF)
_M4 = np.uint32(0x0F0F0F0F)
_M2 = np.uint32(0x33333333)
_M1 = np.uint32(0x55555555)
_D1, _D2, _D4 = np.uint32(1), np.uint32(2), np.uint32(4)


@njit(inline="always")
def _swap(x, m, delta):
    t = ((x >> delta) ^ x) & m
    return x ^ t ^ (t << delta)


@njit(nogil=True, error_model="numpy", cache=True)
def benes32(words, stream, decrypt, out):
    """The one-time Beneš network on uint32 ``words`` ``(n, d)``, unrolled (see ``kernels_numpy.benes``).

    ``stream`` uint8 ``(n, >= 18 d)``: per row the keystream words of
    ``kernels_numpy.benes_switches`` (4 x d uint32, then d uint16). Not
    parallel: the caller overlaps it with the AES keystream of the next chunk.
    """
    n, d = words.shape
    for i in range(n):
        pairs = stream[i, : 16 * d].view(np.uint32)
        middle = stream[i, 16 * d : 18 * d].view(np.uint16)
        x_row = words[i]
        o_row = out[i]
        for j in range(d):
            x = x_row[j]
            r16, r8, r4, r2 = pairs[j], pairs[d + j], pairs[2 * d + j], pairs[3 * d + j]
            m = np.uint32(middle[j])
            m = (m | (m << _S8)) & _M8
            m = (m | (m << _D4)) & _M4
            m = (m | (m << _D2)) & _M2
            m = (m | (m << _D1)) & _M1
            if decrypt:
                x = _swap(x, (r16 >> _S16) & _M16, _S16)
                x = _swap(x, (r8 >> _S8) & _M8, _S8)
                x = _swap(x, (r4 >> _D4) & _M4, _D4)
                x = _swap(x, (r2 >> _D2) & _M2, _D2)
                x = _swap(x, m, _D1)
                x = _swap(x, r2 & _M2, _D2)
                x = _swap(x, r4 & _M4, _D4)
                x = _swap(x, r8 & _M8, _S8)
                x = _swap(x, r16 & _M16, _S16)
            else:
                x = _swap(x, r16 & _M16, _S16)
                x = _swap(x, r8 & _M8, _S8)
                x = _swap(x, r4 & _M4, _D4)
                x = _swap(x, r2 & _M2, _D2)
                x = _swap(x, m, _D1)
                x = _swap(x, (r2 >> _D2) & _M2, _D2)
                x = _swap(x, (r4 >> _D4) & _M4, _D4)
                x = _swap(x, (r8 >> _S8) & _M8, _S8)
                x = _swap(x, (r16 >> _S16) & _M16, _S16)
            o_row[j] = x
    return out


@njit(error_model="numpy", cache=True)
def counter_blocks(nonces, blocks, out):
    """AES-CTR counter blocks: row ``i`` of ``out`` ``(n, 16 * blocks)`` uint8 holds the
    big-endian 128-bit counters ``nonces[i] + k`` for ``k < blocks`` (the caller guarantees
    the low 64 bits do not wrap, as ``one_time_runs`` checks)."""
    for i in range(nonces.shape[0]):
        low = np.uint64(0)
        for t in range(8):
            low = (low << np.uint64(8)) | np.uint64(nonces[i, 8 + t])
        for k in range(blocks):
            v = low + np.uint64(k)
            for t in range(8):
                out[i, 16 * k + t] = nonces[i, t]
                out[i, 16 * k + 15 - t] = (v >> np.uint64(8 * t)) & np.uint64(255)
    return out


_LANES = 16  # ChaCha20 blocks computed side by side: 16 uint32 lanes = two AVX2 registers per state word
_SIGMA = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)  # "expand 32-byte k"


@njit(inline="always")
def _quarter(x, a, b, c, d):
    """One quarter-round on state words ``a, b, c, d`` of every lane (``x`` flat ``(16 * _LANES,)``).

    numba widens uint32 arithmetic to 64 bits: every result is cast back, so
    LLVM keeps 32-bit lanes and vectorises the lane loop.
    """
    for k in range(_LANES):
        xa = np.uint32(x[a * _LANES + k] + x[b * _LANES + k])
        xd = np.uint32(x[d * _LANES + k] ^ xa)
        xd = np.uint32((xd << np.uint32(16)) | (xd >> np.uint32(16)))
        xc = np.uint32(x[c * _LANES + k] + xd)
        xb = np.uint32(x[b * _LANES + k] ^ xc)
        xb = np.uint32((xb << np.uint32(12)) | (xb >> np.uint32(20)))
        xa = np.uint32(xa + xb)
        xd = np.uint32(xd ^ xa)
        xd = np.uint32((xd << np.uint32(8)) | (xd >> np.uint32(24)))
        xc = np.uint32(xc + xd)
        xb = np.uint32(xb ^ xc)
        xb = np.uint32((xb << np.uint32(7)) | (xb >> np.uint32(25)))
        x[a * _LANES + k] = xa
        x[b * _LANES + k] = xb
        x[c * _LANES + k] = xc
        x[d * _LANES + k] = xd


@njit(error_model="numpy", cache=True)
def chacha20_rows(key_words, starts, blocks, out):
    """RFC 8439 ChaCha20 keystream: row ``i`` of ``out`` ``(m, 16 * blocks)`` uint32 is the
    ``blocks`` blocks from ``starts[i]`` (uint32 ``(m, 4)``: block counter, then the 3 nonce
    words; a 16-byte ``prf`` nonce viewed as ``<u4``), as OpenSSL's ChaCha20 gives them
    (the counter must not wrap 32 bits: ``prf.contiguous_runs`` checks that).

    ``_LANES`` blocks at a time, one vector lane each. Key schedules derive
    thousands of permutations in one call, and ChaChaPad's single vectors skip
    OpenSSL's per-call context setup.
    """
    total = starts.shape[0] * blocks
    init = np.empty(16 * _LANES, dtype=np.uint32)
    x = np.empty(16 * _LANES, dtype=np.uint32)
    for q in range(4):
        init[q * _LANES : (q + 1) * _LANES] = _SIGMA[q]
    for q in range(8):
        init[(4 + q) * _LANES : (5 + q) * _LANES] = key_words[q]
    for g in range(0, total, _LANES):
        for k in range(_LANES):
            lane = min(g + k, total - 1)
            i, b = lane // blocks, lane % blocks
            init[12 * _LANES + k] = np.uint32(starts[i, 0] + b)
            for q in range(1, 4):
                init[(12 + q) * _LANES + k] = starts[i, q]
        x[:] = init
        for _ in range(10):
            _quarter(x, 0, 4, 8, 12)
            _quarter(x, 1, 5, 9, 13)
            _quarter(x, 2, 6, 10, 14)
            _quarter(x, 3, 7, 11, 15)
            _quarter(x, 0, 5, 10, 15)
            _quarter(x, 1, 6, 11, 12)
            _quarter(x, 2, 7, 8, 13)
            _quarter(x, 3, 4, 9, 14)
        for k in range(min(_LANES, total - g)):
            i, b = (g + k) // blocks, (g + k) % blocks
            for q in range(16):
                out[i, 16 * b + q] = x[q * _LANES + k] + init[q * _LANES + k]
    return out


@njit(error_model="numpy", cache=True)
def lookup_tables(dst, out):
    """``kernels_numpy.lookup_tables`` for ``dst`` ``(m, bits)`` into ``out`` ``(m, bits // 8, 256)``.

    Entry ``v`` is entry ``v`` without its lowest set bit, OR that bit's moved
    position: one operation per entry, so 65,536 per-dimension tables take a
    fraction of a second (the numpy reference builds an 8x larger temporary).
    """
    m, bits = dst.shape
    for i in range(m):
        for k in range(bits // 8):
            moved = np.empty(8, dtype=out.dtype)
            for b in range(8):
                moved[b] = out.dtype.type(1) << out.dtype.type(dst[i, 8 * k + b])
            row = out[i, k]
            row[0] = 0
            for v in range(1, 256):
                low = v & -v
                b = 0
                while (1 << b) != low:
                    b += 1
                row[v] = row[v ^ low] | moved[b]
    return out


# Kernels with a ``_serial`` twin: a parallel region costs a thread-pool wake-up,
# which on a busy machine can wait for a descheduled worker for milliseconds, so
# inputs this small take the twin. Each twin is its own function: twins made with
# ``njit(parallel.py_func)`` share the parallel kernel's on-disk cache entry, and
# a twin that loaded the parallel code from there took milliseconds per call.
SERIAL_BELOW = 1 << 16  # elements
