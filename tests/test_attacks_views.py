"""Ciphertext views: integer-only, and what survives any bit permutation."""

from __future__ import annotations

import numpy as np
import pytest

from shufflebits.attacks.views import (
    apply_view,
    as_words,
    bit_view,
    column_statistics,
    float_view,
    invariant_view,
    partial_decrypt,
    permute_bits,
    popcount_view,
    zero_view,
)
from shufflebits.errors import ShuffleBitsError
from test_attacks_helpers import one_torch_thread, relu_features  # noqa: F401 (autouse fixture)


def _permute_by_definition(word: int, idx) -> int:
    """The paper's definition on bit strings: output character j is input character idx[j]."""
    s = format(word, "032b")
    return int("".join(s[i] for i in idx), 2)


def test_permute_bits_matches_the_string_definition():
    rng = np.random.default_rng(0)
    words = rng.integers(0, 2**32, (3, 5), dtype=np.uint32)
    idx = rng.permutation(32)
    out = permute_bits(words, idx)
    assert all(int(out.flat[i]) == _permute_by_definition(int(words.flat[i]), idx) for i in range(words.size))


def test_partial_decrypt_with_the_true_permutation_is_exact():
    x = relu_features(20, 8)
    perms = np.stack([np.random.default_rng(i).permutation(32) for i in range(8)])
    assert np.array_equal(partial_decrypt(permute_bits(x.view(np.uint32), perms), perms), x)


def test_float_view_is_a_view_with_non_finite_zeroed():
    words = np.array([[0x3F800000, 0x7FC00000, 0xFF800000, 0x00000001]], dtype=np.uint32)  # 1.0, NaN, -inf, denormal
    out = float_view(words)
    assert out.dtype == np.float32
    assert out[0, 0] == 1.0 and out[0, 1] == 0.0 and out[0, 2] == 0.0
    assert out.view(np.uint32)[0, 3] == 1  # bits kept, not arithmetic


def test_bit_and_invariant_views_shapes_and_values():
    words = np.array([[0, 0xFFFFFFFF, 0x80000001]], dtype=np.uint32)
    bits = bit_view(words)
    assert bits.shape == (1, 96)
    assert bits[0, :32].sum() == 0 and bits[0, 32:64].sum() == 32 and bits[0, 64] == 1 and bits[0, 95] == 1
    assert popcount_view(words).tolist() == [[0, 32, 2]]
    assert zero_view(words).tolist() == [[1, 0, 0]]
    assert invariant_view(words).shape == (1, 6)


def test_invariants_are_identical_under_any_key():
    x = relu_features(30, 16).view(np.uint32)
    assert (x == 0).mean() > 0.2  # post-ReLU zeros, the leak under test
    rng = np.random.default_rng(1)
    fixed = permute_bits(x, rng.permutation(32))
    per_dim = permute_bits(x, np.stack([rng.permutation(32) for _ in range(16)]))
    one_time = np.stack([permute_bits(row[None], np.stack([rng.permutation(32) for _ in range(16)]))[0] for row in x])
    for c in (fixed, per_dim, one_time):
        assert np.array_equal(invariant_view(c), invariant_view(x))
    assert not np.array_equal(bit_view(fixed), bit_view(x))


def test_aes_bytes_are_read_as_words_and_bad_input_raises():
    data = np.arange(8, dtype=np.uint8).reshape(1, 8)
    assert as_words(data).shape == (1, 2)
    with pytest.raises(ShuffleBitsError):
        as_words(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ShuffleBitsError):
        apply_view("nope", np.zeros((1, 1), dtype=np.uint32))


def test_standardized_float_view_of_ciphertext_stays_finite():
    import warnings

    from shufflebits.attacks.views import Z_LIMIT, float_view, standardized

    words = np.array([[0x7F7FFFFF, 0x00000001], [0x00000000, 0xFF7FFFFF]], dtype=np.uint32)  # +-max float, denormal
    Z = float_view(words)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = standardized(Z, np.zeros(2), np.full(2, 1e-3))
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert out.max() == Z_LIMIT and out.min() == -Z_LIMIT


def test_column_statistics_in_blocks_equal_numpys_over_the_rows():
    rng = np.random.default_rng(4)
    Z = rng.normal(3.0, 2.0, (700, 9)).astype(np.float32)
    rows = np.sort(rng.choice(700, 500, replace=False))
    mean, std = column_statistics(Z, rows, block=64)
    assert np.allclose(mean, Z[rows].astype(np.float64).mean(axis=0), rtol=1e-12, atol=0)
    assert np.allclose(std, Z[rows].astype(np.float64).std(axis=0), rtol=1e-12, atol=0)
    bits = bit_view(rng.integers(0, 2**32, (300, 4), dtype=np.uint32))
    assert bits.dtype == np.uint8 and apply_view(None, bits) is bits  # bytes stay bytes: exact in float64
    mean, std = column_statistics(bits, np.arange(300))
    assert np.array_equal(mean, bits.mean(axis=0)) and np.allclose(std, bits.std(axis=0), rtol=1e-12)
