"""The cipher catalogue: the one place that declares each cipher and what it can do.

Keys, files, the ``nn`` module, the HTTP wire format, the leakage matrix, CLI
choices and the report read these records; nothing else compares cipher names.
Adding a cipher = one class in its own module under ``shufflebits.ciphers`` plus
one ``CipherSpec`` entry here. This module imports nothing heavy (no numba,
torch or cryptography), so ``shufflebits --help`` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, fields

from ..errors import ShuffleBitsError


@dataclass(frozen=True)
class CipherSpec:
    """What a cipher is, declared once.

    ``target`` is ``"module:Class"``, resolved lazily. ``permutation`` says
    which keyed bit permutation the scheme applies (``"fixed"``: one for every
    element, ``"per-dimension"``: one per feature dimension, ``"per-element"``:
    fresh per value from a nonce; ``None``: not a permutation), so attacks know
    where key recovery applies. ``matchable``: similarities can be computed on
    ciphertexts without decrypting. Keys are ``key_bytes`` random bytes;
    ``seed_keys``: the cipher also accepts the paper's INSECURE seed keys
    (``decrepit.seed_key``). ``homomorphic``: not a ``Cipher`` over a ``Key``
    encrypting rows to ``Sealed``, but a key holder's own key pair and a packed
    encrypted gallery (``ciphers.ckks``): the matcher computes encrypted scores
    that only the key holder decrypts, so there is no ``match_view``.
    ``requires``: the module of an optional extra the scheme needs (``installed``).
    """

    name: str
    family: str
    mode: str
    target: str
    description: str
    format_preserving: bool
    authenticated: bool
    exact: bool = True
    invertible: bool = True
    matchable: bool = False
    match_metric: str | None = None
    nonce_bytes: int = 0
    tag_bytes: int = 0
    permutation: str | None = None
    deployable: bool = True
    order: int = 100
    key_bytes: int = 32
    seed_keys: bool = False
    homomorphic: bool = False
    requires: str | None = None

    def resolve(self) -> type:
        """The cipher class (imports its module on first use)."""
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


SPECS: tuple[CipherSpec, ...] = (
    CipherSpec(
        name="shufflebits",
        family="shufflebits",
        mode="fixed",
        target="shufflebits.ciphers.shufflebits:ShuffleBits",
        description="ShuffleBits, one bit permutation for every element (the paper)",
        format_preserving=True,
        authenticated=False,
        permutation="fixed",
        order=10,
        seed_keys=True,
    ),
    CipherSpec(
        name="shufflebits-dim",
        family="shufflebits",
        mode="per-dimension",
        target="shufflebits.ciphers.shufflebits:ShuffleBits",
        description="ShuffleBits, one bit permutation per feature dimension",
        format_preserving=True,
        authenticated=False,
        permutation="per-dimension",
        order=20,
    ),
    CipherSpec(
        name="shufflebits-otp",
        family="shufflebits",
        mode="one-time",
        target="shufflebits.ciphers.shufflebits:ShuffleBits",
        description=(
            "ShuffleBits, a fresh Beneš-network bit permutation per value (switch bits from AES-256-CTR "
            "on key + per-vector nonce; not uniform over all permutations)"
        ),
        format_preserving=True,
        authenticated=False,
        nonce_bytes=16,
        permutation="per-element",
        order=30,
    ),
    CipherSpec(
        name="chacha20",
        family="chacha",
        mode="pad",
        target="shufflebits.ciphers.chacha:ChaChaPad",
        description="ChaChaPad, XOR with a ChaCha20 keystream per vector (format-preserving)",
        format_preserving=True,
        authenticated=False,
        nonce_bytes=16,
        order=40,
    ),
    CipherSpec(
        name="aes-gcm",
        family="aes-gcm",
        mode="aead",
        target="shufflebits.ciphers.aesgcm:AesGcm",
        description="AES-256-GCM per vector, the authenticated baseline",
        format_preserving=False,
        authenticated=True,
        nonce_bytes=12,
        tag_bytes=16,
        order=50,
    ),
    CipherSpec(
        name="dcpe",
        family="dcpe",
        mode="scale-perturb",
        target="shufflebits.ciphers.dcpe:Dcpe",
        description="DCPE scale-and-perturb (Fuchsbauer et al., SCN 2022): s*m plus noise in a ball, per-vector nonce",
        format_preserving=True,
        authenticated=False,
        exact=False,
        matchable=True,
        match_metric="euclidean",
        nonce_bytes=16,
        order=60,
    ),
    CipherSpec(
        name="dcpe-shuffle",
        family="dcpe",
        mode="scale-perturb-shuffle",
        target="shufflebits.ciphers.dcpe:Dcpe",
        description="DCPE scale-and-perturb plus a key-derived dimension shuffle (as IronCore Cloaked AI)",
        format_preserving=True,
        authenticated=False,
        exact=False,
        matchable=True,
        match_metric="euclidean",
        nonce_bytes=16,
        order=61,
    ),
    CipherSpec(
        name="rotation",
        family="rotation",
        mode="orthogonal",
        target="shufflebits.ciphers.rotation:Rotation",
        description="a key-derived random orthogonal matrix (distances kept exactly)",
        format_preserving=True,
        authenticated=False,
        exact=False,
        matchable=True,
        match_metric="euclidean",
        order=70,
    ),
    CipherSpec(
        name="biohash",
        family="biohash",
        mode="sign-projection",
        target="shufflebits.ciphers.biohash:BioHash",
        description="BioHashing (Teoh et al., 2004): keyed orthonormal projection to b bits (default d), "
        "Hamming matching",
        format_preserving=False,
        authenticated=False,
        exact=False,
        invertible=False,
        matchable=True,
        match_metric="hamming",
        order=80,
    ),
    CipherSpec(
        name="ckks",
        family="ckks",
        mode="column-packed",
        target="shufflebits.ciphers.ckks:Ckks",
        description="CKKS homomorphic encryption of the gallery (TenSEAL): the matcher scores ciphertexts, "
        "only the key holder decrypts the scores",
        format_preserving=False,
        authenticated=False,
        exact=False,
        matchable=True,
        match_metric="euclidean",
        order=90,
        homomorphic=True,
        requires="tenseal",
    ),
)

_BY_NAME = {spec.name: spec for spec in SPECS}
if len(_BY_NAME) != len(SPECS):
    raise RuntimeError("a cipher name is declared twice in the catalogue")
_FIELDS = {f.name for f in fields(CipherSpec)}
if any(s.matchable != (s.match_metric is not None) for s in SPECS):
    raise RuntimeError("a matchable cipher needs a match_metric, and only a matchable one has one")
if any(s.homomorphic and (s.format_preserving or s.exact or not s.matchable) for s in SPECS):
    raise RuntimeError("a homomorphic scheme is matched by its encrypted scores: matchable, approximate, not rows")


def spec(name: str) -> CipherSpec:
    """The record of cipher ``name``; an unknown name lists what exists."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ShuffleBitsError(f"unknown cipher {name!r}; expected one of {', '.join(cipher_names())}") from None


def installed(name: str) -> bool:
    """Whether cipher ``name`` can run here (its optional extra, if any, is installed)."""
    module = spec(name).requires
    return module is None or importlib.util.find_spec(module) is not None


def cipher_names(**where) -> tuple[str, ...]:
    """Cipher names in report order, filtered by field values (e.g. ``permutation="fixed"``)."""
    unknown = sorted(set(where) - _FIELDS)
    if unknown:
        raise ValueError(f"CipherSpec has no field(s) {', '.join(unknown)}")
    chosen = [s for s in SPECS if all(getattr(s, k) == v for k, v in where.items())]
    return tuple(s.name for s in sorted(chosen, key=lambda s: (s.order, s.name)))
