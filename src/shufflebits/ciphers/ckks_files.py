"""CKKS key files and encrypted gallery files (``.npz``, members stored raw, written atomically).

The key file (0600, never overwritten) holds SEAL's secret and public key and the
secret id. A gallery file holds a JSON header (format, version, cipher
``ckks``, key fingerprint, ring degree, count, dim, metric, norm scale, slots),
the ciphertexts (one byte string, with offsets; SEAL's serialization), the
passthrough columns (paths, pids, camids) and an HMAC-SHA256 tag under the
key's MAC key over all of it. The matcher reads it without the key
(``load_gallery(path)``, tag not checked, like ``matching.load_matchable``); the
key holder checks it (``load_gallery(path, key)``).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import IntegrityError, ShuffleBitsError, WrongKeyError
from .ckks import CkksGallery, CkksKey
from .files import _canonical, _check_members

DEGREES = (8192, 16384)  # ring degrees whose 128-bit-secure modulus holds the two 60-bit primes
KEY_FORMAT = "shufflebits-ckks-key"
GALLERY_FORMAT = "shufflebits-ckks-gallery"
VERSION = 2  # 2: SEAL keys, complex column packing (version 1 held TenSEAL contexts, real packing)


def _read(path: Path, what: str) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise ShuffleBitsError(f"{what} {path} does not exist")
    _check_members(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, AttributeError, zipfile.BadZipFile) as error:
        raise ShuffleBitsError(f"cannot read {path}: not a {what} ({str(error)[:80]})") from None


def _header(path: Path, arrays: dict, expected: str) -> dict:
    try:
        header = json.loads(arrays["header"].tobytes())
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("format") != expected:
        raise ShuffleBitsError(f"{path} is not a {expected} file")
    if header.get("version") != VERSION:
        raise ShuffleBitsError(
            f"{path}: unsupported {expected} version {header.get('version')!r} (supported: {VERSION}; "
            "make a new key with ckks-keygen and encrypt the gallery again)"
        )
    return header


def is_ckks_gallery(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a CKKS gallery file (its header names the format)."""
    path = Path(path)
    if path.suffix != ".npz" or not path.is_file():
        return False
    try:  # reads the header member only: plaintext feature files pass through here too
        with np.load(path, allow_pickle=False) as archive:
            if "header" not in archive.files:
                return False
            header = json.loads(archive["header"].tobytes())
    except (ValueError, OSError, EOFError, UnicodeDecodeError, zipfile.BadZipFile):
        return False
    return isinstance(header, dict) and header.get("format") == GALLERY_FORMAT


def save_key(path: str | os.PathLike, key: CkksKey) -> None:
    """Write the key holder's key file: 0600, refusing to replace an existing file (and a seeded key)."""
    if key.seed is not None:
        raise ShuffleBitsError("a seeded CKKS key is insecure (reproducible studies only) and is never saved")
    header = {
        "format": KEY_FORMAT,
        "version": VERSION,
        "cipher": "ckks",
        "key_fingerprint": key.fingerprint,
        "poly_degree": key.poly_degree,
    }
    arrays = {
        "header": np.frombuffer(json.dumps(header).encode(), np.uint8),
        "secret_id": np.frombuffer(key.secret_id, np.uint8),
        "secret": np.frombuffer(key.secret, np.uint8),
        "public": np.frombuffer(key.public, np.uint8),
    }
    with atomic_write(path, overwrite=False, permissions=0o600) as handle:
        np.savez(handle, **arrays)


def load_key(path: str | os.PathLike) -> CkksKey:
    path = Path(path)
    arrays = _read(path, "CKKS key file")
    header = _header(path, arrays, KEY_FORMAT)
    try:
        key = CkksKey(
            arrays["secret"].tobytes(),
            arrays["public"].tobytes(),
            arrays["secret_id"].tobytes(),
            _degree(path, header),
        )
    except KeyError as error:
        raise ShuffleBitsError(f"{path}: malformed CKKS key file (no {error} member)") from None
    key.secret_key()  # SEAL checks the key against the parameters: a damaged one is a one-line error
    if key.fingerprint != header.get("key_fingerprint"):
        raise IntegrityError(f"{path}: the key does not match its recorded fingerprint (damaged key file)")
    return key


