"""Encrypted feature files: layout, authentication, wrong keys, tampering, truncation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shufflebits.ciphers import cipher_names, files, generate_key
from shufflebits.ciphers.files import load_encrypted, read_header, save_encrypted
from shufflebits.errors import IntegrityError, ShuffleBitsError, WrongKeyError
from shufflebits.registry import create_cipher

CIPHERS = cipher_names(homomorphic=False)  # ckks galleries: test_ckks.py
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
    assert header["cipher"] == name and header["version"] == files.FILE_VERSION == 3
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


@pytest.mark.parametrize("name", cipher_names(authenticated=False, homomorphic=False))
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


# What each old version is still read for: version 2 changed the one-time construction,
# version 3 the ChaCha20 / AES-GCM key derivation and AES-GCM's associated data.
REFUSED_MODES = {1: {"one-time", "pad", "aead"}, 2: {"pad", "aead"}}


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("name", EXACT)
def test_old_files_load_unless_their_construction_changed(tmp_path, monkeypatch, name, version):
    """Old files whose ciphertexts this version still makes load; the others are refused in one line."""
    cipher = create_cipher(name)
    x = features()
    path = tmp_path / "old.npz"
    with monkeypatch.context() as patch:
        patch.setattr(files, "FILE_VERSION", version)
        save_encrypted(path, cipher, cipher.encrypt(x))
    if cipher.key.mode in REFUSED_MODES[version]:
        with pytest.raises(ShuffleBitsError, match=f"version {version} files of mode") as error:
            load_encrypted(path, cipher)
        assert "\n" not in str(error.value) and "re-encrypt" in str(error.value)
    else:
        assert read_header(path)[0]["version"] == version
        sealed, _ = load_encrypted(path, cipher)
        assert cipher.decrypt(sealed).tobytes() == x.tobytes()


def test_hostile_archives_fail_in_one_line_before_anything_is_decompressed(tmp_path):
    import zipfile

    cipher = create_cipher("chacha20")
    path = tmp_path / "e.npz"
    save_encrypted(path, cipher, cipher.encrypt(features(), authenticate=True))
    with np.load(path) as archive:
        arrays = dict(archive)
    deflated = tmp_path / "deflated.npz"
    np.savez_compressed(deflated, **arrays)  # same members, compressed: a zip bomb would look like this
    nested = dict(arrays, header=np.frombuffer(b"[" * 50000 + b"]" * 50000, np.uint8))
    np.savez(tmp_path / "nested.npz", **nested)
    deep = json.loads(arrays["header"].tobytes())
    deep["x"] = [[[[[1]]]]]
    np.savez(tmp_path / "deep.npz", **dict(arrays, header=np.frombuffer(json.dumps(deep).encode(), np.uint8)))
    with zipfile.ZipFile(path) as archive:
        assert archive.infolist()[0].compress_type == zipfile.ZIP_STORED
    for name, message in [
        ("deflated.npz", "compressed"),
        ("nested.npz", "corrupted header"),
        ("deep.npz", "nested deeper"),
    ]:
        with pytest.raises(ShuffleBitsError, match=message) as error:
            load_encrypted(tmp_path / name, cipher)
        assert "\n" not in str(error.value)


@pytest.mark.parametrize("seed", [-1, 2**64, 1e300, True, "7"])
def test_malformed_seeds_in_key_files_are_one_line_errors(tmp_path, seed):
    from shufflebits.ciphers import load_key
    from shufflebits.ciphers.decrepit import seed_key
    from shufflebits.ciphers.keys import key_to_json

    record = json.loads(key_to_json(seed_key(5)))
    record["seed"] = seed
    (tmp_path / "k.json").write_text(json.dumps(record))
    with pytest.raises(ShuffleBitsError, match="malformed key file"):
        load_key(tmp_path / "k.json")


def test_a_full_disk_is_a_one_line_error(tmp_path, monkeypatch):
    import errno
    import os

    from shufflebits import atomic

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    cipher = create_cipher("shufflebits")
    (tmp_path / "e.npz").write_bytes(b"old")
    with pytest.raises(ShuffleBitsError, match=r"cannot write .*No space left"):
        save_encrypted(tmp_path / "e.npz", cipher, cipher.encrypt(features()))
    assert (tmp_path / "e.npz").read_bytes() == b"old" and list(tmp_path.glob(".*.tmp")) == []
