"""Torch kernels: run in-graph on CPU or CUDA, bit-identical to the numpy reference.

Features are reinterpreted as signed integer tensors of the same width (views,
no copies, no float arithmetic). Bit permutations gather from tables built from
the same byte tables as the numba kernel. ChaCha20 runs one block per int32 lane
(wrapping adds, masked arithmetic shifts), so nothing leaves the device.
"""

from __future__ import annotations

import struct
import warnings

import numpy as np
import torch

from . import kernels_numpy

INT_VIEWS = {2: torch.int16, 4: torch.int32, 8: torch.int64}
_SIGMA = struct.unpack("<4i", b"expand 32-byte k")
_PAD_BLOCKS = 1 << 16  # ChaCha20 blocks per CPU chunk: eager ops cost per call, so chunks are large


def int_view(x: torch.Tensor) -> torch.Tensor:
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TypeError(f"cannot encrypt dtype {x.dtype}; supported: float16, bfloat16, float32, float64")
    return x.contiguous().view(INT_VIEWS[x.element_size()])


def wide_tables(tables: np.ndarray) -> np.ndarray:
    """Merge byte tables ``(..., nbytes, 256)`` into 16-bit-index tables ``(..., nbytes // 2, 65536)``.

    Half as many gathers; used for the fixed mode (per-dimension stays on byte tables).
    """
    values = np.arange(65536)
    return tables[..., 0::2, :][..., values & 255] | tables[..., 1::2, :][..., values >> 8]


def table_tensor(tables: np.ndarray, device) -> torch.Tensor:
    """Unsigned numpy tables as a signed tensor of the same width on ``device``."""
    signed = np.ascontiguousarray(tables).view(np.dtype(f"i{tables.dtype.itemsize}"))
    return torch.from_numpy(signed.copy()).to(device)


def _chunks(words: torch.Tensor, rows: int):
    """CPU: row blocks that keep temporaries in cache; CUDA: one launch per op."""
    step = words.shape[0] if words.is_cuda else max(1, rows)
    for start in range(0, words.shape[0], step):
        yield slice(start, start + step)


def permute_fixed(words: torch.Tensor, wide: torch.Tensor) -> torch.Tensor:
    """Fixed mode: ``wide`` ``(nbytes // 2, 65536)`` tables, any shape of ``words``."""
    flat = words.reshape(-1)
    out = torch.empty_like(flat)
    for part in _chunks(flat, 1 << 18):
        x = flat[part].to(torch.int32) if flat.dtype == torch.int16 else flat[part]
        # index_select is several times faster than advanced indexing on CPU
        acc = wide[0].index_select(0, x & 0xFFFF)
        for h in range(1, wide.shape[0]):
            acc |= wide[h].index_select(0, (x >> (16 * h)) & 0xFFFF)
        out[part] = acc
    return out.reshape(words.shape)


