"""Torch kernels and EncryptedOutput: same bits as numpy, in-graph, nonces returned."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from shufflebits.ciphers import ChaChaPad, Sealed, ShuffleBits, generate_key, kernels_numpy, kernels_torch, prf, spec  # noqa: E402
from shufflebits.errors import ShuffleBitsError  # noqa: E402
from shufflebits.nn import EncryptedFeatures, EncryptedOutput  # noqa: E402
from shufflebits.registry import create_cipher  # noqa: E402

TORCH_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
INT = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def random_tensor(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    size = torch.empty((), dtype=dtype).element_size()
    bits = torch.randint(-(2**15), 2**15, (*shape, size // 2), generator=g, dtype=torch.int16)
    return bits.view(dtype).reshape(shape)


def int_bits(t):
    return t.contiguous().view(INT[t.element_size()])


@pytest.mark.parametrize("name", ["shufflebits", "shufflebits-dim"])
@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_torch_kernel_bits_equal_numpy(name, dtype):
    cipher = create_cipher(name)
    x = random_tensor((7, 33), dtype, 1)
    ciphertext, nonces = cipher.encrypt_tensor(x)
    assert nonces is None and ciphertext.dtype == dtype and ciphertext.shape == x.shape
    numpy_words = cipher.encrypt(x).words()
    torch_words = int_bits(ciphertext).numpy().view(numpy_words.dtype)
    assert np.array_equal(torch_words, numpy_words)


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_torch_one_time_decrypts_with_both_host_kernels(dtype):
    cipher = create_cipher("shufflebits-otp")
    x = random_tensor((6, 19), dtype, 2)
    ciphertext, nonces = cipher.encrypt_tensor(x)
    assert nonces.shape == (6, 16) and ciphertext.dtype == dtype
    sealed = EncryptedOutput(torch.nn.Identity(), cipher).seal(EncryptedFeatures(ciphertext, nonces))
    for kernel in ["numba", "numpy"]:
        back = ShuffleBits(cipher.key, kernel=kernel).decrypt(sealed)
        back = back if isinstance(back, torch.Tensor) else torch.from_numpy(back)
        assert torch.equal(int_bits(back), int_bits(x))
    # the numpy reference network on the same host keystream gives the same ciphertext
    plain_words = int_bits(x).numpy().view(sealed.words().dtype)
    _, chunks = cipher.one_time_keystream(6, 19, 8 * x.element_size(), sealed.nonces)
    ((_, _, stream),) = list(chunks)
    switches = kernels_numpy.benes_switches(
        *cipher.switch_words(stream, 19, 8 * x.element_size()), 8 * x.element_size()
    )
    assert np.array_equal(kernels_numpy.benes(plain_words, switches), sealed.words())


def test_torch_fixed_mode_matches_paper_vectors(shared_dir):
    ref = np.load(shared_dir / "vectors/shufflebits_reference.npz")
    for k, seed in enumerate(ref["seeds"]):
        x = torch.from_numpy(ref["plaintext_bits"].view(np.float32).copy())
        ciphertext, _ = ShuffleBits.from_seed(int(seed)).encrypt_tensor(x)
        assert np.array_equal(ciphertext.view(torch.int32).numpy().view(np.uint32), ref["ciphertext_bits"][k])


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_torch_chacha_pad_equals_cryptography(dtype):
    cipher = ChaChaPad(ChaChaPad.generate_key())
    x = torch.zeros((3, 21), dtype=dtype)  # zero plaintext: ciphertext is the keystream itself
    ciphertext, nonces = cipher.encrypt_tensor(x)
    assert nonces.dtype == torch.uint8 and nonces.shape == (3, 16)
    row_bytes = 21 * x.element_size()
    for i in range(3):
        expected = prf.keystream(cipher.stream_key, bytes(nonces[i].numpy()), row_bytes)
        assert int_bits(ciphertext[i]).numpy().tobytes() == expected.tobytes()


def test_torch_chacha_block_counter_and_nonce_words():
    key = bytes(range(32))
    nonce = prf.nonce16(7, bytes(range(100, 112)))
    nonces = torch.from_numpy(np.frombuffer(nonce, np.uint8).reshape(1, 16).copy())
    stream = kernels_torch.chacha20_rows(kernels_torch.key_tensor(key, "cpu"), nonces, 200)
    assert stream.numpy().tobytes() == prf.keystream(key, nonce, 200).tobytes()


class Backbone(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU())

    def forward(self, x):
        return self.fc(x)


@pytest.mark.parametrize("name", ["shufflebits", "shufflebits-dim", "shufflebits-otp", "chacha20"])
def test_encrypted_output_round_trip(name):
    torch.manual_seed(0)
    model = Backbone().eval()
    cipher = create_cipher(name)
    wrapped = EncryptedOutput(model, cipher).eval()
    x = torch.randn(5, 8)
    with torch.no_grad():
        out = wrapped(x)
        plain = model(x)
    assert isinstance(out, EncryptedFeatures)
    assert out.ciphertext.shape == plain.shape and out.ciphertext.dtype == torch.float32
    assert not torch.equal(int_bits(out.ciphertext), int_bits(plain))
    assert (out.nonces is None) == (spec(name).nonce_bytes == 0)
    decrypted = cipher.decrypt(wrapped.seal(out))
    assert decrypted.tobytes() == plain.numpy().tobytes()


def test_encrypted_output_refuses_host_only_ciphers_and_non_tensors():
    in_graph = "in-graph; use one of shufflebits, shufflebits-dim, shufflebits-otp, chacha20 "
    with pytest.raises(ShuffleBitsError, match=in_graph):
        EncryptedOutput(Backbone(), create_cipher("aes-gcm"))
    with pytest.raises(TypeError):
        EncryptedOutput(object(), create_cipher("chacha20"))

    class TwoOutputs(torch.nn.Module):
        def forward(self, x):
            return x, x

    with pytest.raises(ShuffleBitsError, match="feature tensor"):
        EncryptedOutput(TwoOutputs(), create_cipher("shufflebits"))(torch.zeros(2, 4))


def test_encrypted_output_under_torch_compile():
    torch.manual_seed(1)
    model = Backbone().eval()
    cipher = ShuffleBits(generate_key("shufflebits"))
    wrapped = EncryptedOutput(model, cipher)
    compiled = torch.compile(wrapped)
    x = torch.randn(4, 8)
    with torch.no_grad():
        out = compiled(x)
        plain = model(x)
    assert cipher.decrypt(wrapped.seal(out)).tobytes() == plain.numpy().tobytes()


def test_device_kernels_equal_the_host_paths_eager_and_compiled():
    """Every torch kernel a device runs, eager and under torch.compile (inductor), against numba / OpenSSL."""
    x = random_tensor((48, 40), torch.float32, 5)
    words = int_bits(x)
    fixed, per_dim = create_cipher("shufflebits"), create_cipher("shufflebits-dim")
    one_time, pad = create_cipher("shufflebits-otp"), ChaChaPad(ChaChaPad.generate_key())
    wide = kernels_torch.table_tensor(kernels_torch.wide_tables(fixed.tables(32, None, False)), "cpu")
    tables = kernels_torch.table_tensor(per_dim.tables(32, 40, False), "cpu")
    nonces, chunks = one_time.one_time_keystream(48, 40, 32)
    ((_, _, stream),) = list(chunks)
    pairs, middle = (kernels_torch.host_words(w, "cpu").clone() for w in one_time.switch_words(stream, 40, 32))
    pad_nonces = torch.from_numpy(prf.batch_nonces(48, 3, lambda n: bytes(range(n))))

    pad_key = kernels_torch.key_tensor(pad.stream_key, "cpu")

    def kernels(words, wide, tables, pairs, middle, pad_key, pad_nonces):
        return (
            kernels_torch.permute_fixed(words, wide),
            kernels_torch.permute_per_dimension(words, tables),
            kernels_torch.benes(words, pairs, middle),
            kernels_torch.xor_pad(words, pad_key, pad_nonces),
        )

    host_words = words.numpy().view(np.uint32)
    sealed_one_time = Sealed.from_words(
        host_words, cipher=one_time.name, key_fingerprint=one_time.key.fingerprint, dtype="float32", nonces=nonces
    )
    expected = [
        fixed.encrypt(x).words(),
        per_dim.encrypt(x).words(),
        one_time._apply(host_words, nonces, decrypt=False)[0],
        pad._xor(host_words, pad_nonces.numpy()),
    ]
    assert np.array_equal(
        one_time.decrypt(sealed_one_time).view(np.uint32), one_time._apply(host_words, nonces, True)[0]
    )
    compiled = torch.compile(kernels)
    for run in (kernels, compiled):
        outputs = run(words, wide, tables, pairs, middle, pad_key, pad_nonces)
        for out, want in zip(outputs, expected):
            assert np.array_equal(out.numpy().view(np.uint32), want)


_WORDS = [(torch.float16, 21, 0), (torch.float32, 40, 2**31 - 2), (torch.float64, 9, 2**32 - 16)]


@pytest.mark.parametrize(
    ("compiled", "dtype", "d", "counter"),
    [(False, *case) for case in _WORDS]
    + [
        # each word size compiles its own graph (minutes on a cold cache): the suite compiles one
        pytest.param(True, *case, marks=() if case[0] is torch.float32 else pytest.mark.slow)
        for case in _WORDS
    ],
)
def test_torch_chacha_pad_eager_and_compiled_equal_openssl(compiled, dtype, d, counter):
    """Odd tails, 16/32/64-bit words, counters crossing int32's sign bit and ending at 2**32."""
    key = bytes(range(1, 33))
    rows = 3
    blocks = -(-d * torch.empty((), dtype=dtype).element_size() // 64)
    start = counter - rows * blocks if counter >= 2**32 - 16 else counter
    nonces = prf.batch_nonces(rows, blocks, lambda n: bytes(range(200, 200 + n)))
    nonces[:, :4] = (np.arange(rows, dtype=np.uint64) * blocks + start).astype("<u4").view(np.uint8).reshape(rows, 4)
    x = random_tensor((rows, d), dtype, 3)
    words = kernels_torch.int_view(x)
    got = kernels_torch.xor_pad(
        words, kernels_torch.key_tensor(key, "cpu"), torch.from_numpy(nonces), compiled=compiled
    )
    raw = words.numpy().view(np.uint8).reshape(rows, -1)
    for i in range(rows):
        want = raw[i] ^ prf.keystream(key, bytes(nonces[i]), raw.shape[1])
        assert got[i].numpy().view(np.uint8).tobytes() == want.tobytes()


def test_torch_chacha_falls_back_to_eager_once_when_compile_fails(no_torch_compile):
    key, nonces = kernels_torch.key_tensor(bytes(32), "cpu"), torch.zeros((2, 16), dtype=torch.uint8)
    with pytest.warns(UserWarning, match="torch.compile unavailable"):
        assert kernels_torch.compiled_keystream() is None
    stream = kernels_torch.chacha20_rows(key, nonces, 64, compiled=True)  # no second note
    assert stream[0].numpy().tobytes() == prf.keystream(bytes(32), bytes(16), 64).tobytes()
