"""Key schedules at kernel speed: all per-dimension permutations in one pass, same as one at a time."""

from __future__ import annotations

import struct

import numpy as np

from shufflebits import ShuffleBits
from shufflebits.ciphers import Key, kernels_numba, prf
from shufflebits.ciphers import shufflebits as sb_module


def test_numba_chacha20_rows_equal_openssl():
    """Counters from the nonces, rows whose lanes straddle a 16-block group, one block and many."""
    key = bytes(range(32))
    rng = np.random.default_rng(3)
    for rows, blocks in [(3, 3), (1, 1), (5, 7), (2, 40)]:
        nonces = rng.integers(0, 256, (rows, 16), dtype=np.uint8)
        nonces[:, 3] = 0  # counters below 2**24: no 32-bit wrap
        out = np.empty((rows, 16 * blocks), dtype=np.uint32)
        kernels_numba.chacha20_rows(
            np.frombuffer(key, "<u4").astype(np.uint32), nonces.view("<u4").astype(np.uint32), blocks, out
        )
        for row, nonce in zip(out, nonces):
            assert row.astype("<u4").tobytes() == prf.keystream(key, bytes(nonce), 64 * blocks).tobytes()


def test_dimension_permutations_equal_the_one_at_a_time_derivation(monkeypatch):
    # 64 bytes per dimension: most 64-bit shuffles need derived_permutation's longer stream
    monkeypatch.setattr(sb_module, "_SCHEDULE_BYTES", 64)
    cipher = ShuffleBits(Key("shufflebits-dim", bytes(range(1, 33))))
    for bits, d in [(32, 300), (16, 40), (64, 20)]:
        fast = cipher.dimension_permutations(bits, d)
        slow = np.array([cipher.permutation(bits, j) for j in range(d)])
        assert np.array_equal(fast, slow), bits
    # for 64-bit words 64 bytes rarely finish a shuffle: the fallback path really ran
    streams = np.stack(
        [
            prf.keystream(cipher._subkey("permutations"), prf.nonce16(0, struct.pack("<BBHQ", 2, 64, 0, j)), 64)
            for j in range(20)
        ]
    )
    assert kernels_numba.fisher_yates(streams, 64, np.empty((20, 64), np.int64)).sum() > 10


def test_large_schedule_is_one_pass():
    cipher = ShuffleBits(ShuffleBits.generate_key("per-dimension"))
    perms = cipher.dimension_permutations(32, 4096)
    assert np.array_equal(np.sort(perms, axis=1), np.broadcast_to(np.arange(32), (4096, 32)))
    assert np.array_equal(perms[4095], cipher.permutation(32, 4095))


def test_small_batches_move_bits_directly_with_the_same_result():
    cipher = ShuffleBits(ShuffleBits.generate_key("per-dimension"))
    reference = ShuffleBits(cipher.key, kernel="numpy")
    for dtype in (np.float16, np.float32, np.float64):
        x = np.random.default_rng(0).standard_normal((sb_module.TABLE_ROWS, 40)).astype(dtype)
        few = cipher.encrypt(x[:3])  # direct bit moves, no tables
        assert ("lut", 8 * x.itemsize, 40, False) not in cipher._cache
        many = cipher.encrypt(x)  # byte tables
        assert ("lut", 8 * x.itemsize, 40, False) in cipher._cache
        assert np.array_equal(few.words(), many.words()[:3])
        assert np.array_equal(many.words(), reference.encrypt(x).words())
        assert cipher.decrypt(few).tobytes() == x[:3].tobytes()
