"""Feature ciphers: ShuffleBits (fixed / per-dimension / one-time), ChaChaPad, AesGcm.

``create_cipher(name, key=None)`` (``shufflebits.registry``) builds one by name;
``key=None`` means a fresh random 256-bit key. Kernels: ``kernels_numpy`` (the
readable reference), ``kernels_numba`` (fast CPU), ``kernels_torch`` (in-graph).
"""

from __future__ import annotations

from ..errors import ShuffleBitsError
from ..registry import register
from .aesgcm import AesGcm
from .base import Cipher, Sealed
from .chacha import ChaChaPad
from .keys import CIPHERS, Key, generate_key, load_key, save_key, seed_key
from .shufflebits import ShuffleBits

__all__ = [
    "CIPHERS",
    "AesGcm",
    "ChaChaPad",
    "Cipher",
    "Key",
    "Sealed",
    "ShuffleBits",
    "cipher_for_key",
    "generate_key",
    "load_key",
    "save_key",
    "seed_key",
]


def cipher_for_key(key: Key) -> Cipher:
    """The cipher a key belongs to."""
    if key.cipher == "chacha20":
        return ChaChaPad(key)
    if key.cipher == "aes-gcm":
        return AesGcm(key)
    return ShuffleBits(key)


def _with_key(name: str, key: Key | None) -> Key:
    if key is None:
        return generate_key(name)
    if not isinstance(key, Key) or key.cipher != name:
        raise ShuffleBitsError(f"cipher {name!r} needs a {name!r} key, got {getattr(key, 'cipher', key)!r}")
    return key


@register("cipher", "shufflebits")
def create_shufflebits(key: Key | None = None, nonce_source=None) -> ShuffleBits:
    """Fixed mode: one permutation for every element (the paper)."""
    return ShuffleBits(_with_key("shufflebits", key), nonce_source=nonce_source)


@register("cipher", "shufflebits-dim")
def create_shufflebits_dim(key: Key | None = None, nonce_source=None) -> ShuffleBits:
    """One permutation per feature dimension."""
    return ShuffleBits(_with_key("shufflebits-dim", key), nonce_source=nonce_source)


@register("cipher", "shufflebits-otp")
def create_shufflebits_otp(key: Key | None = None, nonce_source=None) -> ShuffleBits:
    """Fresh permutations for every element from key + per-vector nonce."""
    return ShuffleBits(_with_key("shufflebits-otp", key), nonce_source=nonce_source)


@register("cipher", "chacha20")
def create_chacha20(key: Key | None = None, nonce_source=None) -> ChaChaPad:
    return ChaChaPad(_with_key("chacha20", key), nonce_source=nonce_source)


@register("cipher", "aes-gcm")
def create_aes_gcm(key: Key | None = None, nonce_source=None) -> AesGcm:
    return AesGcm(_with_key("aes-gcm", key), nonce_source=nonce_source)
