"""Ciphers: paper vectors, round trips for every cipher/mode/dtype, keys, errors.

Catalogue conformance lives in ``test_ciphers_catalogue.py``, frozen known answers
in ``test_ciphers_vectors.py``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher as CryptoCipher
from cryptography.hazmat.primitives.ciphers import algorithms
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import shared_file
from shufflebits import AesGcm, ChaChaPad, ShuffleBits
from shufflebits.ciphers import Key, Sealed, cipher_names, generate_key, kernels_numpy, load_key, prf, save_key, spec
from shufflebits.ciphers.hazmat import experiment_nonces
from shufflebits.errors import IntegrityError, InvalidInputError, ShuffleBitsError, WrongKeyError
from shufflebits.registry import available, create_cipher

CIPHERS = cipher_names(exact=True)  # bit-exact ones; the float-valued searchable ciphers: test_ciphers_searchable.py

SPECIALS32 = np.array(
    [
        0x00000000,
        0x80000000,
        0x7F800000,
        0xFF800000,
        0x7FC00000,
        0x7F800001,
        0xFFBFFFFF,
        0x00000001,
        0x807FFFFF,
        0x7F7FFFFF,
        0x3F800000,
        0xDEADBEEF,
    ],
    dtype=np.uint32,
)


def random_bits(shape, dtype, seed=0) -> np.ndarray:
    itemsize = np.dtype(dtype).itemsize
    raw = np.random.default_rng(seed).integers(0, 256, size=(*shape, itemsize), dtype=np.uint8)
    return raw.view(dtype).reshape(shape)


def same_bits(a, b) -> bool:
    return np.asarray(a).dtype == np.asarray(b).dtype and np.asarray(a).tobytes() == np.asarray(b).tobytes()


def seeded(name: str, seed: int = 0, **options):
    """Cipher ``name`` under a key and nonces fixed by ``seed``: statistical tests see the same ciphertexts."""
    key = Key(name, hashlib.sha256(f"tests/{name}/{seed}".encode()).digest())
    return spec(name).resolve()(key, nonce_source=experiment_nonces(seed), **options)


# -- paper compatibility ---------------------------------------------------


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
def test_reference_vectors_bit_exact(kernel):
    ref = np.load(shared_file("vectors/shufflebits_reference.npz"))
    plain = ref["plaintext_bits"].view(np.float32)
    for k, seed in enumerate(ref["seeds"]):
        cipher = ShuffleBits.from_seed(int(seed), kernel=kernel)
        assert cipher.permutation(32).tolist() == ref["index_arrays"][k].tolist()
        sealed = cipher.encrypt(plain)
        assert np.array_equal(sealed.words(), ref["ciphertext_bits"][k])
        assert same_bits(cipher.decrypt(sealed), plain)


def test_seed_zero_permutation_matches_readme():
    expected = [
        2,
        11,
        25,
        21,
        10,
        4,
        29,
        16,
        23,
        6,
        18,
        26,
        3,
        30,
        8,
        0,
        19,
        12,
        20,
        13,
        7,
        5,
        17,
        14,
        27,
        22,
        9,
        28,
        24,
        1,
        15,
        31,
    ]
    cipher = ShuffleBits.from_seed(0)
    assert cipher.permutation().tolist() == expected
    assert cipher.key.insecure and cipher.key.seed == 0


def test_definition_bit_by_bit():
    """Output bit j (MSB first) is input bit idx[j], checked with bit strings."""
    cipher = ShuffleBits(generate_key("shufflebits"))
    idx = cipher.permutation(32)
    words = cipher.encrypt(SPECIALS32.view(np.float32)).words()
    for plain, enc in zip(SPECIALS32.tolist(), words.tolist()):
        bits = format(plain, "032b")
        assert format(enc, "032b") == "".join(bits[i] for i in idx)


# -- round trips -----------------------------------------------------------

FLOAT_DTYPES = [np.float16, np.float32, np.float64]


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(CIPHERS),
    dtype=st.sampled_from(["float16", "bfloat16", "float32", "float64"]),
    n=st.integers(0, 6),
    d=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_every_cipher_and_dtype(name, dtype, n, d, seed):
    cipher = create_cipher(name)
    torch = pytest.importorskip("torch")
    if dtype == "bfloat16":
        words = random_bits((n, d), np.uint16, seed)
        features = torch.from_numpy(words.view(np.int16)).view(torch.bfloat16)
    else:
        features = random_bits((n, d), np.dtype(dtype), seed)
        words = features.view(np.dtype(f"u{features.itemsize}"))
    sealed = cipher.encrypt(features)
    assert sealed.cipher == name and sealed.key_fingerprint == cipher.key.fingerprint and sealed.dtype == dtype
    assert sealed.words().shape == (n, d) and sealed.words().dtype == words.dtype
    if spec(name).format_preserving and dtype != "bfloat16":
        assert sealed.data.shape == (n, d) and sealed.data.dtype == np.dtype(dtype)
    back = cipher.decrypt(sealed)
    back_words = back.view(torch.int16).numpy().view(np.uint16) if dtype == "bfloat16" else back.view(words.dtype)
    assert np.array_equal(back_words, words)
    if n * d >= 8:  # nonce ciphers never repeat a ciphertext; fixed and per-dimension are deterministic
        deterministic = spec(name).nonce_bytes == 0
        assert np.array_equal(cipher.encrypt(features).words(), sealed.words()) == deterministic


@settings(max_examples=20, deadline=None)
@given(
    hnp.arrays(
        np.float32, hnp.array_shapes(min_dims=0, max_dims=3, max_side=5), elements=st.floats(width=32, allow_nan=True)
    )
)
def test_fixed_mode_any_shape_and_special_floats(features):
    cipher = create_cipher("shufflebits")
    sealed = cipher.encrypt(features)
    assert sealed.data.shape == features.shape
    assert same_bits(cipher.decrypt(sealed), features)


@pytest.mark.parametrize("name", ["shufflebits", "shufflebits-dim", "shufflebits-otp"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_numba_and_numpy_reference_agree(name, dtype):
    key = generate_key(name)
    fast, slow = ShuffleBits(key), ShuffleBits(key, kernel="numpy")
    features = random_bits((5, 9), dtype, 3)
    sealed = fast.encrypt(features)
    if sealed.nonces is None:
        assert same_bits(slow.encrypt(features).data, sealed.data)
    assert same_bits(slow.decrypt(sealed), features)
    assert same_bits(fast.decrypt(sealed), features)


def test_special_values_round_trip_bit_exact():
    specials = SPECIALS32.reshape(3, 4).view(np.float32)
    for name in CIPHERS:
        cipher = create_cipher(name)
        assert same_bits(cipher.decrypt(cipher.encrypt(specials)), specials), name


def test_bfloat16_via_torch():
    torch = pytest.importorskip("torch")
    x = torch.randn(4, 10).to(torch.bfloat16)
    x[0, 0] = float("nan")
    x[0, 1] = -0.0
    for name in CIPHERS:
        cipher = create_cipher(name)
        sealed = cipher.encrypt(x)
        assert sealed.dtype == "bfloat16" and sealed.words().dtype == np.uint16
        back = cipher.decrypt(sealed)
        assert back.dtype == torch.bfloat16
        assert torch.equal(back.view(torch.int16), x.view(torch.int16)), name


def test_big_endian_and_non_contiguous_inputs():
    base = random_bits((6, 16), np.float32, 9)
    big = base.astype(">f4")
    strided = np.asfortranarray(base)[:, ::2]
    for name in CIPHERS:
        cipher = create_cipher(name)
        assert same_bits(cipher.decrypt(cipher.encrypt(big)), base)
        assert same_bits(cipher.decrypt(cipher.encrypt(strided)), np.ascontiguousarray(strided))
    fixed = create_cipher("shufflebits")
    assert same_bits(fixed.encrypt(big).data, fixed.encrypt(base).data)


@pytest.mark.parametrize("name", CIPHERS)
def test_empty_arrays(name):
    cipher = create_cipher(name)
    for shape in [(0, 8), (0, 0), (3, 0)]:
        sealed = cipher.encrypt(np.zeros(shape, np.float32))
        assert sealed.words().shape == shape
        assert cipher.decrypt(sealed).shape == shape


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 3), np.int32), np.zeros((2, 3), np.complex64), np.zeros((2, 3), np.longdouble), ["a"]]
)
def test_wrong_dtype_is_a_clear_type_error(bad):
    for name in CIPHERS:
        with pytest.raises(TypeError, match="cannot encrypt dtype"):
            create_cipher(name).encrypt(bad)


def test_rows_required_except_fixed_mode():
    for name in cipher_names(homomorphic=False):
        if spec(name).permutation == "fixed":
            continue
        with pytest.raises(ShuffleBitsError, match=r"\(n, d\)"):
            create_cipher(name).encrypt(np.zeros(5, np.float32))


# -- what the modes hide ---------------------------------------------------


def test_real_keys_give_different_permutations_and_ciphertexts():
    assert create_cipher("shufflebits").key.material != create_cipher("shufflebits").key.material
    a, b = seeded("shufflebits", 1), seeded("shufflebits", 2)
    x = random_bits((4, 64), np.float32)
    assert not np.array_equal(a.encrypt(x).words(), b.encrypt(x).words())


def test_permutations_are_permutations_per_dimension():
    cipher = seeded("shufflebits-dim")
    perms = [cipher.permutation(32, j).tolist() for j in range(16)]
    assert all(sorted(p) == list(range(32)) for p in perms)
    assert len({tuple(p) for p in perms}) == 16
    x = np.ones((1, 16), np.float32)  # the same value in every column encrypts differently
    assert len(set(cipher.encrypt(x).words()[0].tolist())) > 8


def test_one_time_fresh_per_vector_and_element():
    cipher = seeded("shufflebits-otp")
    x = np.full((3, 64), 0x0000FFFF, np.uint32).view(np.float32)  # 16 ones in every word
    first, second = cipher.encrypt(x), cipher.encrypt(x)
    assert not np.array_equal(first.nonces, second.nonces)
    assert not np.array_equal(first.words(), second.words())
    # each element gets its own permutation: identical inputs spread over many outputs
    assert len(set(first.words().reshape(-1).tolist())) > 150
    assert all(bin(w).count("1") == 16 for w in first.words().reshape(-1).tolist())


def test_fisher_yates_is_unbiased_enough():
    """Position of element 0 after shuffling 5 items from random bytes: uniform (chi-square)."""
    counts = np.zeros(5)
    stream = np.random.default_rng(11).integers(0, 256, 200_000, dtype=np.uint8)
    for k in range(0, len(stream) - 40, 40):
        idx = prf.fisher_yates(stream[k : k + 40], 5)
        counts[int(np.flatnonzero(idx == 0)[0])] += 1
    expected = counts.sum() / 5
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 25  # 4 dof: p < 1e-4 if uniform


def test_fisher_yates_rejects_rather_than_reduces():
    # i = 2 uses mask 3: byte 3 is rejected, byte 1 swaps positions 2 and 1 -> [0, 2, 1];
    # i = 1 uses mask 1: byte 0 swaps positions 1 and 0 -> [2, 0, 1]
    assert prf.fisher_yates(np.array([3, 1, 0], np.uint8), 3).tolist() == [2, 0, 1]
    assert prf.fisher_yates(np.array([3, 3], np.uint8), 3) is None


# -- ChaChaPad -------------------------------------------------------------


def hkdf_subkey(key: Key, label: str) -> bytes:
    """RFC 5869 HKDF-SHA256 (cryptography's), no salt, info = prefix, cipher name and label."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    info = b"shufflebits/v1/hkdf\0" + key.cipher.encode() + b"\0" + label.encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key.material)


def cryptography_keystream(key: bytes, nonce16: bytes, nbytes: int) -> bytes:
    return CryptoCipher(algorithms.ChaCha20(key, nonce16), mode=None).encryptor().update(bytes(nbytes))


@pytest.mark.parametrize("d", [16, 13, 1])
def test_chacha_pad_is_cryptography_keystream(d):
    cipher = seeded("chacha20", d)
    sealed = cipher.encrypt(np.zeros((3, d), np.float32))
    assert sealed.nonces.shape == (3, 16)
    for i in range(3):
        expected = cryptography_keystream(hkdf_subkey(cipher.key, "chacha20"), bytes(sealed.nonces[i]), 4 * d)
        assert sealed.words()[i].tobytes() == expected


def test_chacha_small_inputs_use_numba_with_the_same_keystream(monkeypatch):
    """Up to SMALL_BLOCKS blocks the pad comes from kernels_numba.chacha20_rows, above from OpenSSL."""
    from shufflebits.ciphers import chacha

    x = random_bits((5, 13), np.float32, 4)
    small = seeded("chacha20", 13).encrypt(x)
    monkeypatch.setattr(chacha, "SMALL_BLOCKS", 0)
    large = seeded("chacha20", 13).encrypt(x)
    assert np.array_equal(small.nonces, large.nonces)
    assert np.array_equal(small.words(), large.words())
    monkeypatch.undo()
    assert same_bits(seeded("chacha20", 13).decrypt(large), x)


def test_chacha_rfc8439_test_vector():
    """RFC 8439 section 2.4.2: key 00..1f, nonce 000000000000004a00000000, counter 1."""
    key = bytes(range(32))
    nonce = prf.nonce16(1, bytes.fromhex("000000000000004a00000000"))
    assert prf.keystream(key, nonce, 16).tobytes().hex() == "224f51f3401bd9e12fde276fb8631ded"


def test_chacha_row_subsets_still_decrypt():
    cipher = create_cipher("chacha20")
    x = random_bits((8, 13), np.float32, 1)
    sealed = cipher.encrypt(x)
    rows = [6, 1, 3]
    subset = Sealed.from_words(
        sealed.payload()[rows],
        cipher="chacha20",
        key_fingerprint=sealed.key_fingerprint,
        dtype="float32",
        nonces=sealed.nonces[rows],
    )
    assert subset.shape == (3, 13)
    assert same_bits(cipher.decrypt(subset), x[rows])


def test_chacha_changes_all_bits_statistically():
    cipher = seeded("chacha20")
    words = cipher.encrypt(np.zeros((64, 64), np.float32)).words()
    ones = np.unpackbits(words.view(np.uint8)).mean()
    assert 0.48 < ones < 0.52


# -- keys, wrong keys, tampering -------------------------------------------


def test_wrong_key_is_an_integrity_error():
    x = random_bits((3, 8), np.float32)
    for name in CIPHERS:
        sealed = create_cipher(name).encrypt(x)
        with pytest.raises(WrongKeyError):
            create_cipher(name).decrypt(sealed)
    assert issubclass(WrongKeyError, IntegrityError)


def test_aes_gcm_detects_tampering():
    cipher = AesGcm(AesGcm.generate_key())
    sealed = cipher.encrypt(random_bits((3, 8), np.float32))
    data = sealed.payload().copy()
    data[1, 5] ^= 1
    common = {
        "cipher": sealed.cipher,
        "key_fingerprint": sealed.key_fingerprint,
        "nonces": sealed.nonces,
        "seals": sealed.seals,
    }
    tampered = Sealed.from_words(data, dtype=sealed.dtype, **common)
    with pytest.raises(IntegrityError, match="row 1") as failure:
        cipher.decrypt(tampered)
    assert not isinstance(failure.value, WrongKeyError)  # the right key: the data is what changed
    relabelled = Sealed.from_words(sealed.payload(), dtype="float16", **common)
    assert relabelled.shape == (3, 16)
    with pytest.raises(IntegrityError):
        cipher.decrypt(relabelled)


def test_key_mismatched_with_cipher_class_or_registry():
    with pytest.raises(ShuffleBitsError, match="cannot be used"):
        ChaChaPad(generate_key("aes-gcm"))
    with pytest.raises(ShuffleBitsError, match="needs a 'chacha20' key"):
        create_cipher("chacha20", key=generate_key("shufflebits"))
    with pytest.raises(ShuffleBitsError, match="32 bytes"):
        Key("chacha20", b"short")
    with pytest.raises(ShuffleBitsError, match="seed"):
        ShuffleBits.from_seed(-1)


def test_registry_names():
    assert available("cipher") == list(cipher_names())
    assert available("cipher", format_preserving=False) == ["aes-gcm", "biohash", "ckks"]
    assert isinstance(create_cipher("shufflebits-dim"), ShuffleBits)
    key = generate_key("aes-gcm")
    assert create_cipher("aes-gcm", key=key).key is key
    with pytest.raises(ShuffleBitsError, match="unknown cipher 'rot13'; expected one of shufflebits, "):
        create_cipher("rot13")
    with pytest.raises(TypeError):  # only hazmat.experiment_cipher swaps the OS nonce source out
        create_cipher("chacha20", nonce_source=experiment_nonces(0))


def test_fingerprint_is_stable_and_not_the_key():
    key = generate_key("chacha20")
    assert key.fingerprint == Key("chacha20", key.material).fingerprint
    assert key.material.hex() not in key.fingerprint and len(key.fingerprint) == 32
    assert Key("aes-gcm", key.material).fingerprint != key.fingerprint  # bound to the cipher
    assert "material" not in repr(key) and key.material.hex() not in repr(key)


def test_key_file_round_trip_permissions_and_no_overwrite(tmp_path):
    key = generate_key("shufflebits-dim")
    path = tmp_path / "k.json"
    save_key(path, key)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert load_key(path) == key
    with pytest.raises(ShuffleBitsError, match="refusing to overwrite"):
        save_key(path, generate_key("shufflebits-dim"))
    assert load_key(path) == key
    seed = ShuffleBits.from_seed(42).key
    save_key(tmp_path / "s.json", seed)
    assert load_key(tmp_path / "s.json").seed == 42


def test_corrupted_key_files(tmp_path):
    path = tmp_path / "k.json"
    save_key(path, generate_key("chacha20"))
    text = path.read_text()
    (tmp_path / "fp.json").write_text(text.replace('"material": "', '"material": "AAAA'))
    with pytest.raises(ShuffleBitsError):
        load_key(tmp_path / "fp.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ShuffleBitsError, match="not a shufflebits key file"):
        load_key(tmp_path / "junk.json")
    with pytest.raises(ShuffleBitsError, match="does not exist"):
        load_key(tmp_path / "missing.json")


def test_reference_kernels_match_definition_on_words():
    idx = np.arange(16)
    np.random.default_rng(5).shuffle(idx)
    dst = kernels_numpy.destinations(idx)
    words = np.arange(0, 65536, 7, dtype=np.uint16)
    out = kernels_numpy.permute(words, dst)
    for w, o in zip(words[:50].tolist(), out[:50].tolist()):
        bits = format(w, "016b")
        assert format(o, "016b") == "".join(bits[i] for i in idx)
    tables = kernels_numpy.lookup_tables(dst, np.uint16)
    assert np.array_equal(tables[0][words & 255] | tables[1][words >> 8], out)
    assert np.array_equal(kernels_numpy.permute(out, kernels_numpy.inverse(dst)), words)


def test_batch_nonces_never_overflow_the_block_counter():
    nonces = prf.batch_nonces(5, 2**31, experiment_nonces(0))
    assert len({bytes(row[4:]) for row in nonces}) == 3  # a fresh 12-byte nonce every 2 rows
    assert prf.counters(nonces).tolist() == [0, 2**31, 0, 2**31, 0]
    assert prf.contiguous_runs(nonces, 2**31) == [(0, 2), (2, 4), (4, 5)]
    bad = nonces.copy()
    bad[0, :4] = 255
    with pytest.raises(IntegrityError, match="overflows"):
        prf.contiguous_runs(bad, 2)


def test_corrupted_sealed_inputs_are_clear_errors():
    cipher = create_cipher("shufflebits-otp")
    sealed = cipher.encrypt(random_bits((3, 8), np.float32))
    common = {"cipher": sealed.cipher, "key_fingerprint": sealed.key_fingerprint}
    with pytest.raises(InvalidInputError, match=r"needs uint8 \(3, 16\) nonces"):
        Sealed.from_words(sealed.payload(), dtype="float32", **common)
    with pytest.raises(InvalidInputError, match="must be uint64 words, got uint32"):
        Sealed.from_words(sealed.payload(), dtype="float64", nonces=sealed.nonces, **common)
    with pytest.raises(InvalidInputError, match="uses no nonces"):
        Sealed.from_words(
            sealed.payload(),
            dtype="float32",
            nonces=sealed.nonces,
            cipher="shufflebits",
            key_fingerprint=sealed.key_fingerprint,
        )
    # a hand-built Sealed (bypassing from_words) is still refused by decrypt
    no_nonces = Sealed(sealed.data, None, sealed.cipher, sealed.key_fingerprint, sealed.dtype, sealed.shape)
    with pytest.raises(ShuffleBitsError, match="nonces"):
        cipher.decrypt(no_nonces)
    wrong_shape = Sealed(sealed.data, sealed.nonces, sealed.cipher, sealed.key_fingerprint, sealed.dtype, (3, 9))
    with pytest.raises(ShuffleBitsError, match="shape"):
        cipher.decrypt(wrong_shape)
    with pytest.raises(ShuffleBitsError, match="made with 'chacha20'"):
        cipher.decrypt(create_cipher("chacha20").encrypt(random_bits((3, 8), np.float32)))


@pytest.mark.parametrize("name", cipher_names(nonce_bytes=16) + cipher_names(nonce_bytes=12))
def test_experiment_nonces_make_runs_repeatable_and_stay_unique(name):
    key = generate_key(name)
    features = np.random.default_rng(1).standard_normal((6, 8)).astype(np.float32)
    cipher_class = spec(name).resolve()
    first = cipher_class(key, nonce_source=experiment_nonces(7)).encrypt(features)
    again = cipher_class(key, nonce_source=experiment_nonces(7)).encrypt(features)
    other = cipher_class(key, nonce_source=experiment_nonces(8)).encrypt(features)
    assert first.data.tobytes() == again.data.tobytes()
    assert first.nonces.tobytes() != other.nonces.tobytes()
    assert len({row.tobytes() for row in first.nonces}) == len(first.nonces)
    if spec(name).exact:
        assert create_cipher(name, key=key).decrypt(first).tobytes() == features.tobytes()
    else:
        np.testing.assert_allclose(create_cipher(name, key=key).decrypt(first), features, atol=1e-5)
