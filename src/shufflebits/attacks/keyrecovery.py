"""Recover ShuffleBits permutations from ciphertext statistics alone.

A bit permutation moves bit columns but keeps their statistics. The attacker
queries the model itself, so it knows how often each float32 bit position is 1
in plaintext features (sign ~always 0 after ReLU, exponent high bits fixed,
exponent low bits and top mantissa bits with characteristic frequencies) and
how positions co-occur. Matching ciphertext positions to plaintext positions
by those statistics is an assignment problem: Hungarian on the frequencies,
then pair swaps that improve the fit of the co-occurrence matrix. Low mantissa
bits are ~uniform and cannot be placed; they are also the bits that barely
change the value, which is why a partial decryption is almost as good as the
key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from scipy.optimize import linear_sum_assignment

from ..errors import ShuffleBitsError
from .views import WORD_BITS, as_words, bits_to_words, partial_decrypt, permute_bits, word_bits


@dataclass
class RecoveredKey:
    """A recovered permutation: ciphertext position ``j`` holds plaintext position ``perm[..., j]``.

    ``confident`` marks the plaintext positions the attacker can tell it placed
    right without knowing the key (statistics distinct from every other
    position, or interchangeable with those they resemble). :meth:`decrypt`
    uses the whole best guess: misplaced low mantissa bits cost a small
    relative error, while zeroing them would bias every value down.
    """

    perm: np.ndarray  # (32,) fixed, (d, 32) per dimension
    confident: np.ndarray  # same shape, bool over plaintext positions
    n_words: int  # ciphertext words the statistics came from

    def decrypt(self, words: np.ndarray) -> np.ndarray:
        return partial_decrypt(words, self.perm)

    def decrypt_words(self, words: np.ndarray) -> np.ndarray:
        """The plaintext words under this permutation, integers only (bit-exact where the key is right)."""
        return permute_bits(words, np.argsort(self.perm, axis=-1))


EXACT_FLOAT32 = 1 << 24  # rows below which float32 sums of 0/1 products are exact integers, in any order


def _statistics(bits: np.ndarray) -> tuple[np.ndarray, int]:
    """Co-occurrence ``(..., 32, 32)`` of bit columns (diagonal: frequencies) over axis 0, and the count.

    The counts come from one matrix product per leading index (BLAS); below
    ``EXACT_FLOAT32`` rows they are exact in float32 whatever the summation order.
    """
    dtype = np.float32 if len(bits) < EXACT_FLOAT32 else np.float64
    b = np.ascontiguousarray(np.moveaxis(bits, 0, -1), dtype=dtype)  # (..., 32, n)
    counts = b @ np.swapaxes(b, -1, -2)
    return (counts.astype(np.float32) / len(bits)).astype(np.float64), len(bits)


def _variance(joint: np.ndarray, n_cipher: int, n_ref: int) -> np.ndarray:
    """Sampling variance of a co-occurrence estimate, floored so constant positions do not dominate."""
    return (joint * (1.0 - joint) + 1.0 / n_cipher) * (1.0 / n_cipher + 1.0 / n_ref)


@numba.njit(cache=False)
def _refine(C, M, V, perm, allowed, max_passes):
    """Pair swaps of ``perm`` that lower sum (C[j,l] - M[p_j,p_l])^2 / V[p_j,p_l], keeping ``allowed[j, p_j]``."""
    n = len(perm)
    for _ in range(max_passes):
        improved = False
        for a in range(n):
            for b in range(a + 1, n):
                if not (allowed[a, perm[b]] and allowed[b, perm[a]]):
                    continue
                delta = 0.0
                for sign in (1.0, -1.0):
                    if sign < 0:
                        perm[a], perm[b] = perm[b], perm[a]
                    total = 0.0
                    for j in (a, b):
                        for m in range(n):
                            r = C[j, m] - M[perm[j], perm[m]]
                            total += r * r / V[perm[j], perm[m]]
                    for j in range(n):
                        if j != a and j != b:
                            for m in (a, b):
                                r = C[j, m] - M[perm[j], perm[m]]
                                total += r * r / V[perm[j], perm[m]]
                    delta += -sign * total
                if delta < -1e-9:
                    improved = True
                else:
                    perm[a], perm[b] = perm[b], perm[a]
        if not improved:
            break
    return perm


def solve(C: np.ndarray, M: np.ndarray, V: np.ndarray, refine: bool = True, allowed=None) -> np.ndarray:
    """One permutation from ciphertext co-occurrence ``C`` and reference ``M`` (both 32x32).

    ``allowed[j, k]`` (default: everything) says ciphertext position ``j`` may
    hold plaintext position ``k`` (known pairs rule the others out).
    """
    allowed = np.ones((WORD_BITS, WORD_BITS), dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
    cost = (np.diag(C)[:, None] - np.diag(M)[None, :]) ** 2 / np.diag(V)[None, :]
    _, perm = linear_sum_assignment(np.where(allowed, cost, np.inf))
    perm = perm.astype(np.int64)
    if refine:
        perm = _refine(C, M, V, perm, allowed, 20)
    return perm


def _confident(M: np.ndarray, V: np.ndarray, z: float, tolerance: float = 1e-3) -> np.ndarray:
    """Plaintext positions that frequency matching cannot confuse with a position holding different bits."""
    p = np.diag(M)
    v = np.diag(V)
    distinct = np.abs(p[:, None] - p[None, :]) > z * np.sqrt(v[:, None] + v[None, :])
    disagree = p[:, None] + p[None, :] - 2 * M  # P(bit k != bit l)
    safe = distinct | (disagree < tolerance)
    return safe.all(axis=1)


def recover_permutation(
    words: np.ndarray,
    reference: np.ndarray,
    per_dimension: bool = False,
    z: float = 4.0,
    refine: bool = True,
) -> RecoveredKey:
    """Estimate a ShuffleBits key from ciphertext words and the attacker's own plaintext features.

    ``words``: ``(n, d)`` uint32 ciphertext (any rows encrypted under the key);
    ``reference``: ``(m, d)`` float32 plaintext features from the same model.
    ``per_dimension`` recovers one permutation per column from that column's
    statistics (``shufflebits-dim``); otherwise one for all words (fixed mode).
    """
    words = as_words(words)
    C, M, V = bit_statistics(words, reference, per_dimension)
    if per_dimension:
        perm = np.stack([solve(C[e], M[e], V[e], refine) for e in range(len(C))])
        confident = np.stack([_confident(M[e], V[e], z) for e in range(len(M))])
    else:
        perm = solve(C, M, V, refine)
        confident = _confident(M, V, z)
    return RecoveredKey(perm=perm, confident=confident, n_words=int(words.size))


def bit_statistics(words: np.ndarray, reference: np.ndarray, per_dimension: bool):
    """``(C, M, V)``: co-occurrence of ciphertext and reference bit columns and its variance.

    ``(32, 32)`` each for a fixed key, ``(d, 32, 32)`` per dimension.
    """
    words = as_words(words)
    reference = np.ascontiguousarray(reference, dtype=np.float32)
    if reference.ndim != 2 or reference.shape[1] != words.shape[1]:
        raise ShuffleBitsError(f"reference features {reference.shape} do not match ciphertext words {words.shape}")
    cipher_bits = word_bits(words)
    plain_bits = word_bits(reference.view(np.uint32))
    if not per_dimension:
        cipher_bits, plain_bits = cipher_bits.reshape(-1, WORD_BITS), plain_bits.reshape(-1, WORD_BITS)
    C, n_c = _statistics(cipher_bits)
    M, n_r = _statistics(plain_bits)
    return C, M, _variance(M, n_c, n_r)


def true_permutation(cipher, d: int) -> np.ndarray:
    """The key's permutations ``(d, 32)``, read by encrypting one-hot words (evaluation only: needs the cipher)."""
    probes = np.zeros((WORD_BITS, d), dtype=np.uint32)
    for k in range(WORD_BITS):
        probes[k] = np.uint32(1 << (WORD_BITS - 1 - k))
    bits = word_bits(cipher.encrypt(probes.view(np.float32)).words())  # (32 plaintext k, d, 32 cipher j)
    if not (bits.sum(axis=-1) == 1).all():
        raise ShuffleBitsError(f"{type(cipher).__name__} is not a bit permutation")
    return np.argmax(bits, axis=0).astype(np.int64)  # (d, 32): for cipher position j, the plaintext k


