"""Feature ciphers: ShuffleBits (fixed / per-dimension / one-time), ChaChaPad, AesGcm, and the
searchable ones (matched without decrypting): Dcpe, Rotation, BioHash, and Ckks (encrypted scores).

The recipe layer: ``create_cipher(name, key=None)`` builds a cipher from its
catalogue entry (``key=None`` means a fresh random 256-bit key), ``cipher_for_key``
the one a key belongs to; keys and encrypted files complete it. INSECURE helpers
live apart: ``hazmat`` (repeatable experiments) and ``decrepit`` (the paper's seed
keys). Kernels: ``kernels_numpy`` (the readable reference), ``kernels_numba``
(fast CPU), ``kernels_torch`` (in-graph).

Cipher classes are imported on first use, so reading the catalogue (CLI choices,
``shufflebits --help``) loads neither numpy, numba, torch nor cryptography.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import ShuffleBitsError
from .catalogue import cipher_names, spec
from .keys import Key, generate_key, load_key, save_key

if TYPE_CHECKING:
    from .base import Cipher
    from .ckks import Ckks, CkksKey

_LAZY = {
    "AesGcm": "aesgcm",
    "ChaChaPad": "chacha",
    "Cipher": "base",
    "Sealed": "base",
    "ShuffleBits": "shufflebits",
    "Dcpe": "dcpe",
    "Rotation": "rotation",
    "BioHash": "biohash",
    "Ckks": "ckks",
}

__all__ = [
    "AesGcm",
    "BioHash",
    "ChaChaPad",
    "Cipher",
    "Ckks",
    "Dcpe",
    "Key",
    "Rotation",
    "Sealed",
    "ShuffleBits",
    "cipher_for_key",
    "cipher_names",
    "create_cipher",
    "generate_key",
    "load_key",
    "save_key",
    "spec",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def create_cipher(name: str, key: Key | CkksKey | None = None) -> Cipher | Ckks:
    """Cipher ``name`` (a catalogue name) under ``key``; ``None``: a fresh random key.

    A homomorphic scheme takes its own key type (``ckks``: a ``CkksKey``).
    """
    record = spec(name)
    cipher_class = record.resolve()
    if record.homomorphic:
        return cipher_class(key)
    if key is None:
        key = generate_key(name)
    elif not isinstance(key, Key) or key.cipher != name:
        raise ShuffleBitsError(f"cipher {name!r} needs a {name!r} key, got {getattr(key, 'cipher', key)!r}")
    return cipher_class(key)


def cipher_for_key(key: Key) -> Cipher:
    """The cipher a key belongs to."""
    if not isinstance(key, Key):
        raise TypeError(f"key must be a shufflebits Key, got {type(key).__name__}")
    return spec(key.cipher).resolve()(key)
