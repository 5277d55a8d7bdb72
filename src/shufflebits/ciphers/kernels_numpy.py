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
