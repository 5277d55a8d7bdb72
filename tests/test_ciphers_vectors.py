"""Known answers for our own constructions, frozen from the implementation at commit b2af0e7
(the one-time vector: at 38b47e4, the Beneš construction of file format version 2; the
ChaChaPad and AES-GCM vectors: at file format version 3, when both moved to HKDF subkeys
and AES-GCM's associated data gained batch id, row index, row count and context).

Round trips pass even when a derivation changes, while every file written before
stops decrypting; these vectors fail instead. They pin the sub-key labels, the
ChaCha20 nonce layout (4-byte counter || 12-byte nonce, consecutive counters in a
batch), the one-time AES-CTR counter blocks (top bit of the low half cleared,
rows ``blocks`` apart) and keystream layout, and AES-GCM's framing (AAD, one
nonce per row, tag after the ciphertext). The paper's fixed mode is pinned by the
authors' reference file (``test_ciphers.py``), RFC 8439 by its own block, the
one-time network by an independent re-implementation (``test_ciphers_benes.py``).
The version 2 ChaCha20 / AES-GCM answers stay as vectors of the raw primitives under
the master bytes (``PRIMITIVES``), and the subkeys are pinned and checked against
cryptography's HKDF.
If one of these fails, the change breaks compatibility: do not regenerate, revert
(or bump ``files.FILE_VERSION`` and refuse the old files, as version 2 did).
"""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher as CryptoCipher
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shufflebits.ciphers import Key, Sealed, spec
from shufflebits.ciphers.sealing import Seal
from shufflebits.errors import IntegrityError

PLAIN = [[0x3F800000, 0x80000000, 0x7FC00000, 0x00000001], [0xDEADBEEF, 0x12345678, 0x7F800000, 0x40490FDB]]
NONCE12 = "a0a1a2a3a4a5a6a7a8a9aaab"
BATCH = "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"

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
            [0xA0597F5E, 0xCCC52D03, 0x586C84CF, 0x7C58C161],
            [0xCB6218E5, 0xEB40C893, 0x9C4CC537, 0xB2FCF293],
        ],
        "nonces": ["00000000" + NONCE12, "01000000" + NONCE12],
    },
    {
        "id": "aes-gcm-framing",
        "cipher": "aes-gcm",
        "key": bytes(range(96, 128)).hex(),
        # the batch id (16 bytes), then one 12-byte nonce per row
        "nonce_source": BATCH + "b0b1b2b3b4b5b6b7b8b9babbc0c1c2c3c4c5c6c7c8c9cacb",
        "context": b"vector".hex(),
        "ciphertext": [
            [0xB2C1E76F, 0x3E77DBD7, 0xBD6C0325, 0xA37ED052],
            [0x17F8FD4F, 0x0F6D88C6, 0xFFF00D0C, 0xCB782EFE],
        ],
        "tags": ["9465e89778d9c065a6ce08e1e58f686e", "ab73c49c59569e2e868741868075f060"],
        "nonces": ["b0b1b2b3b4b5b6b7b8b9babb", "c0c1c2c3c4c5c6c7c8c9cacb"],
    },
]

# The version 2 answers: the raw primitives under the master bytes (RFC 8439 ChaCha20 with
# consecutive counters, AES-256-GCM with the old associated data), now only reached via subkeys.
PRIMITIVES = {
    "chacha-pad": [[0xC8E5039F, 0x1DDB3573, 0x46A5ADE1, 0x60518681], [0x32767F43, 0x815CBF00, 0x421E7077, 0x61B13300]],
    "aes-gcm-framing": [
        [0xAA6135E6, 0xFC329109, 0xC8E85AD1, 0xDF8914DB],
        [0x093D9E0E, 0xF1EF456D, 0x7D98EC6F, 0x5551D654],
    ],
}
PRIMITIVE_TAGS = ["05bee365e66baebea3dee2c939420541", "d0c5e0569c763ac8fb5a8bb8b1082148"]
SUBKEYS = {  # Key.subkey of the vectors' keys, under the labels the ciphers use
    "chacha-pad": ("chacha20", "2bbcde6031eabc4f57052eba425ff46287f890b0cda37d98427a5f9d7f28d025"),
    "aes-gcm-framing": ("aes-256-gcm", "ebf32c9207ff1b4217964f39ffc498bbba2bace18ba8a4d5d071959b57a0356f"),
}