def score_recovery(recovered: RecoveredKey, truth: np.ndarray, plaintext: np.ndarray) -> dict:
    """How much of the key was recovered, against the true permutations of ``plaintext``'s ciphertext.

    ``truth``: ``(d, 32)`` key permutations, or ``(n, d, 32)`` one per element
    (one-time keys). ``bits_exact``: positions placed exactly (mean over
    dimensions, and elements); ``bits_equivalent``: positions whose recovered
    source holds the same bits as the true one on every row of ``plaintext``
    (swaps of identical columns decrypt the same); ``bits_confident``:
    positions the attacker believes it placed; ``median_rel_error`` of the
    decryption on the nonzero entries of ``plaintext``.
    """
    plaintext = np.ascontiguousarray(plaintext, dtype=np.float32)
    d = plaintext.shape[1]
    perm = np.broadcast_to(recovered.perm, (d, WORD_BITS))
    bits = word_bits(plaintext.view(np.uint32))  # (n, d, 32)
    truth = np.asarray(truth)
    source_hat = np.take_along_axis(bits, perm[None], axis=-1)
    source_true = np.take_along_axis(bits, truth if truth.ndim == 3 else truth[None], axis=-1)  # the ciphertext bits
    equivalent = (source_hat == source_true).all(axis=0)
    decrypted = recovered.decrypt(bits_to_words(source_true))
    nonzero = plaintext != 0
    truth_values = plaintext[nonzero].astype(np.float64)
    rel = np.abs(decrypted[nonzero].astype(np.float64) - truth_values) / np.abs(truth_values)
    return {
        "bits_exact": float((perm == truth).sum(axis=-1).mean()),
        "bits_equivalent": float(equivalent.sum(axis=1).mean()),
        "bits_confident": float(np.broadcast_to(recovered.confident, (d, WORD_BITS)).sum(axis=1).mean()),
        "median_rel_error": float(np.median(rel)) if rel.size else 0.0,
    }
