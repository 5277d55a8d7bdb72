"""Encrypted feature files (``.npz``): header, ciphertext words, nonces, paths, MAC.

The header (JSON) records format version, cipher, mode, key fingerprint, the
scheme's parameters (``params``, the key's: DCPE beta and scale, rotation noise,
BioHash bits; a header without them, from before they were recorded, holds the
defaults), dtype, shape and the ciphertext's seals (``sealing.Seal``: batch ids,
contexts, tags).
Ciphertext is stored as unsigned integer words (never floats). An
HMAC-SHA256 tag under a key-derived MAC key covers header, ciphertext, nonces
and passthrough columns, so a wrong key, a flipped bit or a truncated file fails
with a clear message even for ciphers without built-in integrity.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import IntegrityError, InvalidInputError, ShuffleBitsError, WrongKeyError
from .base import Cipher, Sealed
from .catalogue import ParamValues, check_params, format_params
from .sealing import Seal

FILE_FORMAT = "shufflebits-encrypted-features"
# Version 2: one-time ShuffleBits became a Beneš network on an AES-256-CTR keystream.
# Version 3: ChaCha20 and AES-GCM run under HKDF subkeys, AES-GCM binds batch id, row
# index and row count, and the header carries the seals. Older files of the other
# ciphers hold the same ciphertexts and still load.
FILE_VERSION = 3
_CHANGED_MODES = {1: ("one-time", "pad", "aead"), 2: ("pad", "aead")}
_MAC_PURPOSE = "file-mac"


MAX_HEADER_BYTES = 64 * 1024
MAX_HEADER_DEPTH = 4  # {"seals": [{"batch": ...}]}


def _depth(value, level: int = 1) -> int:
    if isinstance(value, dict):
        return max([level, *(_depth(item, level + 1) for item in value.values())])
    if isinstance(value, list):
        return max([level, *(_depth(item, level + 1) for item in value)])
    return level - 1


def _check_members(path: Path) -> None:
    """Refuse compressed or oversized members before any is read: ``save_encrypted`` stores them raw.

    So nothing is decompressed before the MAC is checked, and no member can
    claim more bytes than the file holds.
    """
    if not zipfile.is_zipfile(path):
        return  # np.load below says what it is instead
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise ShuffleBitsError(f"cannot read {path}: truncated or not an .npz file ({error})") from error
    for member in members:
        if member.compress_type != zipfile.ZIP_STORED or member.file_size > size:
            raise ShuffleBitsError(
                f"{path}: member {member.filename!r} is compressed or larger than the file; "
                "encrypted feature files store their members raw"
            )


def _mac(cipher: Cipher, header: bytes, arrays: dict[str, np.ndarray]) -> bytes:
    mac = hmac.new(cipher.key.derive(_MAC_PURPOSE), digestmod=hashlib.sha256)
    for name in ("header", *sorted(arrays)):
        payload = header if name == "header" else _canonical(arrays[name])
        mac.update(name.encode() + b"\0" + len(payload).to_bytes(8, "little") + payload)
    return mac.digest()


def _canonical(array: np.ndarray) -> bytes:
    if array.dtype.kind == "U":
        return json.dumps(array.tolist()).encode()
    return f"{array.dtype.str}{array.shape}".encode() + np.ascontiguousarray(array).tobytes()


def save_encrypted(
    path: str | os.PathLike,
    cipher: Cipher,
    sealed: Sealed,
    image_paths: list[str] | None = None,
    *,
    pids: np.ndarray | None = None,
    camids: np.ndarray | None = None,
) -> None:
    """Write ``sealed`` (from ``cipher``) atomically as an authenticated ``.npz``."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ShuffleBitsError(f"encrypted feature files end in .npz, got {path.name}")
    if sealed.key_fingerprint != cipher.key.fingerprint or sealed.params != cipher.key.params:
        raise ShuffleBitsError("sealed features were made with another key or other parameters than this cipher's")
    header = {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "cipher": sealed.cipher,
        "mode": cipher.key.mode,
        "key_fingerprint": sealed.key_fingerprint,
        "params": dict(sealed.params),
        "dtype": sealed.dtype,
        "shape": list(sealed.shape),
        "seals": [seal.as_dict() for seal in sealed.seals],
    }
    n = sealed.shape[0]
    arrays = {"ciphertext": sealed.payload()}
    if sealed.nonces is not None:
        arrays["nonces"] = sealed.nonces
    arrays["image_paths"] = np.asarray(list(image_paths) if image_paths is not None else [""] * n, dtype=str)
    for name, values in (("pids", pids), ("camids", camids)):
        if values is not None:
            arrays[name] = np.asarray(values, dtype=np.int64)
    for name in ("image_paths", "pids", "camids"):
        if name in arrays and len(arrays[name]) != n:
            raise ShuffleBitsError(f"{name} has {len(arrays[name])} rows but features have {n}")
    header_bytes = json.dumps(header, sort_keys=True).encode()
    tag = _mac(cipher, header_bytes, arrays)
    with atomic_write(path) as handle:
        np.savez(handle, header=np.frombuffer(header_bytes, np.uint8), tag=np.frombuffer(tag, np.uint8), **arrays)


