"""Known answers for our own constructions, frozen from the implementation at commit b2af0e7
(the one-time vector: at 38b47e4, the Beneš construction of file format version 2).

Round trips pass even when a derivation changes, while every file written before
stops decrypting; these vectors fail instead. They pin the sub-key labels, the
ChaCha20 nonce layout (4-byte counter || 12-byte nonce, consecutive counters in a
batch), the one-time AES-CTR counter blocks (top bit of the low half cleared,
rows ``blocks`` apart) and keystream layout, and AES-GCM's framing (AAD, one
nonce per row, tag after the ciphertext). The paper's fixed mode is pinned by the
authors' reference file (``test_ciphers.py``), RFC 8439 by its own block, the
one-time network by an independent re-implementation (``test_ciphers_benes.py``).
If one of these fails, the change breaks compatibility: do not regenerate, revert
(or bump ``files.FILE_VERSION`` and refuse the old files, as version 2 did).
"""

from __future__ import annotations

import numpy as np
import pytest

from shufflebits.ciphers import Key, Sealed, spec
from shufflebits.errors import IntegrityError

PLAIN = [[0x3F800000, 0x80000000, 0x7FC00000, 0x00000001], [0xDEADBEEF, 0x12345678, 0x7F800000, 0x40490FDB]]
NONCE12 = "a0a1a2a3a4a5a6a7a8a9aaab"

VECTORS = [
    {
        "id": "per-dimension",
        "cipher": "shufflebits-dim",
        "key": bytes(range(32)).hex(),
        "nonce_source": "",
        "ciphertext": [
            [0x68401084, 0x00000040, 0xC1021294, 0x00000002],
            [0x5F2BDFFD, 0xC4F47104, 0x81021294, 0xACB848C3],
        ],
        "nonces": None,
    },
    {
        "id": "one-time",
        "cipher": "shufflebits-otp",
        "key": bytes(range(32, 64)).hex(),
        "nonce_source": "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
        "ciphertext": [
            [0x0802401E, 0x00080000, 0x000549B8, 0x00080000],
            [0xFF9BE3BB, 0xC0A1270F, 0x20149822, 0xF11C0D83],
        ],
        # byte 8's top bit cleared; 4 words x 18 bytes = 72 bytes = 5 AES blocks per row
        "nonces": ["a0a1a2a3a4a5a6a728a9aaabacadaeaf", "a0a1a2a3a4a5a6a728a9aaabacadaeb4"],
    },
    {
        "id": "chacha-pad",
        "cipher": "chacha20",
        "key": bytes(range(64, 96)).hex(),
        "nonce_source": NONCE12,
        "ciphertext": [
            [0xC8E5039F, 0x1DDB3573, 0x46A5ADE1, 0x60518681],
            [0x32767F43, 0x815CBF00, 0x421E7077, 0x61B13300],
        ],
        "nonces": ["00000000" + NONCE12, "01000000" + NONCE12],
    },
    {
        "id": "aes-gcm-framing",
        "cipher": "aes-gcm",
        "key": bytes(range(96, 128)).hex(),
        "nonce_source": "b0b1b2b3b4b5b6b7b8b9babbc0c1c2c3c4c5c6c7c8c9cacb",
        "ciphertext": [
            [0xAA6135E6, 0xFC329109, 0xC8E85AD1, 0xDF8914DB],
            [0x093D9E0E, 0xF1EF456D, 0x7D98EC6F, 0x5551D654],
        ],
        "tags": ["05bee365e66baebea3dee2c939420541", "d0c5e0569c763ac8fb5a8bb8b1082148"],
        "nonces": ["b0b1b2b3b4b5b6b7b8b9babb", "c0c1c2c3c4c5c6c7c8c9cacb"],
    },
]


def replay(hex_bytes: str):
    """A nonce source that hands out exactly the recorded bytes, once."""
    recorded = bytes.fromhex(hex_bytes)

    def draw(size: int) -> bytes:
        assert size == len(recorded), f"asked for {size} nonce bytes, the vector recorded {len(recorded)}"
        return recorded

    return draw


def build(vector, monkeypatch):
    key = Key(vector["cipher"], bytes.fromhex(vector["key"]))
    return spec(vector["cipher"]).resolve()(key, nonce_source=replay(vector["nonce_source"]))


def expected_payload(vector) -> np.ndarray:
    words = np.array(vector["ciphertext"], dtype=np.uint32)
    if "tags" not in vector:
        return words
    tags = np.frombuffer(bytes.fromhex("".join(vector["tags"])), np.uint8).reshape(2, 16)
    return np.concatenate([words.view(np.uint8), tags], axis=1)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_known_answer_encrypts(vector, monkeypatch):
    sealed = build(vector, monkeypatch).encrypt(np.array(PLAIN, dtype=np.uint32).view(np.float32))
    assert sealed.words().tolist() == vector["ciphertext"]
    assert np.array_equal(sealed.payload(), expected_payload(vector))
    nonces = None if sealed.nonces is None else [bytes(row).hex() for row in sealed.nonces]
    assert nonces == vector["nonces"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_known_answer_decrypts_with_both_kernels(vector, monkeypatch):
    cipher = build(vector, monkeypatch)
    nonces = vector["nonces"]
    sealed = Sealed.from_words(
        expected_payload(vector),
        cipher=vector["cipher"],
        key_fingerprint=cipher.key.fingerprint,
        dtype="float32",
        nonces=None if nonces is None else np.frombuffer(bytes.fromhex("".join(nonces)), np.uint8).reshape(2, -1),
    )
    kernels = [cipher]
    if spec(cipher.name).family == "shufflebits":  # the numpy reference kernel too
        kernels.append(type(cipher)(cipher.key, kernel="numpy"))
    for each in kernels:
        assert each.decrypt(sealed).view(np.uint32).tolist() == PLAIN


def test_aes_gcm_must_fail_entries(monkeypatch):
    """The AES-GCM vector with a flipped ciphertext bit, a flipped tag bit or a relabelled dtype is refused."""
    vector = VECTORS[-1]
    cipher = build(vector, monkeypatch)
    nonces = np.frombuffer(bytes.fromhex("".join(vector["nonces"])), np.uint8).reshape(2, 12)
    for dtype, flip in [("float32", (1, 3)), ("float32", (0, 31)), ("float16", None)]:  # body byte, tag byte
        payload = expected_payload(vector).copy()
        if flip is not None:
            payload[flip] ^= 0x80
        sealed = Sealed.from_words(
            payload, cipher="aes-gcm", key_fingerprint=cipher.key.fingerprint, dtype=dtype, nonces=nonces
        )
        with pytest.raises(IntegrityError):
            cipher.decrypt(sealed)