def replay(hex_bytes: str):
    """A nonce source that hands out exactly the recorded bytes, in order, and no more."""
    recorded, position = bytes.fromhex(hex_bytes), [0]

    def draw(size: int) -> bytes:
        start = position[0]
        assert start + size <= len(recorded), f"asked for {size} more bytes, the vector recorded {len(recorded)}"
        position[0] += size
        return recorded[start : start + size]

    return draw


def seals(vector) -> tuple:
    if "context" not in vector:
        return ()
    return (Seal(bytes.fromhex(BATCH), 2, bytes.fromhex(vector["context"]), b""),)


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
    context = bytes.fromhex(vector.get("context", ""))
    sealed = build(vector, monkeypatch).encrypt(np.array(PLAIN, dtype=np.uint32).view(np.float32), context=context)
    assert sealed.words().tolist() == vector["ciphertext"]
    assert sealed.seals == seals(vector)
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
        seals=seals(vector),
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
            payload,
            cipher="aes-gcm",
            key_fingerprint=cipher.key.fingerprint,
            dtype=dtype,
            nonces=nonces,
            seals=seals(vector),
        )
        with pytest.raises(IntegrityError):
            cipher.decrypt(sealed)


@pytest.mark.parametrize("name", sorted(SUBKEYS))
def test_subkeys_are_cryptography_hkdf(name):
    vector = next(v for v in VECTORS if v["id"] == name)
    key = Key(vector["cipher"], bytes.fromhex(vector["key"]))
    label, frozen = SUBKEYS[name]
    info = b"shufflebits/v1/hkdf\0" + key.cipher.encode() + b"\0" + label.encode()
    reference = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key.material)
    assert key.subkey(label) == reference == bytes.fromhex(frozen)
    assert key.subkey(label) != key.material and key.subkey(label + "x") != reference


def test_version_2_answers_are_the_raw_primitives():
    """The old vectors, recomputed with cryptography under the master bytes: what the subkeys replace."""
    plain = np.array(PLAIN, dtype=np.uint32)
    chacha = next(v for v in VECTORS if v["id"] == "chacha-pad")
    key = bytes.fromhex(chacha["key"])
    for row, nonce in enumerate(chacha["nonces"]):
        stream = CryptoCipher(algorithms.ChaCha20(key, bytes.fromhex(nonce)), mode=None).encryptor().update(bytes(16))
        words = np.frombuffer(stream, "<u4") ^ plain[row]
        assert words.tolist() == PRIMITIVES["chacha-pad"][row]
    aes = next(v for v in VECTORS if v["id"] == "aes-gcm-framing")
    aead = AESGCM(bytes.fromhex(aes["key"]))
    for row, nonce in enumerate(aes["nonces"]):
        sealed = aead.encrypt(
            bytes.fromhex(nonce), plain[row].astype("<u4").tobytes(), b"shufflebits/aes-gcm/v1/float32/4"
        )
        assert np.frombuffer(sealed[:16], "<u4").tolist() == PRIMITIVES["aes-gcm-framing"][row]
        assert sealed[16:].hex() == PRIMITIVE_TAGS[row]


def test_aes_gcm_associated_data_layout():
    """AES-GCM under the subkey, with the associated data spelled out here, gives the frozen vector."""
    vector = next(v for v in VECTORS if v["id"] == "aes-gcm-framing")
    key = Key("aes-gcm", bytes.fromhex(vector["key"]))
    aead = AESGCM(bytes.fromhex(SUBKEYS["aes-gcm-framing"][1]))
    plain, context = np.array(PLAIN, dtype="<u4"), b"vector"
    for row, nonce in enumerate(vector["nonces"]):
        numbers = b"".join(n.to_bytes(8, "little") for n in (4, row, 2, len(context)))
        aad = b"shufflebits/aes-gcm/v2\0float32\0" + numbers + bytes.fromhex(BATCH) + context
        sealed = aead.encrypt(bytes.fromhex(nonce), plain[row].tobytes(), aad)
        assert np.frombuffer(sealed[:16], "<u4").tolist() == vector["ciphertext"][row]
        assert sealed[16:].hex() == vector["tags"][row]
    assert key.subkey("aes-256-gcm").hex() == SUBKEYS["aes-gcm-framing"][1]
