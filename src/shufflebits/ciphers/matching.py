"""Matching on ciphertexts: what the party that holds no key can compare.

Ciphers the catalogue declares ``matchable`` are compared by their
``match_metric``: ``"euclidean"`` reads the ciphertext words as the floats they
are (DCPE, rotation: their ciphertexts are float vectors by design, so this is
the one place where ciphertext goes through float arithmetic, after an explicit
``.view``); ``"hamming"`` unpacks the ciphertext bytes to 0/1 (BioHash; the zero
padding adds nothing to a distance). Two ciphertexts are comparable only when
made by the same cipher under the same parameters and key and of the same width
(BioHash codes of different lengths can pad to the same width).

Encrypted files are read here without their key: the matcher cannot check the
file MAC (it is keyed), so ``load_matchable`` returns unauthenticated ciphertext.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, ShuffleBitsError
from .base import Sealed
from .catalogue import cipher_names, format_params, spec
from .files import read_header, recorded_params


def match_view(sealed: Sealed) -> tuple[np.ndarray, str]:
    """``(features, metric)``: float64 ``(n, k)`` values that ``reid`` ranks with ``metric``."""
    if not isinstance(sealed, Sealed):
        raise TypeError(f"match_view expects a Sealed, got {type(sealed).__name__}")
    record = spec(sealed.cipher)
    if not record.matchable:
        raise ShuffleBitsError(
            f"{sealed.cipher} ciphertexts cannot be compared without decrypting (matchable ciphers: "
            f"{', '.join(cipher_names(matchable=True))}); decrypt them first"
        )
    if record.match_metric == "hamming":
        bits = np.unpackbits(np.ascontiguousarray(sealed.payload()).view(np.uint8), axis=1)
        return bits.astype(np.float64), "hamming"
    values = sealed.words().view(np.dtype(sealed.dtype))
    return values.astype(np.float64), record.match_metric


def comparable(query: Sealed, gallery: Sealed) -> None:
    """Refuse a pair the scheme cannot compare: other cipher, other parameters, other key or other width."""
    if query.cipher != gallery.cipher:
        raise InvalidInputError(f"query ciphertexts are {query.cipher}, gallery ciphertexts are {gallery.cipher}")
    if query.params != gallery.params:
        raise InvalidInputError(
            f"query ciphertexts are {query.cipher} {format_params(query.params)}, gallery ones "
            f"{format_params(gallery.params)}: their ciphertexts cannot be compared"
        )
    if query.key_fingerprint != gallery.key_fingerprint:
        raise InvalidInputError(
            f"query and gallery were encrypted under different keys ({query.key_fingerprint[:16]}… vs "
            f"{gallery.key_fingerprint[:16]}…): their ciphertexts cannot be compared"
        )
    if query.shape[1:] != gallery.shape[1:] or query.dtype != gallery.dtype:
        raise InvalidInputError(
            f"query ciphertexts are {query.dtype} {query.shape[1:]}, gallery ones {gallery.dtype} {gallery.shape[1:]}"
        )


def is_encrypted_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an ``.npz`` with the encrypted-file header (how ``np.savez`` names it)."""
    path = Path(path)
    if path.suffix != ".npz" or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return "header.npy" in archive.namelist()
    except zipfile.BadZipFile:
        return False


def load_matchable(path: str | os.PathLike) -> tuple[Sealed, dict[str, np.ndarray]]:
    """``(sealed, passthrough)`` of an encrypted file, read WITHOUT authentication (no key here)."""
    header, arrays = read_header(path)
    try:
        sealed = Sealed.from_words(
            arrays["ciphertext"],
            cipher=header["cipher"],
            key_fingerprint=header["key_fingerprint"],
            dtype=header["dtype"],
            nonces=arrays.get("nonces"),
            params=recorded_params(path, header),
        )
    except KeyError as error:
        raise ShuffleBitsError(f"{path}: malformed encrypted feature file (no {error})") from None
    if list(sealed.shape) != header.get("shape"):
        raise ShuffleBitsError(f"{path}: ciphertext of shape {sealed.shape} does not match its header")
    passthrough = {name: arrays[name] for name in ("image_paths", "pids", "camids") if name in arrays}
    return sealed, passthrough
