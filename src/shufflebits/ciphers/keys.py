"""Key objects, key generation and key files.

A key names its cipher (the mode is part of the cipher name), so a key can never
be used with a construction it was not made for. Sub-keys for different purposes
(permutations, one-time streams, file MACs, fingerprints) are derived with
HMAC-SHA256 under distinct labels, so one purpose never reveals another;
stream-cipher keys and seal tags use HKDF-SHA256 subkeys (``Key.subkey``).
A key also carries its scheme's parameters (the catalogue's ``params``: DCPE's
beta and scale, rotation noise, BioHash bits): they are part of the secret
setup, so a ciphertext made under other values is another key's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import InvalidInputError, ShuffleBitsError
from .catalogue import ParamValues, changed_params, check_params, cipher_names, spec

KEY_FORMAT = "shufflebits-key"
KEY_VERSION = 1
_LABEL = b"shufflebits/v1/"


@dataclass(frozen=True)
class Key:
    """A secret key bound to one cipher.

    ``material`` is ``key_bytes`` random bytes (the catalogue's, 32 for every
    cipher today), except for paper-compatible seed keys (``seed`` set, see
    ``decrepit.seed_key``), whose material is just the seed: they have only the
    seed's entropy and exist to reproduce the authors' published permutation.
    ``params``: the scheme's parameters, given as a mapping or ``(name, value)``
    pairs and kept as ``catalogue.check_params`` returns them (every declared
    parameter, in declaration order, defaults filled in; empty for schemes without).
    """

    cipher: str
    material: bytes = field(repr=False)
    seed: int | None = None
    params: ParamValues = ()

    def __post_init__(self) -> None:
        record = spec(self.cipher)
        if record.homomorphic:
            raise ShuffleBitsError(
                f"{self.cipher} keys are TenSEAL key pairs, not key material (shufflebits ckks-keygen writes one)"
            )
        object.__setattr__(self, "params", check_params(self.cipher, self.params))
        if not isinstance(self.material, bytes):
            raise TypeError("key material must be bytes")
        if self.seed is None and len(self.material) != record.key_bytes:
            raise InvalidInputError(
                f"{self.cipher} key material must be {record.key_bytes} bytes, got {len(self.material)}"
            )
        if self.seed is not None and not record.seed_keys:
            raise InvalidInputError(
                f"only {', '.join(map(repr, cipher_names(seed_keys=True)))} has seed (paper-compatible) keys, "
                f"not {self.cipher!r}"
            )
        if self.seed is not None and self.material != int(self.seed).to_bytes(8, "little"):
            raise InvalidInputError("seed key material must be the seed (8 bytes, little-endian)")

    @property
    def mode(self) -> str:
        return spec(self.cipher).mode

    @property
    def insecure(self) -> bool:
        """True for seed keys: brute-forcing the seed recovers the key."""
        return self.seed is not None

    def derive(self, purpose: str) -> bytes:
        """A 32-byte sub-key for ``purpose`` (domain-separated HMAC-SHA256)."""
        return hmac.new(self.material, _LABEL + purpose.encode(), hashlib.sha256).digest()

    def subkey(self, label: str) -> bytes:
        """A 32-byte subkey for ``label``: HKDF-SHA256 (RFC 5869) of the material, bound to the cipher name.

        ChaCha20 and AES-GCM run under these, never under the master material, and
        seal tags use their own; other purposes keep their ``derive`` labels.
        """
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        info = hkdf_info(self.cipher, label)
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(self.material)

    @property
    def fingerprint(self) -> str:
        """Hex identifier of the key (a labelled hash; reveals nothing about random keys).

        Parameters that differ from their defaults are hashed in too (canonical
        JSON after the material): keys with default parameters keep the
        fingerprints they had before keys carried parameters, and ciphertext
        made under other parameters carries another fingerprint.
        """
        changed = changed_params(self.cipher, self.params)
        suffix = b"\0" + json.dumps(changed, sort_keys=True).encode() if changed else b""
        digest = hashlib.sha256(_LABEL + b"fingerprint\0" + self.cipher.encode() + b"\0" + self.material + suffix)
        return digest.hexdigest()[:32]


def hkdf_info(cipher: str, label: str) -> bytes:
    """HKDF's ``info`` for a subkey: version prefix, cipher name and label, NUL-separated."""
    return _LABEL + b"hkdf\0" + cipher.encode() + b"\0" + label.encode()


def generate_key(cipher: str = "shufflebits-otp", **params) -> Key:
    """A fresh random key for ``cipher`` (``key_bytes`` from the OS CSPRNG) with the scheme's ``params``."""
    return Key(cipher, secrets.token_bytes(spec(cipher).key_bytes), params=params)


def key_to_json(key: Key) -> str:
    record = {
        "format": KEY_FORMAT,
        "version": KEY_VERSION,
        "cipher": key.cipher,
        "mode": key.mode,
        "material": base64.b64encode(key.material).decode(),
        "seed": key.seed,
        "fingerprint": key.fingerprint,
    }
    if key.params:
        record["params"] = dict(key.params)
    return json.dumps(record, indent=2) + "\n"


def save_key(path: str | os.PathLike, key: Key) -> None:
    """Write ``key`` atomically, mode 0600; an existing file is never replaced."""
    atomic_write_text(path, key_to_json(key), overwrite=False, permissions=0o600)


def read_key_record(path: str | os.PathLike) -> dict:
    """The parsed JSON of a key file, validated (used by ``inspect`` too)."""
    path = Path(path)
    if not path.is_file():
        raise ShuffleBitsError(f"key file {path} does not exist")
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:  # RecursionError: nested too deep
        raise ShuffleBitsError(f"{path} is not a shufflebits key file ({str(error)[:80]})") from None
    if not isinstance(record, dict) or record.get("format") != KEY_FORMAT:
        raise ShuffleBitsError(f"{path} is not a shufflebits key file")
    if record.get("version") != KEY_VERSION:
        raise ShuffleBitsError(f"{path}: unsupported key file version {record.get('version')!r}")
    return record


def load_key(path: str | os.PathLike) -> Key:
    """Read a key file; a corrupted key (fingerprint mismatch) is an error.

    A file without ``params`` (written before keys carried them) holds the defaults:
    the only values ``keygen`` could make, and the ones its fingerprint was computed for.
    """
    record = read_key_record(path)
    seed = record.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise ShuffleBitsError(f"{path}: malformed key file (seed must be an integer in [0, 2**63), got {seed!r})")
    try:
        params = record.get("params", {})
        if not isinstance(params, dict):
            raise TypeError(f"params must be an object, got {params!r}")
        material = base64.b64decode(record["material"], validate=True)
        key = Key(record["cipher"], material, record.get("seed"), params=params)
    except (KeyError, TypeError, ValueError) as error:
        raise ShuffleBitsError(f"{path}: malformed key file ({error})") from error
    if record.get("fingerprint") != key.fingerprint:
        raise ShuffleBitsError(
            f"{path}: key fingerprint does not match its material and parameters (corrupted key file)"
        )
    return key
