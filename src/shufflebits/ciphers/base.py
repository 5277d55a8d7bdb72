"""``Sealed`` ciphertext and the shared encrypt/decrypt plumbing of every cipher."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import IntegrityError, ShuffleBitsError
from .keys import Key
from .words import WORD_DTYPES, contiguous, from_words, to_words

TAG_BYTES = 16  # AES-GCM tag


@dataclass(frozen=True, eq=False)
class Sealed:
    """Encrypted features plus what decryption needs.

    ``data`` has the plaintext's shape and dtype for format-preserving ciphers
    (bfloat16 ciphertext is kept as its uint16 words: numpy has no bfloat16),
    and is uint8 ``(n, nbytes + 16)`` for AES-GCM. ``nonces`` is uint8 ``(n, k)``
    or None (fixed and per-dimension ShuffleBits need none).
    """

    data: np.ndarray
    nonces: np.ndarray | None
    cipher: str
    key_fingerprint: str
    dtype: str
    shape: tuple[int, ...]

    def words(self) -> np.ndarray:
        """The ciphertext as unsigned words ``(n, d)`` (AES-GCM: ciphertext bytes without tag)."""
        word = WORD_DTYPES[self.dtype]
        if self.cipher == "aes-gcm":
            body = np.ascontiguousarray(self.data[:, : self.data.shape[1] - TAG_BYTES])
            return body.view(word).reshape(self.shape)
        return contiguous(self.data).view(word).reshape(self.shape)


class Cipher(ABC):
    """Base class: subclasses implement ``_encrypt_words`` / ``_decrypt_words`` on unsigned words."""

    ciphers: tuple[str, ...] = ()
    needs_rows = True  # (n, d) input; fixed ShuffleBits accepts any shape

    def __init__(self, key: Key, *, nonce_source: Callable[[int], bytes] | None = None) -> None:
        if not isinstance(key, Key):
            raise TypeError(f"key must be a shufflebits Key, got {type(key).__name__}")
        if key.cipher not in self.ciphers:
            raise ShuffleBitsError(
                f"a {key.cipher!r} key cannot be used with {type(self).__name__} (expects {', '.join(self.ciphers)})"
            )
        self.key = key
        # Where per-vector nonces come from: the OS CSPRNG unless an experiment
        # asks for repeatable runs (see ``hazmat.experiment_nonces``).
        self.nonce_source = nonce_source or os.urandom

    @property
    def name(self) -> str:
        return self.key.cipher

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cipher={self.name!r}, fingerprint={self.key.fingerprint!r})"

    def encrypt(self, features) -> Sealed:
        """Encrypt float features (numpy array or torch tensor); returns ``Sealed``."""
        words, dtype = to_words(features)
        if self.needs_rows and words.ndim != 2:
            raise ShuffleBitsError(f"{self.name} encrypts (n, d) feature arrays, got shape {words.shape}")
        data, nonces = self._encrypt_words(words, dtype)
        if self.name != "aes-gcm" and dtype != "bfloat16":
            data = data.view(np.dtype(dtype))
        return Sealed(data, nonces, self.name, self.key.fingerprint, dtype, tuple(words.shape))

    def decrypt(self, sealed: Sealed):
        """Bit-exact plaintext (numpy; a torch tensor for bfloat16)."""
        if not isinstance(sealed, Sealed):
            raise TypeError(f"decrypt expects a Sealed, got {type(sealed).__name__}")
        if sealed.cipher != self.name:
            raise ShuffleBitsError(f"ciphertext was made with {sealed.cipher!r}, this cipher is {self.name!r}")
        if sealed.key_fingerprint != self.key.fingerprint:
            raise IntegrityError(
                f"wrong key: ciphertext was sealed with key {sealed.key_fingerprint[:16]}…, "
                f"this key is {self.key.fingerprint[:16]}…"
            )
        if sealed.dtype not in WORD_DTYPES:
            raise ShuffleBitsError(f"unknown ciphertext dtype {sealed.dtype!r}")
        n = sealed.shape[0] if sealed.shape else 0
        if sealed.nonces is not None and (sealed.nonces.dtype != np.uint8 or sealed.nonces.shape[0] != n):
            raise ShuffleBitsError(f"nonces must be uint8 with {n} rows, got {sealed.nonces.dtype} {sealed.nonces.shape}")
        try:
            words = sealed.words()
        except ValueError as error:
            raise ShuffleBitsError(f"ciphertext does not match its shape {sealed.shape}: {error}") from error
        return from_words(self._decrypt_words(words, sealed), sealed.dtype)

    @abstractmethod
    def _encrypt_words(self, words: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Ciphertext words (or AES-GCM bytes) and nonces for native unsigned ``words`` of ``dtype``."""

    @abstractmethod
    def _decrypt_words(self, words: np.ndarray, sealed: Sealed) -> np.ndarray:
        """Plaintext words from ciphertext ``words`` (``sealed`` has nonces, raw data)."""
