"""CKKS key files, encrypted gallery files and encrypted query files (``.npz``, members stored raw, written
atomically).

The key file (0600, never overwritten) holds SEAL's secret and public key and the
secret id. A gallery file holds a JSON header (format, version, cipher
``ckks``, key fingerprint, ring degree, count, dim, metric, norm scale, slots),
the ciphertexts (one byte string, with offsets; SEAL's serialization), the
passthrough columns (paths, pids, camids) and an HMAC-SHA256 tag under the
key's MAC key over all of it. The matcher reads it without the key
(``load_gallery(path)``, tag not checked, like ``matching.load_matchable``); the
key holder checks it (``load_gallery(path, key)``). An encrypted query file
(``ckks.encrypt_query``) has the same layout: its header names the gallery's
norm scale instead of slots, its ciphertexts are ``ceil((d + 1) / 2)`` per query,
and its passthrough columns travel in the clear like the gallery's.
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
from .ckks import METRICS, CkksGallery, CkksKey, EncryptedQuery
from .files import _canonical, _check_members

DEGREES = (8192, 16384)  # ring degrees whose 128-bit-secure modulus holds the two 60-bit primes
KEY_FORMAT = "shufflebits-ckks-key"
GALLERY_FORMAT = "shufflebits-ckks-gallery"
QUERY_FORMAT = "shufflebits-ckks-query"
VERSION = 2  # 2: SEAL keys, complex column packing (version 1 held TenSEAL contexts, real packing); all three files
PASSTHROUGH = ("image_paths", "pids", "camids")


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
            "make a new key with ckks-keygen and encrypt again)"
        )
    return header


def ckks_format(path: str | os.PathLike) -> str | None:
    """The format a CKKS file's header names (key, gallery, query), or None for any other file."""
    path = Path(path)
    if path.suffix != ".npz" or not path.is_file():
        return None
    try:  # reads the header member only: plaintext feature files pass through here too
        with np.load(path, allow_pickle=False) as archive:
            if "header" not in archive.files:
                return None
            header = json.loads(archive["header"].tobytes())
    except (ValueError, OSError, EOFError, UnicodeDecodeError, zipfile.BadZipFile):
        return None
    found = header.get("format") if isinstance(header, dict) else None
    return found if found in (KEY_FORMAT, GALLERY_FORMAT, QUERY_FORMAT) else None


def is_ckks_gallery(path: str | os.PathLike) -> bool:
    return ckks_format(path) == GALLERY_FORMAT


def is_ckks_query(path: str | os.PathLike) -> bool:
    return ckks_format(path) == QUERY_FORMAT


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
    _write(path, key, header, blobs, "gallery", image_paths=image_paths, pids=pids, camids=camids)


