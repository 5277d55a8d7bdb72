"""One-time ShuffleBits (file format version 2): the Beneš network on an AES-256-CTR keystream.

The reference below rebuilds the construction from its definition, independently
of the kernels: counter blocks encrypted one by one with AES-256-ECB, switch bits
read from the documented layout, and every switch applied to a list of bits.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher as CryptoCipher
from cryptography.hazmat.primitives.ciphers import algorithms, modes

from shufflebits import ShuffleBits
from shufflebits.ciphers import Key, kernels_numba, kernels_numpy
from shufflebits.ciphers import shufflebits as sb_module
from shufflebits.errors import IntegrityError

SPECIALS = np.array(
    [
        *(0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0xFFBFFFFF, 0x7FC0DEAD),
        *(0x00000001, 0x807FFFFF, 0x007FFFFF, 0x80000001, 0x7F7FFFFF, 0x3F800000, 0xDEADBEEF, 0xFFFFFFFF),
    ],
    dtype=np.uint32,
)  # zeros, infinities, quiet/signalling NaNs with payloads, denormals, extremes


def cipher(seed: int = 0, kernel: str = "numba") -> ShuffleBits:
    material = bytes((seed * 7 + k) % 256 for k in range(32))
    counter = itertools.count()
    return ShuffleBits(
        Key("shufflebits-otp", material),
        kernel=kernel,
        nonce_source=lambda size: bytes((next(counter) * 31 + k) % 256 for k in range(size)),
    )


def reference_keystream(key: bytes, counter_block: bytes, nbytes: int) -> bytes:
    """AES-256-CTR by hand: ECB of the big-endian 128-bit counter, block by block."""
    ecb = CryptoCipher(algorithms.AES(key), modes.ECB()).encryptor()
    start = int.from_bytes(counter_block, "big")
    blocks = [(start + k).to_bytes(16, "big") for k in range(-(-nbytes // 16))]
    return ecb.update(b"".join(blocks))[:nbytes]


def reference_word(value: int, switch_bits: list[list[int]], decrypt: bool) -> int:
    """Apply the network switch by switch: stage s pairs the k-th position p with p & delta == 0
    (ascending) with p + delta, and swaps them when switch bit k is 1."""
    deltas = [16, 8, 4, 2, 1, 2, 4, 8, 16]
    bits = [(value >> p) & 1 for p in range(32)]
    order = range(8, -1, -1) if decrypt else range(9)
    for s in order:
        low = [p for p in range(32) if not p & deltas[s]]
        for k, p in enumerate(low):
            if switch_bits[s][k]:
                bits[p], bits[p + deltas[s]] = bits[p + deltas[s]], bits[p]
    return sum(b << p for p, b in enumerate(bits))


def reference_encrypt(key: bytes, words: np.ndarray, nonces: np.ndarray, decrypt: bool = False) -> np.ndarray:
    n, d = words.shape
    out = np.empty_like(words)
    for i in range(n):
        stream = reference_keystream(key, bytes(nonces[i]), 18 * d)
        pairs = np.frombuffer(stream[: 16 * d], "<u4").reshape(4, d)
        middle = np.frombuffer(stream[16 * d : 18 * d], "<u2")
        for j in range(d):
            low = [[(int(pairs[p, j]) >> k) & 1 for k in range(32)] for p in range(4)]
            deltas = [16, 8, 4, 2]
            before = [[low[p][q] for q in range(32) if not q & deltas[p]] for p in range(4)]
            after = [[low[p][q] for q in range(32) if q & deltas[p]] for p in range(4)]
            mid = [(int(middle[j]) >> k) & 1 for k in range(16)]
            switch_bits = [*before, mid, *after[::-1]]
            out[i, j] = reference_word(int(words[i, j]), switch_bits, decrypt)
    return out


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
def test_matches_the_independent_reference(kernel):
    one_time = cipher(1, kernel)
    words = np.concatenate([SPECIALS, np.arange(8, dtype=np.uint32) * 0x01010101]).reshape(3, 8)
    sealed = one_time.encrypt(words.view(np.float32))
    key = one_time.key.derive("one-time-benes")
    assert np.array_equal(sealed.words(), reference_encrypt(key, words, sealed.nonces))
    assert np.array_equal(reference_encrypt(key, sealed.words(), sealed.nonces, decrypt=True), words)
    assert np.array_equal(one_time.decrypt(sealed).view(np.uint32), words)


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
@pytest.mark.parametrize("d", [16, 5, 1])  # 5: rows of 90 bytes, not a whole number of AES blocks
def test_special_values_round_trip_bit_exact(kernel, d):
    one_time = cipher(2, kernel)
    words = np.resize(SPECIALS, (16 * 3 // d + 1, d))
    sealed = one_time.encrypt(words.view(np.float32))
    assert np.array_equal(one_time.decrypt(sealed).view(np.uint32), words)
    popcount = np.vectorize(lambda w: bin(int(w)).count("1"))
    assert np.array_equal(popcount(sealed.words()), popcount(words))  # a permutation of the bits


def test_rows_decrypt_alone_and_in_any_order():
    one_time = cipher(3)
    x = np.random.default_rng(0).standard_normal((40, 24)).astype(np.float32)
    sealed = one_time.encrypt(x)
    rows = [7, 3, 39, 0, 1]
    subset = type(sealed).from_words(
        sealed.words()[rows],
        cipher=sealed.cipher,
        key_fingerprint=sealed.key_fingerprint,
        dtype="float32",
        nonces=sealed.nonces[rows],
    )
    assert one_time.decrypt(subset).tobytes() == x[rows].tobytes()


def test_many_chunks_use_the_worker_thread_and_stay_in_order(monkeypatch):
    monkeypatch.setattr(sb_module, "_CHUNK_BYTES", 4096)  # 2-3 rows of 1,800 bytes per chunk
    fast, slow = cipher(4), cipher(4, "numpy")
    x = np.random.default_rng(1).standard_normal((50, 100)).astype(np.float32)
    sealed = fast.encrypt(x)
    key = fast.key.derive("one-time-benes")
    assert np.array_equal(sealed.words()[-3:], reference_encrypt(key, x.view(np.uint32)[-3:], sealed.nonces[-3:]))
    assert slow.decrypt(sealed).tobytes() == x.tobytes()


def test_other_word_sizes_round_trip():
    one_time = cipher(5)
    for dtype in (np.float16, np.float64):
        x = np.random.default_rng(2).standard_normal((6, 10)).astype(dtype)
        x[0, :3] = [np.nan, -0.0, np.inf]
        sealed = one_time.encrypt(x)
        assert one_time.decrypt(sealed).tobytes() == x.tobytes()
        assert not np.array_equal(sealed.words(), x.view(sealed.words().dtype))


def test_corrupted_counter_is_refused():
    one_time = cipher(6)
    sealed = one_time.encrypt(np.ones((2, 8), np.float32))
    nonces = sealed.nonces.copy()
    nonces[0, 8:] = 255
    bad = type(sealed).from_words(
        sealed.words(), cipher=sealed.cipher, key_fingerprint=sealed.key_fingerprint, dtype="float32", nonces=nonces
    )
    with pytest.raises(IntegrityError, match="wrap"):
        one_time.decrypt(bad)


def _network_distribution(pairs: bool) -> np.ndarray:
    """Exact distribution of where bit 0 (or bits 0 and 1 together) end up, over all switch settings."""
    shape = (32, 32) if pairs else (32,)
    p = np.zeros(shape)
    p[(0, 1) if pairs else 0] = 1.0
    for delta in kernels_numpy.benes_deltas(32):
        new = np.zeros(shape)
        for where in zip(*np.nonzero(p)):
            if pairs and where[0] ^ delta == where[1]:  # both bits on one switch: they swap together
                new[where] += p[where] / 2
                new[where[::-1]] += p[where] / 2
                continue
            moves = list(itertools.product(*[(q, q ^ delta) for q in where]))  # each switch straight or crossed
            for moved in moves:
                new[moved] += p[where] / len(moves)
        p = new
    return p


def test_single_bits_land_uniformly_but_pairs_do_not():
    """What the docstring states: every bit's destination is exactly uniform; pairs of bits are not."""
    single = _network_distribution(pairs=False)
    assert np.allclose(single, 1 / 32, rtol=0, atol=1e-15)
    joint = _network_distribution(pairs=True)
    assert np.isclose(joint.sum(), 1) and np.all(np.diag(joint) == 0)
    uniform = (1 - np.eye(32)) / (32 * 31)
    assert 0.5 * np.abs(joint - uniform).sum() > 0.01  # a real, measurable bias
    # the empirical placement of bits 0 and 1 through the real kernel follows the exact law
    one_time = cipher(7)
    probe = np.full((2000, 64), 0b11, dtype=np.uint32)
    ones = np.full_like(probe, 0b01)
    both = one_time.encrypt(probe.view(np.float32))
    first = cipher(7).encrypt(ones.view(np.float32)).words()  # same key and nonces: same permutations
    first_pos = np.log2(first).astype(int)
    second_pos = np.log2(both.words() ^ first).astype(int)
    counts = np.zeros((32, 32))
    np.add.at(counts, (first_pos.reshape(-1), second_pos.reshape(-1)), 1)
    sigma = np.sqrt(joint.max() / counts.sum())
    assert np.abs(counts / counts.sum() - joint).max() < 6 * sigma


