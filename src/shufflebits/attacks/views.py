"""What an attacker can compute from ciphertext words without the key.

Every view starts from the integer words (``Sealed.words()``); no float
arithmetic touches ciphertext before an explicit ``.view``. Bit positions are
numbered most significant first (0 is the float32 sign bit), as in the
ShuffleBits definition: ciphertext position ``j`` holds plaintext position
``perm[j]``.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShuffleBitsError

WORD_BITS = 32
VIEWS = ("float", "bits", "popcount", "zeros", "invariants")


def as_words(words: np.ndarray) -> np.ndarray:
    """Ciphertext as ``(n, d)`` uint32 words; AES-GCM bytes are read 4 at a time (little-endian, like float32)."""
    words = np.asarray(words)
    if words.dtype == np.uint32:
        return words
    if words.dtype == np.uint8 and words.ndim == 2 and words.shape[1] % 4 == 0:
        return np.ascontiguousarray(words).view("<u4").astype(np.uint32)
    raise ShuffleBitsError(
        f"attacks need uint32 ciphertext words (or uint8 bytes, 4 per word), got {words.dtype} {words.shape}"
    )


def float_view(words: np.ndarray) -> np.ndarray:
    """The naive attacker's view: the words read as float32, non-finite values set to 0 after the view."""
    values = as_words(words).view(np.float32).copy()
    values[~np.isfinite(values)] = 0.0
    return values


# Ciphertext read as float spans +-3e38, so test-time z-scores can exceed the
# float32 range; beyond this bound they carry nothing more for a network.
Z_LIMIT = 1e4


def validated(estimator, *args, **kwargs):
    """scikit-learn's ``validate_data`` for views whose values reach +-3e38.

    Its finiteness check first sums X; finite values that large overflow to
    inf - inf, a RuntimeWarning before it checks element by element (and finds
    them finite). Non-finite input is still refused.
    """
    from sklearn.utils.validation import validate_data

    with np.errstate(over="ignore", invalid="ignore"):
        return validate_data(estimator, *args, **kwargs)


def column_statistics(Z: np.ndarray, rows: np.ndarray, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """float64 mean and standard deviation of each column of ``Z[rows]``, ``block`` rows at a time
    (two passes), so a wide view never holds a float64 copy of itself."""
    blocks = [rows[start : start + block] for start in range(0, len(rows), block)]
    mean = sum(Z[part].sum(axis=0, dtype=np.float64) for part in blocks) / len(rows)
    squares = sum(((Z[part].astype(np.float64) - mean) ** 2).sum(axis=0) for part in blocks)
    return mean, np.sqrt(squares / len(rows))


def standardized(Z: np.ndarray, mean: np.ndarray, scale: np.ndarray, rows: int = 256) -> np.ndarray:
    """float32 z-scores of a view, clipped to +-``Z_LIMIT``: computed in float64 ``rows`` rows at a
    time, so a wide view (16,384 bits per vector) never holds a float64 copy of itself."""
    out = np.empty(Z.shape, dtype=np.float32)
    for start in range(0, len(Z), rows):
        part = (Z[start : start + rows].astype(np.float64) - mean) / scale
        out[start : start + rows] = np.clip(part, -Z_LIMIT, Z_LIMIT, out=part)
    return out


def word_bits(words: np.ndarray) -> np.ndarray:
    """``(n, d, 32)`` uint8 bits of every word, most significant first."""
    words = as_words(words)
    big_endian = np.ascontiguousarray(words.astype(">u4"))
    return np.unpackbits(big_endian.view(np.uint8), axis=-1).reshape(*words.shape, WORD_BITS)


def bits_to_words(bits: np.ndarray) -> np.ndarray:
    """Inverse of :func:`word_bits`."""
    packed = np.packbits(np.ascontiguousarray(bits, dtype=np.uint8), axis=-1)
    return packed.view(">u4")[..., 0].astype(np.uint32)


def bit_view(words: np.ndarray) -> np.ndarray:
    """``(n, d * 32)`` uint8 features in {0, 1}: every ciphertext bit as an input (a byte each, a
    quarter of float32's memory: attacks standardise views in float64 blocks anyway)."""
    bits = word_bits(words)
    return bits.reshape(len(bits), -1)


def popcount_view(words: np.ndarray) -> np.ndarray:
    """Number of 1-bits per word, ``(n, d)``: any bit permutation keeps it."""
    return word_bits(words).sum(axis=-1, dtype=np.int64).astype(np.float32)


def zero_view(words: np.ndarray) -> np.ndarray:
    """Which words are all-zero, ``(n, d)``: 0.0 encrypts to 0.0 under any bit permutation."""
    return (as_words(words) == 0).astype(np.float32)


def invariant_view(words: np.ndarray) -> np.ndarray:
    """Popcount and zero pattern side by side, ``(n, 2d)``: the key-independent part of ShuffleBits ciphertext."""
    return np.concatenate([popcount_view(words) / WORD_BITS, zero_view(words)], axis=1)


def apply_view(name: str | None, X: np.ndarray) -> np.ndarray:
    """``X`` through the named view; ``None`` means ``X`` are already features (integers, such as
    the bit view's bytes, kept as they are: exact in the float64 z-scores; anything else as float32)."""
    if name is None:
        X = np.asarray(X)
        return X if X.dtype.kind in "bui" else X.astype(np.float32, copy=False)
    views = {
        "float": float_view,
        "bits": bit_view,
        "popcount": popcount_view,
        "zeros": zero_view,
        "invariants": invariant_view,
    }
    if name not in views:
        raise ShuffleBitsError(f"unknown view {name!r}; choose one of {', '.join(VIEWS)}")
    return views[name](X)


def _per_word(perm: np.ndarray, d: int) -> np.ndarray:
    """A fixed ``(32,)`` or per-dimension ``(d, 32)`` permutation as ``(d, 32)``."""
    perm = np.asarray(perm, dtype=np.int64)
    if perm.shape == (WORD_BITS,):
        return np.broadcast_to(perm, (d, WORD_BITS))
    if perm.shape == (d, WORD_BITS):
        return perm
    raise ShuffleBitsError(f"a bit permutation is (32,) or (d, 32) with d={d}, got {perm.shape}")


def permute_bits(words: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Output position ``j`` takes input position ``perm[j]`` (ShuffleBits encryption with a known permutation)."""
    bits = word_bits(words)
    index = _per_word(perm, bits.shape[1])
    return bits_to_words(np.take_along_axis(bits, index[None], axis=-1))


def partial_decrypt(words: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Float32 features from ciphertext words and a recovered, possibly partly wrong, permutation.

    Non-finite results (misplaced exponent bits) become 0, as in :func:`float_view`.
    """
    words = as_words(words)
    inverse = np.argsort(_per_word(perm, words.shape[1]), axis=-1)
    bits = np.take_along_axis(word_bits(words), inverse[None], axis=-1)
    values = bits_to_words(bits).view(np.float32).copy()
    values[~np.isfinite(values)] = 0.0
    return values
