"""Exhaustive: every one of the 2**32 float32 bit patterns round-trips (slow).

Decryption inverting encryption on all inputs also proves encryption is a
bijection on the 32-bit words.
"""

from __future__ import annotations

import numpy as np
import pytest

from shufflebits import ShuffleBits
from shufflebits.ciphers import kernels_numba, kernels_numpy

CHUNK = 1 << 26


@pytest.mark.slow
def test_all_2_32_patterns_round_trip_fast_fixed_kernel():
    cipher = ShuffleBits(ShuffleBits.generate_key("fixed"))
    forward, backward = cipher.tables(32, None, False), cipher.tables(32, None, True)
    dst = cipher.destinations(32)
    encrypted = np.empty(CHUNK, np.uint32)
    decrypted = np.empty(CHUNK, np.uint32)
    for start in range(0, 1 << 32, CHUNK):
        words = np.arange(start, start + CHUNK, dtype=np.uint32)
        kernels_numba.fixed(words, forward, encrypted)
        kernels_numba.fixed(encrypted, backward, decrypted)
        assert np.array_equal(decrypted, words), f"round trip failed in chunk at {start:#x}"
        sample = words[:: 1 << 16]
        assert np.array_equal(encrypted[:: 1 << 16], kernels_numpy.permute(sample, dst))