def sweep(one_time: ShuffleBits, start: int, stop: int, step: int = 1 << 24) -> None:
    """Every 32-bit pattern in [start, stop) round-trips through the numba kernel (fresh permutations each)."""
    for a in range(start, stop, step):
        words = np.arange(a, min(stop, a + step), dtype=np.uint64).astype(np.uint32).reshape(-1, 512)
        sealed = one_time.encrypt(words.view(np.float32))
        assert np.array_equal(one_time.decrypt(sealed).view(np.uint32), words), f"round trip failed at {a:#x}"


def test_sweep_on_a_slice():
    sweep(cipher(8), 0x7F800000 - (1 << 20), 0x7F800000 + (1 << 20), step=1 << 19)  # finite/inf/NaN border


@pytest.mark.slow
def test_all_2_32_patterns_round_trip_one_time():
    sweep(cipher(9), 0, 1 << 32)


def test_numba_kernel_writes_into_out_and_matches_numpy():
    rng = np.random.default_rng(3)
    words = rng.integers(0, 2**32, (4, 16), dtype=np.uint32)
    stream = rng.integers(0, 256, (4, 18 * 16), dtype=np.uint8)
    out = np.zeros_like(words)
    assert kernels_numba.benes32(words, stream, False, out) is out
    switches = kernels_numpy.benes_switches(*ShuffleBits.switch_words(stream, 16, 32), 32)
    assert np.array_equal(out, kernels_numpy.benes(words, switches))
    assert np.array_equal(kernels_numba.benes32(out, stream, True, np.empty_like(out)), words)


def test_small_inputs_take_the_cached_ecb_path_with_the_same_keystream(monkeypatch):
    """Up to SMALL_BLOCKS the counter blocks go through a cached ECB context: same bits as AES-CTR."""
    x = np.random.default_rng(7).standard_normal((3, 40)).astype(np.float32)
    small = cipher(8).encrypt(x)
    monkeypatch.setattr(sb_module, "SMALL_BLOCKS", 0)
    ctr = cipher(8).encrypt(x)
    assert np.array_equal(small.nonces, ctr.nonces)
    assert np.array_equal(small.words(), ctr.words())
    assert cipher(8).decrypt(small).tobytes() == x.tobytes()