def _write(path, key: CkksKey, header: dict, blobs: list[bytes], what: str, **passthrough) -> None:
    """A tagged CKKS file of ``header``, ciphertext ``blobs`` and passthrough columns of ``header["count"]`` rows."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ShuffleBitsError(f"CKKS {what} files end in .npz, got {path.name}")
    count = header["count"]
    arrays = {
        "header": np.frombuffer(json.dumps(header, sort_keys=True).encode(), np.uint8),
        "ciphertexts": np.frombuffer(b"".join(blobs), np.uint8),
        "offsets": np.cumsum([0, *map(len, blobs)]).astype(np.int64),
    }
    image_paths = passthrough["image_paths"]
    arrays["image_paths"] = np.asarray(list(image_paths) if image_paths is not None else [""] * count, dtype=str)
    for name in ("pids", "camids"):
        if passthrough[name] is not None:
            arrays[name] = np.asarray(passthrough[name], dtype=np.int64)
    for name in PASSTHROUGH:
        if name in arrays and len(arrays[name]) != count:
            raise ShuffleBitsError(f"{name} has {len(arrays[name])} rows but the {what} has {count}")
    tag = _tag(key, arrays)
    with atomic_write(path) as handle:
        np.savez(handle, tag=np.frombuffer(tag, np.uint8), **arrays)


def _load(path, key: CkksKey | None, expected: str, what: str) -> tuple[dict, dict, list[bytes]]:
    """``(header, arrays, ciphertext blobs)`` of a CKKS file; with ``key`` its fingerprint and tag are checked."""
    path = Path(path)
    arrays = _read(path, f"CKKS {what}")
    header = _header(path, arrays, expected)
    if key is not None:
        if header.get("key_fingerprint") != key.fingerprint:
            raise WrongKeyError(
                f"{path} was encrypted with CKKS key {str(header.get('key_fingerprint'))[:16]}…, not this key "
                f"({key.fingerprint[:16]}…): wrong key"
            )
        tag = arrays.pop("tag", np.zeros(0, np.uint8)).tobytes()
        if not hmac.compare_digest(tag, _tag(key, arrays)):
            raise IntegrityError(f"{path}: authentication failed (file tampered with or damaged)")
    try:
        offsets, data = arrays["offsets"], arrays["ciphertexts"].tobytes()
        blobs = [data[a:b] for a, b in itertools.pairwise(offsets.tolist())]
    except (KeyError, TypeError, ValueError) as error:
        raise ShuffleBitsError(f"{path}: malformed CKKS {what} file ({error})") from None
    return header, arrays, blobs


def _split(blobs: list[bytes], parts: int) -> tuple[tuple[bytes, ...], ...]:
    """``blobs`` as ``parts`` equal runs (a file whose count does not divide them is malformed)."""
    if parts < 1 or len(blobs) % parts:
        raise ValueError(f"{len(blobs)} ciphertexts do not split into {parts} equal parts")
    size = len(blobs) // parts
    return tuple(tuple(blobs[k * size : (k + 1) * size]) for k in range(parts))


def load_gallery(path: str | os.PathLike, key: CkksKey | None = None) -> tuple[CkksGallery, dict[str, np.ndarray]]:
    """``(gallery, passthrough)``; with ``key`` the tag and fingerprint are checked, without it not (the matcher)."""
    path = Path(path)
    header, arrays, blobs = _load(path, key, GALLERY_FORMAT, "gallery")
    try:
        gallery = CkksGallery(
            _degree(path, header),
            _split(blobs, header["groups"]),
            int(header["count"]),
            int(header["dim"]),
            header["metric"],
            float(header["norm_scale"]),
            int(header["slots"]),
            header["key_fingerprint"],
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ShuffleBitsError(f"{path}: malformed CKKS gallery file ({error})") from None
    return gallery, {name: arrays[name] for name in PASSTHROUGH if name in arrays}


def save_query(
    path: str | os.PathLike,
    key: CkksKey,
    query: EncryptedQuery,
    *,
    image_paths=None,
    pids=None,
    camids=None,
) -> None:
    """Write an encrypted query (``ckks.encrypt_query`` under ``key``) with its passthrough columns, tagged."""
    if query.key_fingerprint != key.fingerprint:
        raise WrongKeyError("this query was encrypted under another CKKS key than the one given")
    header = {
        "format": QUERY_FORMAT,
        "version": VERSION,
        "cipher": "ckks",
        "key_fingerprint": query.key_fingerprint,
        "poly_degree": query.poly_degree,
        "count": query.count,
        "dim": query.dim,
        "metric": query.metric,
        "norm_scale": query.norm_scale,
    }
    blobs = [ct for row in query.weights for ct in row]
    _write(path, key, header, blobs, "query", image_paths=image_paths, pids=pids, camids=camids)


def load_query(path: str | os.PathLike, key: CkksKey | None = None) -> tuple[EncryptedQuery, dict[str, np.ndarray]]:
    """``(query, passthrough)`` of an encrypted query file; ``key`` checks its tag (the key holder)."""
    path = Path(path)
    header, arrays, blobs = _load(path, key, QUERY_FORMAT, "query")
    try:
        dim, metric = int(header["dim"]), header["metric"]
        if metric not in METRICS or len(blobs) != header["count"] * -(-(dim + (metric == "euclidean")) // 2):
            raise ValueError(f"not one ciphertext per complex column of each {metric} {dim}-d query")
        query = EncryptedQuery(
            _split(blobs, header["count"]),
            dim,
            metric,
            header["key_fingerprint"],
            float(header["norm_scale"]),
            _degree(path, header),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ShuffleBitsError(f"{path}: malformed CKKS query file ({error})") from None
    return query, {name: arrays[name] for name in PASSTHROUGH if name in arrays}
