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
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

from ..errors import InvalidInputError, ShuffleBitsError


@dataclass(frozen=True)
class Param:
    """A setting of a scheme that is not key material but part of its secret setup.

    The key carries it (``Key.params``: its fingerprint covers every value other
    than ``default``), ``keygen`` takes it as ``--<name>``, encrypted files and
    ciphertexts record it. ``kind``: ``"positive"`` (a finite number > 0),
    ``"non-negative"`` (a finite number >= 0) or ``"count"`` (an integer >= 1;
    ``None`` stands for the feature dimension d, checked against d when encrypting).
    """

    name: str
    kind: str
    default: float | int | None
    help: str


ParamValues = tuple[tuple[str, float | int | None], ...]
_DCPE_PARAMS = (
    Param("beta", "positive", 1.0, "DCPE approximation (default 1): comparisons apart by more than beta survive"),
    Param("scale", "positive", 1.0, "DCPE scale s (default 1): c = s * m + noise in a ball of radius s * beta / 4"),
)


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
    ``params``: the scheme's settings that keys carry (``Param``, ``check_params``).
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
    params: tuple[Param, ...] = ()

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
        params=_DCPE_PARAMS,
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
        params=_DCPE_PARAMS,
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
        params=(Param("noise", "non-negative", 0.0, "rotation noise sigma (default 0), fresh per vector"),),
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
        params=(Param("bits", "count", None, "BioHash code length b in 1..d (default d)"),),
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
if any(p.kind not in ("positive", "non-negative", "count") for s in SPECS for p in s.params):
    raise RuntimeError("a parameter's kind is positive, non-negative or count")
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


def _value(cipher: str, param: Param, value) -> float | int | None:
    """``value`` of ``param`` normalised (a float; an int for a count); out of range: an ``InvalidInputError``."""
    if param.kind == "count":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise InvalidInputError(f"{cipher} {param.name} must be an integer in 1..d, got {value!r}")
        return int(value)
    if not isinstance(value, bool) and isinstance(value, numbers.Real):
        try:
            number = float(value)
        except OverflowError:  # an integer past float range
            number = math.inf
        if math.isfinite(number) and (number > 0 or (param.kind == "non-negative" and number == 0)):
            return number
    rule = "a positive number" if param.kind == "positive" else "a number >= 0"
    raise InvalidInputError(f"{cipher} {param.name} must be {rule}, got {value!r}")


def check_params(name: str, given: Mapping | Iterable = ()) -> ParamValues:
    """Cipher ``name``'s parameters from ``given`` (a mapping or ``(name, value)`` pairs), checked:
    ``(name, value)`` pairs in declaration order, defaults filled in. Unknown names are refused."""
    record = spec(name)
    try:
        values = dict(given)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} parameters must map names to values, got {given!r}") from None
    declared = [param.name for param in record.params]
    unknown = sorted(str(key) for key in values if key not in declared)
    if unknown:
        takes = f"its parameters are {', '.join(declared)}" if declared else "it has none"
        raise InvalidInputError(f"{name} has no parameter {', '.join(unknown)} ({takes})")
    return tuple((param.name, _value(name, param, values.get(param.name, param.default))) for param in record.params)


def changed_params(name: str, values: ParamValues) -> dict:
    """The values of ``check_params`` output that differ from their defaults (what a key's fingerprint covers)."""
    defaults = {param.name: param.default for param in spec(name).params}
    return {key: value for key, value in values if value != defaults[key]}


def format_params(values: Iterable[tuple[str, object]]) -> str:
    """``beta=1.5, scale=1.0`` for messages; a count of ``None`` is shown as ``d``."""
    return ", ".join(f"{key}={'d' if value is None else repr(value)}" for key, value in values)
