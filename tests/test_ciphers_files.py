"""Encrypted feature files: layout, authentication, wrong keys, tampering, truncation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shufflebits.ciphers import cipher_names, files, generate_key
from shufflebits.ciphers.files import load_encrypted, read_header, save_encrypted
from shufflebits.errors import IntegrityError, ShuffleBitsError, WrongKeyError
from shufflebits.registry import create_cipher

CIPHERS = cipher_names()
EXACT = cipher_names(exact=True)  # decrypt bit-exact; the others' files: test_ciphers_searchable.py


def features(n=6, d=12):
    return np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)


@pytest.mark.parametrize("name", EXACT)
def test_file_round_trip_and_layout(tmp_path, name):
    cipher = create_cipher(name)
    x = features()
    path = tmp_path / "enc.npz"
    save_encrypted(path, cipher, cipher.encrypt(x), [f"img{i}.jpg" for i in range(6)], pids=np.arange(6))
    with np.load(path) as archive:
        assert archive["ciphertext"].dtype.kind == "u"  # integer words, never floats
        header = json.loads(archive["header"].tobytes())
        assert "accumulated_feature_array" not in archive.files
    assert header["cipher"] == name and header["version"] == files.FILE_VERSION == 2
    assert header["key_fingerprint"] == cipher.key.fingerprint
    assert header["dtype"] == "float32" and header["shape"] == [6, 12]
    assert cipher.key.material.hex() not in path.read_bytes().hex()
    sealed, extra = load_encrypted(path, cipher)
    assert cipher.decrypt(sealed).tobytes() == x.tobytes()
    assert extra["image_paths"][2] == "img2.jpg" and extra["pids"].tolist() == list(range(6))


@pytest.mark.parametrize("name", CIPHERS)
def test_wrong_key_fails_clearly(tmp_path, name):
    cipher = create_cipher(name)
    save_encrypted(tmp_path / "e.npz", cipher, cipher.encrypt(features()))
    with pytest.raises(WrongKeyError, match="wrong key"):
        load_encrypted(tmp_path / "e.npz", create_cipher(name))


@pytest.mark.parametrize("name", cipher_names(authenticated=False))
def test_tampering_is_detected_without_builtin_integrity(tmp_path, name):
    cipher = create_cipher(name)
    path = tmp_path / "e.npz"
    save_encrypted(path, cipher, cipher.encrypt(features()), ["a"] * 6)
    with np.load(path) as archive:
        arrays = dict(archive)
    for field in ["ciphertext", "image_paths", "header"]:
        edited = dict(arrays)
        if field == "ciphertext":
            c = arrays["ciphertext"].copy()
            c[2, 3] ^= 1
            edited["ciphertext"] = c
        elif field == "image_paths":
            edited["image_paths"] = np.asarray(["b"] * 6)
        else:
            h = json.loads(arrays["header"].tobytes())
            h["shape"] = [12, 6]
            edited["header"] = np.frombuffer(json.dumps(h, sort_keys=True).encode(), np.uint8)
        bad = tmp_path / f"bad_{field}.npz"
        np.savez(bad, **edited)
        with pytest.raises(IntegrityError, match="authentication failed"):
            load_encrypted(bad, cipher)
    if "nonces" in arrays:
        edited = dict(arrays)
        nonces = arrays["nonces"].copy()
        nonces[0, 5] ^= 1
        edited["nonces"] = nonces
        np.savez(tmp_path / "bad_nonce.npz", **edited)
        with pytest.raises(IntegrityError, match="authentication failed"):
            load_encrypted(tmp_path / "bad_nonce.npz", cipher)


def test_truncated_and_foreign_files(tmp_path):
    cipher = create_cipher("chacha20")
    path = tmp_path / "e.npz"
    save_encrypted(path, cipher, cipher.encrypt(features()))
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ShuffleBitsError, match="truncated"):
        load_encrypted(tmp_path / "cut.npz", cipher)
    np.savez(tmp_path / "plain.npz", accumulated_feature_array=features())
    with pytest.raises(ShuffleBitsError, match="not an encrypted"):
        read_header(tmp_path / "plain.npz")
    with pytest.raises(ShuffleBitsError, match="does not exist"):
        read_header(tmp_path / "missing.npz")


def test_key_for_another_cipher_and_bad_output_name(tmp_path):
    cipher = create_cipher("shufflebits")
    save_encrypted(tmp_path / "e.npz", cipher, cipher.encrypt(features()))
    with pytest.raises(ShuffleBitsError, match="encrypted with 'shufflebits'"):
        load_encrypted(tmp_path / "e.npz", create_cipher("shufflebits-dim"))
    with pytest.raises(ShuffleBitsError, match=r"\.npz"):
        save_encrypted(tmp_path / "e.bin", cipher, cipher.encrypt(features()))
    with pytest.raises(ShuffleBitsError, match="another key"):
        other = create_cipher("shufflebits", key=generate_key("shufflebits"))
        save_encrypted(tmp_path / "f.npz", other, cipher.encrypt(features()))
    assert not (tmp_path / "f.npz").exists()


@pytest.mark.parametrize("name", EXACT)
def test_version_1_files_load_except_one_time(tmp_path, monkeypatch, name):
    """Version 2 changed only the one-time construction: its version 1 files are refused in one line."""
    cipher = create_cipher(name)
    x = features()
    path = tmp_path / "v1.npz"
    with monkeypatch.context() as patch:
        patch.setattr(files, "FILE_VERSION", 1)
        save_encrypted(path, cipher, cipher.encrypt(x))
    if cipher.key.mode == "one-time":
        with pytest.raises(ShuffleBitsError, match="version 1 one-time ShuffleBits files") as error:
            load_encrypted(path, cipher)
        assert "\n" not in str(error.value)
    else:
        assert read_header(path)[0]["version"] == 1
        sealed, _ = load_encrypted(path, cipher)
        assert cipher.decrypt(sealed).tobytes() == x.tobytes()