def read_header(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """``(header, arrays)`` of an encrypted file, checked for format but not authenticated.

    ``arrays`` still holds the raw ``header`` bytes (what the MAC covers).
    """
    path = Path(path)
    if not path.is_file():
        raise ShuffleBitsError(f"encrypted feature file {path} does not exist")
    _check_members(path)
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a plain .npy array
            raise ShuffleBitsError(f"{path} is not an encrypted shufflebits feature file")
        with loaded as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (
        ValueError,
        OSError,
        EOFError,
        KeyError,
        NotImplementedError,
        RuntimeError,
        MemoryError,  # a member's .npy header declares a shape larger than memory
        zipfile.BadZipFile,
    ) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ShuffleBitsError(f"cannot read {path}: truncated or not an .npz file ({detail})") from error
    if "header" not in arrays or "tag" not in arrays:
        raise ShuffleBitsError(f"{path} is not an encrypted shufflebits feature file")
    if arrays["header"].dtype != np.uint8 or arrays["header"].size > MAX_HEADER_BYTES:
        raise IntegrityError(f"{path}: corrupted header (not uint8 JSON of at most {MAX_HEADER_BYTES} bytes)")
    try:
        header = json.loads(arrays["header"].tobytes())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise IntegrityError(f"{path}: corrupted header ({str(error)[:80]})") from None
    if _depth(header) > MAX_HEADER_DEPTH:
        raise IntegrityError(f"{path}: corrupted header (nested deeper than {MAX_HEADER_DEPTH} levels)")
    if not isinstance(header, dict) or header.get("format") != FILE_FORMAT:
        raise ShuffleBitsError(f"{path} is not an encrypted shufflebits feature file")
    version = header.get("version")
    if version in _CHANGED_MODES and header.get("mode") in _CHANGED_MODES[version]:
        raise ShuffleBitsError(
            f"{path}: version {version} files of mode {header.get('mode')!r} are no longer read (the construction "
            f"or its key derivation changed since); decrypt with the release that wrote it and re-encrypt "
            f"(file version {FILE_VERSION})"
        )
    if version not in (1, 2, FILE_VERSION):
        raise ShuffleBitsError(
            f"{path}: unsupported encrypted file version {version!r} (supported: 1, 2, {FILE_VERSION})"
        )
    return header, arrays


def recorded_params(path, header: dict) -> ParamValues:
    """The scheme parameters a header records, checked; none recorded (older files): the defaults."""
    params = header.get("params", {})
    try:
        if not isinstance(params, dict):
            raise InvalidInputError(f"params must be an object, got {params!r}")
        return check_params(str(header.get("cipher")), params)
    except InvalidInputError as error:
        raise ShuffleBitsError(f"{path}: malformed header ({error})") from None


def check_key(path, header: dict, cipher: Cipher) -> None:
    """The header's cipher, parameters and key fingerprint must be ``cipher``'s (files and feature stores alike)."""
    if header.get("cipher") != cipher.name:
        raise ShuffleBitsError(
            f"{path} was encrypted with {header.get('cipher')!r}, but the key is for {cipher.name!r}"
        )
    params = recorded_params(path, header)
    if params != cipher.key.params:
        raise WrongKeyError(
            f"{path} was encrypted with {cipher.name} {format_params(params)}, but this key has "
            f"{format_params(cipher.key.params)} (parameters are part of the key)"
        )
    if header.get("key_fingerprint") != cipher.key.fingerprint:
        raise WrongKeyError(
            f"{path} was encrypted with key {str(header.get('key_fingerprint'))[:16]}…, not this key "
            f"({cipher.key.fingerprint[:16]}…): wrong key"
        )


def load_encrypted(path: str | os.PathLike, cipher: Cipher) -> tuple[Sealed, dict[str, np.ndarray]]:
    """Authenticate and parse an encrypted file: ``(sealed, passthrough)`` (image_paths, pids, camids)."""
    header, arrays = read_header(path)
    raw_header = arrays.pop("header").tobytes()
    check_key(path, header, cipher)
    tag = arrays.pop("tag").tobytes()
    if not hmac.compare_digest(tag, _mac(cipher, raw_header, arrays)):
        raise IntegrityError(f"{path}: authentication failed (file tampered with or damaged)")
    try:
        seals = tuple(Seal.from_dict(record) for record in header.get("seals", []))
        sealed = Sealed.from_words(
            arrays["ciphertext"],
            cipher=header["cipher"],
            key_fingerprint=header["key_fingerprint"],
            dtype=header["dtype"],
            nonces=arrays.get("nonces"),
            seals=seals,
            params=cipher.key.params,
        )
    except (KeyError, TypeError, InvalidInputError) as error:
        raise ShuffleBitsError(f"{path}: malformed encrypted file ({error})") from error
    if list(sealed.shape) != header["shape"]:
        raise ShuffleBitsError(
            f"{path}: ciphertext of shape {sealed.shape} does not match its header {header['shape']}"
        )
    passthrough = {name: arrays[name] for name in ("image_paths", "pids", "camids") if name in arrays}
    return sealed, passthrough