def permute_per_dimension(words: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """Per-dimension mode: ``words`` ``(n, d)``, byte ``tables`` ``(d, nbytes, 256)``."""
    _n, d = words.shape
    nbytes = tables.shape[1]
    flat = tables.reshape(-1)
    device = words.device
    offsets = (torch.arange(d, device=device)[:, None] * nbytes + torch.arange(nbytes, device=device)) * 256
    offsets = offsets.to(torch.int32)
    out = torch.empty_like(words)
    for part in _chunks(words, (1 << 18) // max(d, 1)):
        index = words[part].view(torch.uint8).reshape(-1, d, nbytes).to(torch.int32) + offsets
        # The moved bits of different bytes are disjoint, so their sum is their OR.
        moved = flat.index_select(0, index.reshape(-1)).reshape(index.shape)
        out[part] = moved.sum(-1, dtype=words.dtype)
    return out


def host_words(array: np.ndarray, device) -> torch.Tensor:
    """Unsigned numpy words (any strides) as a signed tensor of the same width on ``device``."""
    return torch.from_numpy(array.view(np.dtype(f"i{array.dtype.itemsize}"))).to(device)


def benes(words: torch.Tensor, pairs: torch.Tensor, middle: torch.Tensor, decrypt: bool = False) -> torch.Tensor:
    """One-time mode: ``kernels_numpy.benes`` on signed words ``(n, d)``.

    ``pairs`` ``(n, log2(bits) - 1, d)`` (same dtype as ``words``) and ``middle``
    ``(n, d)`` half-width keystream words as ``host_words`` gives them. Right
    shifts are arithmetic on signed tensors; every mask clears the bits they fill.
    """
    bits = 8 * words.element_size()
    down = kernels_numpy.benes_deltas(bits)[: pairs.shape[1]]
    spread = middle.to(words.dtype) & ((1 << (bits // 2)) - 1)
    shift = bits // 4
    while shift >= 1:
        spread = (spread | (spread << shift)) & kernels_numpy.stage_mask(bits, shift)
        shift //= 2
    switches = [pairs[:, p] & kernels_numpy.stage_mask(bits, delta) for p, delta in enumerate(down)]
    switches += [spread]
    switches += [
        (pairs[:, p] >> delta) & kernels_numpy.stage_mask(bits, delta) for p, delta in reversed(list(enumerate(down)))
    ]
    deltas = kernels_numpy.benes_deltas(bits)
    order = range(len(deltas) - 1, -1, -1) if decrypt else range(len(deltas))
    x = words
    for s in order:
        t = ((x >> deltas[s]) ^ x) & switches[s]
        x = x ^ t ^ (t << deltas[s])
    return x


def _rotl(x: torch.Tensor, n: int) -> torch.Tensor:
    """32-bit rotation of int32 lanes; ``>>`` is arithmetic on signed tensors, so the mask clears what it fills."""
    return (x << n) | ((x >> (32 - n)) & ((1 << n) - 1))


def _quarter(s: list, a: int, b: int, c: int, d: int) -> None:
    # int32 addition wraps modulo 2**32 on CPU and CUDA: the bits of uint32 addition
    s[a] = s[a] + s[b]
    s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = s[c] + s[d]
    s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = s[a] + s[b]
    s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = s[c] + s[d]
    s[b] = _rotl(s[b] ^ s[c], 7)


def key_tensor(key: bytes, device) -> torch.Tensor:
    """A 32-byte ChaCha20 key as its 8 little-endian words (int32) on ``device``: a kernel input,
    so ``torch.compile`` builds one graph for every key."""
    return torch.tensor(struct.unpack("<8i", key), dtype=torch.int32, device=device)


def _keystream_lanes(key_words, counters, nonce0, nonce1, nonce2) -> torch.Tensor:
    """The 20 rounds on contiguous int32 lanes ``(m,)``: ``(m, 16)`` keystream words, one block
    per row. Contiguous inputs keep inductor's fused loop vectorised (strided loads are not);
    stacking on the last axis lets that loop write the blocks in place, where a ``(16, m)``
    result needed a transposing copy that cost more than the rounds."""
    init = [torch.full_like(counters, word) for word in _SIGMA]
    init += [key_words[k].expand_as(counters) for k in range(8)]
    init += [counters, nonce0, nonce1, nonce2]
    s = list(init)
    for _ in range(10):
        _quarter(s, 0, 4, 8, 12)
        _quarter(s, 1, 5, 9, 13)
        _quarter(s, 2, 6, 10, 14)
        _quarter(s, 3, 7, 11, 15)
        _quarter(s, 0, 5, 10, 15)
        _quarter(s, 1, 6, 11, 12)
        _quarter(s, 2, 7, 8, 13)
        _quarter(s, 3, 4, 9, 14)
    return torch.stack([s[i] + init[i] for i in range(16)], dim=1)


_COMPILED: dict = {}


def compiled_keystream():
    """``_keystream_lanes`` under ``torch.compile`` (inductor fuses the 20 rounds into one loop
    that keeps the state in registers), or None where it cannot compile (noted once).

    One graph for every key (a tensor input) and lane count (``dynamic=True``); torch
    caches it per device and on disk. The first call compiles for minutes on 2 cores.
    ``max_fusion_size`` lets all ~2,000 ops share that loop (the default splits it in
    loops that pass the state through memory)."""
    if "fn" not in _COMPILED:
        compiled = torch.compile(_keystream_lanes, dynamic=True, options={"max_fusion_size": 1 << 16})
        try:
            probe = torch.zeros(2, dtype=torch.int32)
            compiled(torch.zeros(8, dtype=torch.int32), probe, probe, probe, probe)
        except Exception as error:  # no C++ compiler, unsupported platform: eager is exact, only slower
            warnings.warn(
                f"torch.compile unavailable for ChaCha20 ({type(error).__name__}); eager torch ops", stacklevel=2
            )
            compiled = None
        _COMPILED["fn"] = compiled
    return _COMPILED["fn"]


def chacha20_blocks(
    key_words: torch.Tensor, counters: torch.Tensor, nonce_words: torch.Tensor, compiled: bool = False
) -> torch.Tensor:
    """RFC 8439 ChaCha20 blocks on int32 lanes, one block per lane (``counters`` ``(m,)``,
    ``nonce_words`` ``(m, 3)``, ``key_words`` from ``key_tensor``). Returns ``(m, 16)`` int32
    keystream words (little-endian order): the bits of the uint32 words. ``compiled``: through
    ``compiled_keystream`` (eager where it is unavailable); same bits either way."""
    run = (compiled_keystream() if compiled else None) or _keystream_lanes
    lanes = [nonce_words[:, k].contiguous() for k in range(3)]
    return run(key_words, counters.contiguous(), *lanes)


def chacha20_rows(
    key_words: torch.Tensor, nonces: torch.Tensor, row_bytes: int, compiled: bool = False
) -> torch.Tensor:
    """Keystream ``(n, row_bytes)`` uint8; row ``i`` starts at its 16-byte nonce (counter || nonce)."""
    n = nonces.shape[0]
    blocks = -(-row_bytes // 64)
    words = nonces.contiguous().view(torch.int32)  # (n, 4): counter, nonce0..2 (never wraps: prf checks)
    counters = (words[:, :1] + torch.arange(blocks, dtype=torch.int32, device=nonces.device)).reshape(-1)
    nonce_words = words[:, None, 1:].expand(n, blocks, 3).reshape(-1, 3)
    stream = chacha20_blocks(key_words, counters, nonce_words, compiled).contiguous()
    return stream.view(torch.uint8).reshape(n, blocks * 64)[:, :row_bytes]


def xor_pad(words: torch.Tensor, key_words: torch.Tensor, nonces: torch.Tensor, compiled: bool = False) -> torch.Tensor:
    """``words`` ``(n, d)`` XOR each row's ChaCha20 keystream (``key_words`` from ``key_tensor``);
    ``compiled`` as in ``chacha20_blocks``."""
    _n, d = words.shape
    row_bytes = d * words.element_size()
    out = torch.empty_like(words)
    for part in _chunks(words, _PAD_BLOCKS // max(1, -(-row_bytes // 64))):
        pad = chacha20_rows(key_words, nonces[part], row_bytes, compiled).contiguous()
        torch.bitwise_xor(words[part], pad.view(words.dtype).reshape(-1, d), out=out[part])
    return out
