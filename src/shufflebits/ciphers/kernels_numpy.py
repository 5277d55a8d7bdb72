"""Readable numpy reference kernels: move each bit to its destination.

A permutation ``idx`` follows the paper's convention: bits are numbered
most-significant first and output bit ``j`` is input bit ``idx[j]``. Kernels use
``destinations``: for each input bit (least-significant numbering) the output bit
it moves to. Everything is integer shifts and masks on unsigned words.
"""

from __future__ import annotations

import numpy as np


def destinations(idx: np.ndarray) -> np.ndarray:
    """``dst[..., p]``: output bit (LSB numbering) of input bit ``p``, for ``idx[..., :]``."""
    idx = np.asarray(idx, dtype=np.int64)
    bits = idx.shape[-1]
    dst = np.empty_like(idx)
    targets = np.broadcast_to(bits - 1 - np.arange(bits), idx.shape)
    np.put_along_axis(dst, bits - 1 - idx, targets, axis=-1)
    return dst


def inverse(dst: np.ndarray) -> np.ndarray:
    """Destinations of the inverse permutation (decryption)."""
    return np.argsort(dst, axis=-1)


def permute(words: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Reference: ``dst`` is ``(bits,)`` (fixed), ``(d, bits)`` or ``(n, d, bits)``."""
    out = np.zeros_like(words)
    for p in range(dst.shape[-1]):
        out |= ((words >> p) & 1) << dst[..., p].astype(words.dtype)
    return out


def lookup_tables(dst: np.ndarray, word_dtype) -> np.ndarray:
    """Byte tables ``(..., bits // 8, 256)``: table ``k`` maps byte ``k`` of a word to its moved bits.

    A bit permutation is linear, so the output is the OR of one entry per byte.
    """
    bits = dst.shape[-1]
    values = np.arange(256, dtype=np.uint64)
    byte_bits = (values[:, None] >> np.arange(8, dtype=np.uint64)) & np.uint64(1)  # (256, 8)
    shifts = dst.reshape(*dst.shape[:-1], bits // 8, 1, 8).astype(np.uint64)
    return (byte_bits << shifts).sum(axis=-1, dtype=np.uint64).astype(word_dtype)


# -- Beneš network (one-time mode) --------------------------------------------


def benes_deltas(bits: int) -> list[int]:
    """Swap distances of the ``2 log2(bits) - 1`` stages: ``bits/2, ..., 2, 1, 2, ..., bits/2``."""
    down = [bits >> k for k in range(1, bits.bit_length() - 1)]
    return [*down, 1, *down[::-1]]


def stage_mask(bits: int, delta: int) -> int:
    """Bit positions ``p`` with ``p & delta == 0``: the low end of each switch at distance ``delta``."""
    return sum(1 << p for p in range(bits) if not p & delta)


def benes_switches(pairs: np.ndarray, middle: np.ndarray, bits: int) -> np.ndarray:
    """Per-stage switch masks ``(..., stages, d)`` from the keystream words.

    ``pairs`` ``(..., log2(bits) - 1, d)`` full words: word ``p`` (distance
    ``bits >> (p + 1)``) gives its low switch bits (``r & M``) to the stage
    before the middle and its high ones (``(r >> delta) & M``) to the stage
    after it; ``middle`` ``(..., d)`` half words are spread onto the middle
    stage's even positions.
    """
    word = np.dtype(f"u{bits // 8}")
    down = benes_deltas(bits)[: pairs.shape[-2]]
    spread = middle.astype(word)
    shift = bits // 4
    while shift >= 1:
        spread = (spread | (spread << word.type(shift))) & word.type(stage_mask(bits, shift))
        shift //= 2
    before = [pairs[..., p, :] & word.type(stage_mask(bits, delta)) for p, delta in enumerate(down)]
    after = [
        (pairs[..., p, :] >> word.type(delta)) & word.type(stage_mask(bits, delta)) for p, delta in enumerate(down)
    ]
    return np.stack([*before, spread, *after[::-1]], axis=-2)


def benes(words: np.ndarray, switches: np.ndarray, decrypt: bool = False) -> np.ndarray:
    """Run ``words`` ``(n, d)`` through the network: a delta swap per stage (decryption: stages reversed)."""
    bits = 8 * words.dtype.itemsize
    deltas = benes_deltas(bits)
    order = range(len(deltas) - 1, -1, -1) if decrypt else range(len(deltas))
    x = words.copy()
    for s in order:
        delta = words.dtype.type(deltas[s])
        t = ((x >> delta) ^ x) & switches[..., s, :]
        x ^= t ^ (t << delta)
    return x
