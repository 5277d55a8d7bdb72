"""CKKS homomorphic encryption of a gallery (TenSEAL): the matcher scores ciphertexts, the key holder decrypts.

Why TenSEAL, not OpenFHE: TenSEAL (Microsoft SEAL underneath) is one pip wheel
with a numpy-friendly ``CKKSVector``, and the scheme below needs nothing beyond
plaintext-scalar multiplications and additions; OpenFHE's Python bindings are a
heavier install for no gain here.

Column packing. Ciphertext ``j`` of a group holds dimension ``j`` of up to
``N/2`` gallery templates in its slots, plus (euclidean) one ciphertext of their
squared norms. For a plaintext query ``q`` the score vector is
``sum_j w_j * ct_j`` with ``w = 2q`` and ``-1`` on the norm ciphertext, i.e.
``2 q.g - |g|^2 = |q|^2 - |q - g|^2``, so ranking by score is ranking by
euclidean distance. Only plaintext-scalar products and additions: no rotation,
no relinearisation, no rescaling. TenSEAL encodes a scalar at the ciphertext's
scale, so scores sit at scale ``2^(2 * SCALE_BITS)``, below the one 60-bit data
prime with room for ``|score| <= 2^(59 - 2 * SCALE_BITS)``; the key holder
divides the gallery by its largest norm and the matcher the query by its own, so
scores stay within 3. The second 60-bit prime is SEAL's special prime, never
part of a ciphertext (TenSEAL refuses a single-prime context).

Size: each ciphertext is 2 x N x 8 bytes, 32 bytes per slot: 16 KiB per 512-d
template when every slot is used (TenSEAL's one-template-per-vector layout:
40.5 KiB). SEAL's seeded symmetric ciphertexts (second polynomial sent as a seed)
would halve it, but TenSEAL's Python API cannot write them (the ``Serializable``
overload of ``Encryptor.encrypt_symmetric`` is unbound), and a symmetric context
without its secret key cannot even multiply by a scalar in TenSEAL, so the key is
a public-key pair. ``CkksGallery.bytes_per_template`` measures it.

Encrypted query (``encrypt_query``, optional): each weight replicated over all
slots of its own ciphertext, multiplied ciphertext by ciphertext; the size-3
products are summed and decrypted without relinearisation, at the same scale.
It costs ``d + 1`` full ciphertexts per query (``N * 16`` bytes each).

Raw scores reveal the query (``attacks.scorereveal``): the key holder releases
only top-k gallery rows by default; ``reveal_scores=True`` is the attack's mode.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidInputError, ShuffleBitsError, WrongKeyError

POLY_DEGREE = 8192
PRIMES = (60, 60)
SCALE_BITS = 26
METRICS = ("euclidean", "cosine")
_FINGERPRINT_LABEL = b"shufflebits/ckks/fingerprint\0"


def tenseal():
    """The ``tenseal`` module, or a one-line error saying how to install it."""
    try:
        import tenseal as ts
    except ImportError:
        raise ShuffleBitsError("CKKS needs TenSEAL: pip install 'shufflebits[he]'") from None
    return ts


@dataclass(frozen=True, eq=False)
class CkksKey:
    """The key holder's secret: a TenSEAL context with its secret key, and a random id.

    ``secret_id`` is never shown: the fingerprint is its hash, the file MAC key
    is derived from it.
    """

    context: bytes = field(repr=False)
    secret_id: bytes = field(repr=False)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(_FINGERPRINT_LABEL + self.secret_id).hexdigest()

    def mac_key(self) -> bytes:
        return hmac.new(self.secret_id, b"shufflebits/ckks/file-mac", hashlib.sha256).digest()

    def secret_context(self):
        return tenseal().context_from(self.context)

    def public_context(self) -> bytes:
        """The evaluation context: parameters and public key, no secret key (what the matcher gets)."""
        return self.secret_context().serialize(
            save_public_key=True, save_secret_key=False, save_galois_keys=False, save_relin_keys=True
        )


def generate_key(poly_degree: int = POLY_DEGREE) -> CkksKey:
    """A fresh CKKS key pair.

    TenSEAL evaluates even a plaintext-scalar product through an encryptor, so
    the matcher's context carries the public key (a symmetric context without
    its secret key cannot score); the ciphertexts are as large either way.
    """
    ts = tenseal()
    context = ts.context(
        ts.SCHEME_TYPE.CKKS,
        poly_modulus_degree=poly_degree,
        coeff_mod_bit_sizes=list(PRIMES),
        encryption_type=ts.ENCRYPTION_TYPE.ASYMMETRIC,
    )
    serialized = context.serialize(
        save_public_key=True, save_secret_key=True, save_galois_keys=False, save_relin_keys=True
    )
    return CkksKey(serialized, os.urandom(32))


def _configure(context):
    context.auto_rescale = False
    context.auto_relin = False
    context.auto_mod_switch = False
    return context


def _load_context(serialized: bytes):
    return _configure(tenseal().context_from(serialized))


def _features(name: str, values, dim: int | None = None) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise InvalidInputError(f"{name} must be a finite (n, d) array, got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise InvalidInputError(f"{name} are {x.shape[1]}-d but the CKKS gallery is {dim}-d")
    return x


@dataclass(frozen=True, eq=False)
class CkksGallery:
    """A column-packed encrypted gallery: ``groups[k][j]`` is the serialized ciphertext of dimension j
    of templates ``k * slots ...``; the last ciphertext of a euclidean group holds the squared norms.

    ``norm_scale`` divides every template (the largest norm; 1 for cosine, whose
    rows are unit vectors): public, it keeps scores within the modulus.
    """

    context: bytes
    groups: tuple[tuple[bytes, ...], ...]
    count: int
    dim: int
    metric: str
    norm_scale: float
    slots: int
    key_fingerprint: str

    @property
    def nbytes(self) -> int:
        return sum(len(ct) for group in self.groups for ct in group)

    @property
    def bytes_per_template(self) -> float:
        return self.nbytes / self.count


def encrypt_gallery(key: CkksKey, features, metric: str = "euclidean") -> CkksGallery:
    """Encrypt ``(n, d)`` templates, ``N/2`` per ciphertext, one ciphertext per dimension (plus norms)."""
    if metric not in METRICS:
        raise InvalidInputError(f"unknown CKKS metric {metric!r}; expected one of {', '.join(METRICS)}")
    ts = tenseal()
    x = _features("gallery features", features)
    if len(x) == 0:
        raise InvalidInputError("a CKKS gallery needs at least one template")
    norms = np.linalg.norm(x, axis=1)
    if metric == "cosine":
        x, scale = x / np.maximum(norms, 1e-12)[:, None], 1.0
    else:
        scale = float(max(norms.max(), 1e-12))
        x = x / scale
    context = _configure(key.secret_context())
    slots = context.seal_context().data.first_context_data().parms().poly_modulus_degree() // 2
    columns = np.concatenate([x, (x**2).sum(1, keepdims=True)], axis=1) if metric == "euclidean" else x
    columns = np.pad(columns, ((0, -len(x) % slots), (0, 0)))  # every ciphertext full: an encrypted query fits all
    groups = tuple(
        tuple(
            ts.ckks_vector(context, column.tolist(), 2.0**SCALE_BITS).serialize()
            for column in columns[start : start + slots].T
        )
        for start in range(0, len(columns), slots)
    )
    return CkksGallery(key.public_context(), groups, len(x), x.shape[1], metric, scale, slots, key.fingerprint)


@dataclass(frozen=True, eq=False)
class EncryptedQuery:
    """Query weights encrypted by the key holder, one replicated ciphertext each (``encrypt_query``)."""

    weights: tuple[tuple[bytes, ...], ...]  # per query: one ciphertext per gallery column
    dim: int
    metric: str
    key_fingerprint: str


def _weights(query: np.ndarray, metric: str) -> np.ndarray:
    """Per query row: the scalar of every gallery column, scaled so that scores stay within 3."""
    norms = np.maximum(np.linalg.norm(query, axis=1, keepdims=True), 1e-12)
    if metric == "cosine":
        return query / norms
    # score = a * (2 q.g - |g|^2) on the gallery's normalised rows, with a = 1 / max(1, |q|)
    a = 1.0 / np.maximum(norms, 1.0)
    return np.concatenate([2.0 * query * a, -a], axis=1)


def encrypt_query(key: CkksKey, gallery: CkksGallery, query) -> EncryptedQuery:
    """Encrypt query features for ``gallery`` (the key holder does this; the matcher never sees them)."""
    ts = tenseal()
    if key.fingerprint != gallery.key_fingerprint:
        raise WrongKeyError("this CKKS key did not encrypt the gallery: its query could not be compared")
    q = _features("query features", query, gallery.dim)
    scale = 1.0 if gallery.metric == "cosine" else gallery.norm_scale
    context = _configure(key.secret_context())
    weights = _weights(q / scale, gallery.metric)
    return EncryptedQuery(
        tuple(
            tuple(ts.ckks_vector(context, [float(w)] * gallery.slots, 2.0**SCALE_BITS).serialize() for w in row)
            for row in weights
        ),
        gallery.dim,
        gallery.metric,
        key.fingerprint,
    )


@dataclass(frozen=True, eq=False)
class EncryptedScores:
    """Score ciphertexts per query and gallery group: only the key holder can read them."""

    groups: tuple[tuple[bytes, ...], ...]  # per query: one ciphertext per gallery group
    count: int
    metric: str
    key_fingerprint: str


def score(gallery: CkksGallery, query) -> EncryptedScores:
    """The matcher's step: encrypted similarities of every query (features or ``EncryptedQuery``) to the gallery.

    Uses the gallery's public context only: nothing here can decrypt.
    """
    ts = tenseal()
    context = _load_context(gallery.context)
    groups = [[ts.ckks_vector_from(context, ct) for ct in group] for group in gallery.groups]
    if isinstance(query, EncryptedQuery):
        if query.key_fingerprint != gallery.key_fingerprint:
            raise InvalidInputError(
                f"query and gallery were encrypted under different CKKS keys ({query.key_fingerprint[:16]}… vs "
                f"{gallery.key_fingerprint[:16]}…): their ciphertexts cannot be compared"
            )
        if query.dim != gallery.dim or query.metric != gallery.metric:
            raise InvalidInputError(
                f"the encrypted query is {query.metric} {query.dim}-d, the gallery {gallery.metric} {gallery.dim}-d"
            )
        rows = [[ts.ckks_vector_from(context, ct) for ct in row] for row in query.weights]
    else:
        q = _features("query features", query, gallery.dim)
        scale = 1.0 if gallery.metric == "cosine" else gallery.norm_scale
        if (np.linalg.norm(q, axis=1) == 0).any():
            raise InvalidInputError("a query of zeros has no similarity to rank by")
        # A weight that encodes to 0 at the scale drops out (TenSEAL would return it at another scale).
        rows = [
            [float(w) if round(w * 2.0**SCALE_BITS) else None for w in row]
            for row in _weights(q / scale, gallery.metric)
        ]
    out = []
    for row in rows:
        per_group = []
        for columns in groups:
            terms = [column * weight for column, weight in zip(columns, row, strict=True) if weight is not None]
            total = terms[0]
            for term in terms[1:]:
                total += term
            per_group.append(total.serialize())
        out.append(tuple(per_group))
    return EncryptedScores(tuple(out), gallery.count, gallery.metric, gallery.key_fingerprint)


@dataclass(frozen=True)
class Release:
    """What the key holder gives back: gallery rows per query (best first), and scores only if asked."""

    ids: np.ndarray  # (n_query, k) int64; -1 pads rows cut by a threshold
    scores: np.ndarray | None = None  # (n_query, n_gallery), only with reveal_scores=True


class KeyHolder:
    """Decrypts score ciphertexts and releases only what the deployment allows (top-k ids by default)."""

    def __init__(self, key: CkksKey) -> None:
        if not isinstance(key, CkksKey):
            raise TypeError(f"key must be a CkksKey, got {type(key).__name__}")
        self.key = key
        self._context = _load_context(key.context)
        if not self._context.has_secret_key():
            raise ShuffleBitsError("this CKKS context holds no secret key: only the key holder's key file decrypts")

    def decrypt(self, scores: EncryptedScores) -> np.ndarray:
        """``(n_query, n_gallery)`` similarities (higher is closer): ``2 q.g - |g|^2`` up to a positive scale."""
        if scores.key_fingerprint != self.key.fingerprint:
            raise WrongKeyError(
                f"these scores were computed under CKKS key {scores.key_fingerprint[:16]}…, not this key "
                f"({self.key.fingerprint[:16]}…): wrong key"
            )
        ts = tenseal()
        rows = [
            np.concatenate([np.asarray(ts.ckks_vector_from(self._context, ct).decrypt()) for ct in per_query])
            for per_query in scores.groups
        ]
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)[:, : scores.count]

    def release(
        self, scores: EncryptedScores, top_k: int = 1, threshold: float | None = None, reveal_scores: bool = False
    ) -> Release:
        """The ``top_k`` best gallery rows per query (those above ``threshold``, if given; -1 pads)."""
        if not 1 <= top_k:
            raise InvalidInputError(f"top_k must be at least 1, got {top_k}")
        plain = self.decrypt(scores)
        order = np.argsort(-plain, axis=1, kind="stable")[:, :top_k]
        if threshold is not None:
            order = np.where(np.take_along_axis(plain, order, axis=1) >= threshold, order, -1)
        return Release(order.astype(np.int64), plain if reveal_scores else None)


class Ckks:
    """The catalogue's ``ckks``: a key holder's key with the gallery-side operations bound to it.

    ``create_cipher("ckks")`` builds one (a fresh key pair when ``key`` is None);
    a ``CkksKey`` is not a ``Key``, and nothing encrypts single rows to ``Sealed``.
    """

    name = "ckks"

    def __init__(self, key: CkksKey | None = None) -> None:
        if key is not None and not isinstance(key, CkksKey):
            raise ShuffleBitsError(f"cipher 'ckks' needs a CkksKey (shufflebits ckks-keygen), got {type(key).__name__}")
        self.key = generate_key() if key is None else key

    def encrypt_gallery(self, features, metric: str = "euclidean") -> CkksGallery:
        return encrypt_gallery(self.key, features, metric)

    def key_holder(self) -> KeyHolder:
        return KeyHolder(self.key)
