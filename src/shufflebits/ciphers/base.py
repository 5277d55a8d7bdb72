"""``Sealed`` ciphertext and the shared encrypt/decrypt plumbing of every cipher."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import IntegrityError, InvalidInputError, ShuffleBitsError, WrongKeyError
from .catalogue import ParamValues, check_params, cipher_names, format_params, spec
from .keys import Key
from .sealing import BATCH_BYTES, MAX_CONTEXT_BYTES, TAG_BYTES, Seal, check_seals, compute_tag, mac_key, verify
from .words import WORD_DTYPES, contiguous, from_words, to_words, unsigned


@dataclass(frozen=True, eq=False)
class Sealed:
    """Encrypted features plus what decryption needs.

    ``data`` has the plaintext's shape and dtype for format-preserving ciphers
    (bfloat16 ciphertext is kept as its uint16 words: numpy has no bfloat16),
    and is uint8 ``(n, nbytes + tag_bytes)`` for the others (AES-GCM). ``nonces``
    is uint8 ``(n, nonce_bytes)``, or None for ciphers without nonces. ``seals``
    (``sealing.Seal``, one per encrypted batch) bind the rows to their batch and
    context: HMAC tags for format-preserving ciphers encrypted with
    ``authenticate=True``, the AES-GCM associated data otherwise. ``params``: the
    scheme parameters the ciphertext was made under (the key's, ``Key.params``),
    so that ciphertexts of other parameters are refused by name before any work
    (the fingerprint covers them too). Build one with ``from_words``, which
    checks all of this against the catalogue.
    """

    data: np.ndarray
    nonces: np.ndarray | None
    cipher: str
    key_fingerprint: str
    dtype: str
    shape: tuple[int, ...]
    seals: tuple[Seal, ...] = ()
    params: ParamValues = ()

    @property
    def authenticated(self) -> bool:
        """Whether ``decrypt`` detects tampering: AEAD ciphertext, or tags on every row."""
        return spec(self.cipher).authenticated or bool(self.seals)

    @classmethod
    def from_words(
        cls,
        words: np.ndarray,
        *,
        cipher: str,
        key_fingerprint: str,
        dtype: str,
        nonces: np.ndarray | None = None,
        seals: tuple[Seal, ...] = (),
        params: Mapping | ParamValues = (),
    ) -> Sealed:
        """The one way to build a ``Sealed``: from ciphertext ``words`` as ``payload()`` gives them.

        ``words`` are unsigned integers: the plaintext-shaped words for a
        format-preserving cipher, uint8 rows of ciphertext bytes then tag for the
        others. ``params`` (a mapping or pairs; missing ones are the defaults) are
        checked by ``catalogue.check_params``. A mismatch with ``cipher``'s catalogue
        entry is an ``InvalidInputError``.
        """
        record = spec(cipher)
        params = check_params(cipher, params)
        if dtype not in WORD_DTYPES:
            raise InvalidInputError(f"unknown ciphertext dtype {dtype!r}; expected one of {', '.join(WORD_DTYPES)}")
        word = np.dtype(WORD_DTYPES[dtype])
        words = np.asarray(words)
        if record.format_preserving:
            if words.dtype != word:
                raise InvalidInputError(
                    f"{cipher} ciphertext of {dtype} features must be {word} words, got {words.dtype}"
                )
            data = words if dtype == "bfloat16" else contiguous(words).view(np.dtype(dtype))
            shape = tuple(words.shape)
        else:
            body = words.shape[1] - record.tag_bytes if words.ndim == 2 else -1
            if words.dtype != np.uint8 or body < 0 or body % word.itemsize:
                raise InvalidInputError(
                    f"{cipher} ciphertext must be uint8 rows of {dtype} words plus a {record.tag_bytes}-byte tag, "
                    f"got {words.dtype} {words.shape}"
                )
            data, shape = words, (words.shape[0], body // word.itemsize)
        if record.nonce_bytes == 0 and nonces is not None:
            raise InvalidInputError(f"{cipher} uses no nonces, got {nonces.shape}")
        if record.nonce_bytes and (
            nonces is None or nonces.dtype != np.uint8 or nonces.shape != (shape[0], record.nonce_bytes)
        ):
            got = None if nonces is None else f"{nonces.dtype} {nonces.shape}"
            raise InvalidInputError(
                f"{cipher} ciphertext needs uint8 ({shape[0]}, {record.nonce_bytes}) nonces, got {got}"
            )
        seals = tuple(seals)
        if seals and not shape:
            raise InvalidInputError("a 0-d ciphertext has no rows to seal")
        check_seals(seals, shape[0] if shape else 0, 0 if record.authenticated else TAG_BYTES)
        return cls(data, nonces, cipher, key_fingerprint, dtype, shape, seals, params)

    def payload(self) -> np.ndarray:
        """``data`` as unsigned integers (tag included): what files and ``from_words`` take."""
        return unsigned(self.data)

    def words(self) -> np.ndarray:
        """The ciphertext as unsigned words ``(n, d)`` (AES-GCM: ciphertext bytes without tag)."""
        word = WORD_DTYPES[self.dtype]
        record = spec(self.cipher)
        if not record.format_preserving:
            body = np.ascontiguousarray(self.data[:, : self.data.shape[1] - record.tag_bytes])
            return body.view(word).reshape(self.shape)
        return contiguous(self.data).view(word).reshape(self.shape)


class Cipher(ABC):
    """Base class: subclasses implement ``_encrypt_words`` / ``_decrypt_words`` on unsigned words.

    Which keys a class takes is the catalogue's: the names whose ``target`` is this class.
    """

    needs_rows = True  # (n, d) input; fixed ShuffleBits accepts any shape

    def __init__(self, key: Key, *, nonce_source: Callable[[int], bytes] | None = None) -> None:
        if not isinstance(key, Key):
            raise TypeError(f"key must be a shufflebits Key, got {type(key).__name__}")
        if not isinstance(self, spec(key.cipher).resolve()):
            accepted = [name for name in cipher_names() if isinstance(self, spec(name).resolve())]
            raise ShuffleBitsError(
                f"a {key.cipher!r} key cannot be used with {type(self).__name__} (expects {', '.join(accepted)})"
            )
        self.key = key
        # Where per-vector nonces come from: the OS CSPRNG unless an experiment
        # asks for repeatable runs (see ``hazmat.experiment_cipher``).
        self.nonce_source = nonce_source or os.urandom

    @property
    def name(self) -> str:
        return self.key.cipher

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cipher={self.name!r}, fingerprint={self.key.fingerprint!r})"

    def encrypt(self, features, *, authenticate: bool = False, context: bytes = b"") -> Sealed:
        """Encrypt float features (numpy array or torch tensor); returns ``Sealed``.

        ``authenticate`` adds a seal tag to format-preserving ciphertext (raw,
        untagged ciphertext is the paper's primitive and stays the default);
        ``context`` (bytes the caller binds, e.g. an answer id) goes into the tag,
        or into AES-GCM's associated data, which always binds batch and row index.
        """
        words, dtype = to_words(features)
        if self.needs_rows and words.ndim != 2:
            raise ShuffleBitsError(f"{self.name} encrypts (n, d) feature arrays, got shape {words.shape}")
        if not isinstance(context, bytes) or len(context) > MAX_CONTEXT_BYTES:
            raise InvalidInputError(f"context must be at most {MAX_CONTEXT_BYTES} bytes")
        record = spec(self.name)
        if record.authenticated:  # the AEAD binds batch id, row index, row count and context itself
            seal = Seal(self.nonce_source(BATCH_BYTES), words.shape[0], context, b"")
            data, nonces = self._encrypt_words(words, dtype, seal=seal)
            seals = (seal,)
        else:
            data, nonces = self._encrypt_words(words, dtype)
            seals = ()
            if authenticate:
                if words.ndim == 0:
                    raise ShuffleBitsError("a 0-d array has no rows to authenticate; encrypt it as shape (1,)")
                batch = self.nonce_source(BATCH_BYTES)
                tag = compute_tag(
                    mac_key(self.key),
                    cipher=self.name,
                    fingerprint=self.key.fingerprint,
                    dtype=dtype,
                    words=data,
                    nonces=nonces,
                    batch=batch,
                    context=context,
                )
                seals = (Seal(batch, words.shape[0], context, tag),)
        return Sealed.from_words(
            data,
            cipher=self.name,
            key_fingerprint=self.key.fingerprint,
            dtype=dtype,
            nonces=nonces,
            seals=seals,
            params=self.key.params,
        )

    def decrypt(self, sealed: Sealed, *, require_authenticated: bool = False):
        """Bit-exact plaintext (numpy; a torch tensor for bfloat16).

        Seal tags are verified when present (``IntegrityError``); with
        ``require_authenticated`` untagged format-preserving ciphertext is refused too.
        """
        if not isinstance(sealed, Sealed):
            raise TypeError(f"decrypt expects a Sealed, got {type(sealed).__name__}")
        if sealed.cipher != self.name:
            raise ShuffleBitsError(f"ciphertext was made with {sealed.cipher!r}, this cipher is {self.name!r}")
        if sealed.params != self.key.params:
            raise WrongKeyError(
                f"ciphertext was made with {self.name} {format_params(sealed.params)}, this key has "
                f"{format_params(self.key.params)} (parameters are part of the key)"
            )
        if sealed.key_fingerprint != self.key.fingerprint:
            raise WrongKeyError(
                f"wrong key: ciphertext was sealed with key {sealed.key_fingerprint[:16]}…, "
                f"this key is {self.key.fingerprint[:16]}…"
            )
        if sealed.dtype not in WORD_DTYPES:
            raise ShuffleBitsError(f"unknown ciphertext dtype {sealed.dtype!r}")
        n = sealed.shape[0] if sealed.shape else 0
        if sealed.nonces is not None and (sealed.nonces.dtype != np.uint8 or sealed.nonces.shape[0] != n):
            raise ShuffleBitsError(
                f"nonces must be uint8 with {n} rows, got {sealed.nonces.dtype} {sealed.nonces.shape}"
            )
        if require_authenticated and not sealed.authenticated:
            raise IntegrityError(
                f"this {self.name} ciphertext carries no authentication tag (authenticated=False); "
                "it cannot be checked for tampering"
            )
        try:
            words = sealed.words()
        except ValueError as error:
            raise ShuffleBitsError(f"ciphertext does not match its shape {sealed.shape}: {error}") from error
        if sealed.seals and not spec(self.name).authenticated:
            verify(self.key, sealed)
        return from_words(self._decrypt_words(words, sealed), sealed.dtype)

    @abstractmethod
    def _encrypt_words(self, words: np.ndarray, dtype: str, **binding) -> tuple[np.ndarray, np.ndarray | None]:
        """What ``Sealed.from_words`` takes (ciphertext words, or AES-GCM bytes + tags) and the nonces.

        Authenticated (AEAD) ciphers get ``seal=``: the ``Seal`` whose batch, row
        count and context their associated data must bind.
        """

    @abstractmethod
    def _decrypt_words(self, words: np.ndarray, sealed: Sealed) -> np.ndarray:
        """Plaintext words from ciphertext ``words`` (``sealed`` has nonces, raw data)."""