def _degree(path: Path, header: dict) -> int:
    degree = header.get("poly_degree")
    if degree not in DEGREES:
        raise ShuffleBitsError(f"{path}: CKKS ring degree {degree!r} is not one of {', '.join(map(str, DEGREES))}")
    return degree


def _tag(key: CkksKey, arrays: dict[str, np.ndarray]) -> bytes:
    mac = hmac.new(key.mac_key(), digestmod=hashlib.sha256)
    for name in sorted(arrays):
        payload = _canonical(arrays[name])
        mac.update(name.encode() + b"\0" + len(payload).to_bytes(8, "little") + payload)
    return mac.digest()


def save_gallery(
    path: str | os.PathLike,
    key: CkksKey,
    gallery: CkksGallery,
    *,
    image_paths=None,
    pids=None,
    camids=None,
) -> None:
    """Write ``gallery`` (encrypted under ``key``) with its passthrough columns, tagged, atomically."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ShuffleBitsError(f"CKKS gallery files end in .npz, got {path.name}")
    if gallery.key_fingerprint != key.fingerprint:
        raise WrongKeyError("this gallery was encrypted under another CKKS key than the one given")
    header = {
        "format": GALLERY_FORMAT,
        "version": VERSION,
        "cipher": "ckks",
        "key_fingerprint": gallery.key_fingerprint,
        "poly_degree": gallery.poly_degree,
        "count": gallery.count,
        "dim": gallery.dim,
        "metric": gallery.metric,
        "norm_scale": gallery.norm_scale,
        "slots": gallery.slots,
        "groups": len(gallery.groups),
    }
    blobs = [ct for group in gallery.groups for ct in group]
    arrays = {
        "header": np.frombuffer(json.dumps(header, sort_keys=True).encode(), np.uint8),
        "ciphertexts": np.frombuffer(b"".join(blobs), np.uint8),
        "offsets": np.cumsum([0, *map(len, blobs)]).astype(np.int64),
        "image_paths": np.asarray(list(image_paths) if image_paths is not None else [""] * gallery.count, dtype=str),
    }
    for name, values in (("pids", pids), ("camids", camids)):
        if values is not None:
            arrays[name] = np.asarray(values, dtype=np.int64)
    for name in ("image_paths", "pids", "camids"):
        if name in arrays and len(arrays[name]) != gallery.count:
            raise ShuffleBitsError(f"{name} has {len(arrays[name])} rows but the gallery has {gallery.count}")
    tag = _tag(key, arrays)
    with atomic_write(path) as handle:
        np.savez(handle, tag=np.frombuffer(tag, np.uint8), **arrays)


def load_gallery(path: str | os.PathLike, key: CkksKey | None = None) -> tuple[CkksGallery, dict[str, np.ndarray]]:
    """``(gallery, passthrough)``; with ``key`` the tag and fingerprint are checked, without it not (the matcher)."""
    path = Path(path)
    arrays = _read(path, "CKKS gallery")
    header = _header(path, arrays, GALLERY_FORMAT)
    if key is not None:
        if header.get("key_fingerprint") != key.fingerprint:
            raise WrongKeyError(
                f"{path} was encrypted with CKKS key {str(header.get('key_fingerprint'))[:16]}…, not this key "
                f"({key.fingerprint[:16]}…): wrong key"
            )
        tag = arrays.pop("tag").tobytes()
        if not hmac.compare_digest(tag, _tag(key, arrays)):
            raise IntegrityError(f"{path}: authentication failed (file tampered with or damaged)")
    try:
        offsets, data = arrays["offsets"], arrays["ciphertexts"].tobytes()
        blobs = [data[a:b] for a, b in itertools.pairwise(offsets.tolist())]
        per_group, groups = len(blobs) // header["groups"], header["groups"]
        gallery = CkksGallery(
            _degree(path, header),
            tuple(tuple(blobs[k * per_group : (k + 1) * per_group]) for k in range(groups)),
            int(header["count"]),
            int(header["dim"]),
            header["metric"],
            float(header["norm_scale"]),
            int(header["slots"]),
            header["key_fingerprint"],
        )
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
        raise ShuffleBitsError(f"{path}: malformed CKKS gallery file ({error})") from None
    passthrough = {name: arrays[name] for name in ("image_paths", "pids", "camids") if name in arrays}
    return gallery, passthrough
