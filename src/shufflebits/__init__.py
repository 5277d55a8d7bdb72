"""ShuffleBits: measure what deep feature vectors leak, and encrypt them.

Implements "On the Importance of Encrypting Deep Features" (Ni, Huttunen,
Rahtu, ICCV 2021 Workshops) and goes beyond it: fast kernels, stronger
format-preserving ciphers, adaptive attacks and an honest leakage matrix.

Heavy names are imported lazily so ``import shufflebits`` stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "ShuffleBits": "shufflebits.ciphers",
    "ChaChaPad": "shufflebits.ciphers",
    "AesGcm": "shufflebits.ciphers",
    "create_model": "shufflebits.registry",
    "create_cipher": "shufflebits.registry",
    "create_attack": "shufflebits.registry",
    "ShuffleBitsError": "shufflebits.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'shufflebits' has no attribute {name!r}")
