"""CKKS homomorphic encryption of a gallery (SEAL through TenSEAL's ``sealapi``): the matcher scores
ciphertexts, the key holder decrypts.

Why TenSEAL, not OpenFHE: TenSEAL is one pip wheel carrying Microsoft SEAL and its
Python bindings (``tenseal.sealapi``), and the scheme below needs nothing beyond
plaintext-scalar products and additions; OpenFHE's Python bindings are a heavier
install for no gain here. SEAL's own API is used, not TenSEAL's ``CKKSVector``,
for two things ``CKKSVector`` cannot do: complex slots, and seeded randomness.

Complex column packing. CKKS slots are complex numbers. Ciphertext ``k`` of a
group holds, for up to ``N/2`` gallery templates, column ``k`` in the real part
and column ``k + h`` in the imaginary part of their slots (``h = ceil(c/2)`` of
the ``c`` columns: the ``d`` dimensions plus, euclidean, the squared norm). For a
plaintext query the matcher multiplies ciphertext ``k`` by the complex constant
``w_k - i w_(k+h)`` and adds: the real part of a slot is then ``sum_j w_j g_j``,
with ``w = 2q`` and ``-1`` on the norm column, i.e. ``2 q.g - |g|^2 = |q|^2 - |q -
g|^2``, so ranking by score is ranking by euclidean distance. No rotation, no
relinearisation, no rescaling. Scores sit at scale ``2^(2 * SCALE_BITS)``, below
the one 60-bit data prime with room for ``|score| <= 2^(59 - 2 * SCALE_BITS)``;
the key holder divides the gallery by its largest norm and the matcher the query
by its own, so scores stay within 3. The second 60-bit prime is SEAL's special
prime, never part of a ciphertext.

Size: each ciphertext is 2 x N x 8 bytes and holds two columns of N/2 templates:
16 bytes per template and column, 8.0 KiB per 512-d template when every slot is
used (real packing, one column per ciphertext: 16 KiB; TenSEAL's
one-template-per-vector layout: 40.5 KiB). ``CkksGallery.bytes_per_template``
measures it. The matcher needs no key at all, only the parameters: it never
encrypts, and a plaintext-scalar product or a ciphertext sum needs none.

Randomness. ``generate_key()`` draws keys and every encryption's noise from SEAL's
default generator (seeded from the operating system per use). ``generate_key(seed=...)``
is the INSECURE reproducible mode for studies: the key comes from the seed, and
each ciphertext's noise from HMAC(seed, its plaintext), so equal plaintexts give
equal ciphertexts (nothing else repeats); such a key cannot be saved to a file.

Encrypted query (``encrypt_query``, optional): each complex weight replicated over
all slots of its own ciphertext, multiplied ciphertext by ciphertext; the size-3
products are summed and decrypted without relinearisation, at the same scale.
It costs ``ceil((d + 1) / 2)`` full ciphertexts per query (``N * 16`` bytes each).

Raw scores reveal the query (``attacks.scorereveal``): the key holder releases
only the top ``TOP_K`` gallery rows by default, optionally only those whose score
passes a threshold; ``reveal_scores=True`` is the attack's mode.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, ShuffleBitsError, WrongKeyError

POLY_DEGREE = 8192
PRIMES = (60, 60)
SCALE_BITS = 26
METRICS = ("euclidean", "cosine")
TOP_K = 1  # gallery rows a key holder releases per query unless told otherwise
_FINGERPRINT_LABEL = b"shufflebits/ckks/fingerprint\0"
_SEEDED_LABEL = b"shufflebits/ckks/insecure-seeded/"


def tenseal():
    """The ``tenseal`` module, or a one-line error saying how to install it."""
    try:
        import tenseal as ts
    except ImportError:
        raise ShuffleBitsError("CKKS needs TenSEAL: pip install 'shufflebits[he]'") from None
    return ts


def sealapi():
    """SEAL's Python bindings as TenSEAL ships them (``tenseal.sealapi``)."""
    tenseal()
    import tenseal.sealapi as seal

    return seal


def _seed_words(material: bytes) -> list[int]:
    """512 bits of ``material`` as the eight 64-bit words a SEAL PRNG factory takes."""
    return [int.from_bytes(material[8 * k : 8 * k + 8], "little") for k in range(8)]


def seal_context(poly_degree: int = POLY_DEGREE, seed: bytes | None = None):
    """A SEAL CKKS context of this module's parameters; ``seed`` (64 bytes) fixes all of its randomness."""
    seal = sealapi()
    parameters = seal.EncryptionParameters(seal.SCHEME_TYPE.CKKS)
    parameters.set_poly_modulus_degree(poly_degree)
    parameters.set_coeff_modulus(seal.CoeffModulus.Create(poly_degree, list(PRIMES)))
    if seed is not None:
        parameters.set_random_generator(seal.Blake2xbPRNGFactory(_seed_words(seed)))
    context = seal.SEALContext(parameters, True, seal.SEC_LEVEL_TYPE.TC128)
    if not context.parameters_set():
        raise ShuffleBitsError(f"SEAL refuses CKKS at N = {poly_degree}: {context.parameter_error_message()}")
    return context


@functools.cache
def _shared_context(poly_degree: int):
    return seal_context(poly_degree)


def _scratch() -> Path:
    """A private folder for SEAL's save/load, which the bindings only offer through file paths (RAM-backed where
    the system has ``/dev/shm``)."""
    return Path(tempfile.mkdtemp(prefix="shufflebits-seal-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))


_SCRATCH: list[Path] = []


def _scratch_file() -> Path:
    if not _SCRATCH or not _SCRATCH[0].is_dir():
        _SCRATCH[:] = [_scratch()]
    return _SCRATCH[0] / f"object-{os.getpid()}"


def to_bytes(obj) -> bytes:
    """A SEAL object (ciphertext, key) in SEAL's own serialization."""
    path = _scratch_file()
    try:
        obj.save(str(path))
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


def from_bytes(kind: str, context, blob: bytes):
    """``blob`` as a SEAL ``kind`` (``"Ciphertext"``, ``"SecretKey"``, ``"PublicKey"``) of ``context``:
    SEAL checks it is valid for those parameters; a blob that is not one is a one-line error."""
    obj = getattr(sealapi(), kind)()
    path = _scratch_file()
    try:
        path.write_bytes(blob)
        obj.load(context, str(path))
    except (RuntimeError, ValueError, OSError) as error:
        raise ShuffleBitsError(f"not a CKKS {kind} of these parameters ({str(error)[:80]})") from None
    finally:
        path.unlink(missing_ok=True)
    return obj


@dataclass(frozen=True, eq=False)
class CkksKey:
    """The key holder's secret: SEAL's secret and public key, the ring degree and a random id.

    ``secret_id`` is never shown: the fingerprint is its hash, the file MAC key
    is derived from it. ``seed`` is set only for the insecure reproducible mode.
    """

    secret: bytes = field(repr=False)
    public: bytes = field(repr=False)
    secret_id: bytes = field(repr=False)
    poly_degree: int = POLY_DEGREE
    seed: bytes | None = field(default=None, repr=False)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(_FINGERPRINT_LABEL + self.secret_id).hexdigest()

    def mac_key(self) -> bytes:
        return hmac.new(self.secret_id, b"shufflebits/ckks/file-mac", hashlib.sha256).digest()

    def context(self):
        return _shared_context(self.poly_degree)

    def secret_key(self):
        return from_bytes("SecretKey", self.context(), self.secret)

    def encryptor(self, plaintext_bytes: bytes = b""):
        """An encryptor under the public key: SEAL's own randomness, or in the seeded mode noise from
        HMAC(seed, ``plaintext_bytes``) (a context per message; SEAL reuses a seeded generator's stream)."""
        seal = sealapi()
        context = self.context()
        if self.seed is not None:
            noise = hmac.new(self.seed, b"noise\0" + plaintext_bytes, hashlib.sha512).digest()
            context = seal_context(self.poly_degree, noise)
        return seal.Encryptor(context, from_bytes("PublicKey", context, self.public))


def generate_key(poly_degree: int = POLY_DEGREE, *, seed: int | None = None) -> CkksKey:
    """A fresh CKKS key pair; ``seed``: INSECURE, reproducible (studies only; cannot be saved).

    The matcher gets neither key: scoring needs the parameters only.
    """
    seal = sealapi()
    material = None
    if seed is not None:
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**64:
            raise InvalidInputError(f"a CKKS seed is an integer in [0, 2**64), got {seed!r}")
        material = hashlib.sha512(_SEEDED_LABEL + seed.to_bytes(8, "little")).digest()
    generator = seal.KeyGenerator(seal_context(poly_degree, material))
    public = seal.PublicKey()
    generator.create_public_key(public)
    secret_id = os.urandom(32) if material is None else hashlib.sha256(b"id\0" + material).digest()
    return CkksKey(to_bytes(generator.secret_key()), to_bytes(public), secret_id, poly_degree, material)


def _features(name: str, values, dim: int | None = None) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise InvalidInputError(f"{name} must be a finite (n, d) array, got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise InvalidInputError(f"{name} are {x.shape[1]}-d but the CKKS gallery is {dim}-d")
    return x


def _paired(columns: np.ndarray) -> np.ndarray:
    """``(..., c)`` real columns as ``(..., ceil(c/2))`` complex ones: column ``k`` + ``i`` column ``k + h``."""
    half = -(-columns.shape[-1] // 2)
    padded = np.concatenate([columns, np.zeros((*columns.shape[:-1], 2 * half - columns.shape[-1]))], axis=-1)
    return padded[..., :half] + 1j * padded[..., half:]


def encrypt_slots(key: CkksKey, values: np.ndarray):
    """One SEAL ciphertext of ``values`` (real or complex, at most N/2) at scale ``2^SCALE_BITS``."""
    seal = sealapi()
    values = np.asarray(values)
    encoder, plain = seal.CKKSEncoder(key.context()), seal.Plaintext()
    listed = values.astype(np.complex128).tolist() if np.iscomplexobj(values) else values.astype(np.float64).tolist()
    encoder.encode(listed, 2.0**SCALE_BITS, plain)
    ciphertext = seal.Ciphertext()
    key.encryptor(np.ascontiguousarray(values).tobytes()).encrypt(plain, ciphertext)
    return ciphertext


@dataclass(frozen=True, eq=False)
class CkksGallery:
    """A complex-column-packed encrypted gallery: ``groups[k][j]`` is the serialized ciphertext of columns
    ``j`` and ``j + h`` of templates ``k * slots ...`` (module docstring).

    ``norm_scale`` divides every template (the largest norm; 1 for cosine, whose
    rows are unit vectors): public, it keeps scores within the modulus.
    """

    poly_degree: int
    groups: tuple[tuple[bytes, ...], ...]
    count: int
    dim: int
    metric: str
    norm_scale: float
    slots: int
    key_fingerprint: str
    _loaded: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def columns(self) -> int:
        return self.dim + (self.metric == "euclidean")

    @property
    def nbytes(self) -> int:
        return sum(len(ct) for group in self.groups for ct in group)

    @property
    def bytes_per_template(self) -> float:
        return self.nbytes / self.count

    def ciphertexts(self) -> list[list]:
        """The groups as SEAL ciphertexts (loaded once per gallery object)."""
        if "groups" not in self._loaded:
            context = _shared_context(self.poly_degree)
            self._loaded["groups"] = [[from_bytes("Ciphertext", context, ct) for ct in group] for group in self.groups]
        return self._loaded["groups"]


def encrypt_gallery(key: CkksKey, features, metric: str = "euclidean") -> CkksGallery:
    """Encrypt ``(n, d)`` templates, ``N/2`` per ciphertext, two columns per ciphertext (plus norms)."""
    if metric not in METRICS:
        raise InvalidInputError(f"unknown CKKS metric {metric!r}; expected one of {', '.join(METRICS)}")
    x = _features("gallery features", features)
    if len(x) == 0:
        raise InvalidInputError("a CKKS gallery needs at least one template")
    norms = np.linalg.norm(x, axis=1)
    if metric == "cosine":
        x, scale = x / np.maximum(norms, 1e-12)[:, None], 1.0
    else:
        scale = float(max(norms.max(), 1e-12))
        x = x / scale
    slots = key.poly_degree // 2
    columns = np.concatenate([x, (x**2).sum(1, keepdims=True)], axis=1) if metric == "euclidean" else x
    columns = np.pad(columns, ((0, -len(x) % slots), (0, 0)))  # every ciphertext full: an encrypted query fits all
    packed = _paired(columns)
    groups = tuple(
        tuple(to_bytes(encrypt_slots(key, column)) for column in packed[start : start + slots].T)
        for start in range(0, len(packed), slots)
    )
    return CkksGallery(key.poly_degree, groups, len(x), x.shape[1], metric, scale, slots, key.fingerprint)


@dataclass(frozen=True, eq=False)
class EncryptedQuery:
    """Query weights encrypted by the key holder, one replicated ciphertext each (``encrypt_query``).

    ``norm_scale`` is the gallery's: the weights are scaled by it, so the query
    scores only galleries of that scale.
    """

    weights: tuple[tuple[bytes, ...], ...]  # per query: one ciphertext per complex gallery column
    dim: int
    metric: str
    key_fingerprint: str
    norm_scale: float
    poly_degree: int

    @property
    def count(self) -> int:
        return len(self.weights)

    @property
    def nbytes(self) -> int:
        return sum(len(ct) for row in self.weights for ct in row)


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
    if key.fingerprint != gallery.key_fingerprint:
        raise WrongKeyError("this CKKS key did not encrypt the gallery: its query could not be compared")
    q = _nonzero(_features("query features", query, gallery.dim))
    scale = 1.0 if gallery.metric == "cosine" else gallery.norm_scale
    weights = np.conj(_paired(_weights(q / scale, gallery.metric)))
    return EncryptedQuery(
        tuple(tuple(to_bytes(encrypt_slots(key, np.full(gallery.slots, w))) for w in row) for row in weights),
        gallery.dim,
        gallery.metric,
        key.fingerprint,
        gallery.norm_scale,
        gallery.poly_degree,
    )


def _nonzero(q: np.ndarray) -> np.ndarray:
    if (np.linalg.norm(q, axis=1) == 0).any():
        raise InvalidInputError("a query of zeros has no similarity to rank by")
    return q


def comparable(gallery: CkksGallery, query: EncryptedQuery) -> None:
    """Refuse, in one line, an encrypted query that ``gallery``'s ciphertexts cannot be scored against."""
    if query.key_fingerprint != gallery.key_fingerprint:
        raise InvalidInputError(
            f"query and gallery were encrypted under different CKKS keys ({query.key_fingerprint[:16]}… vs "
            f"{gallery.key_fingerprint[:16]}…): their ciphertexts cannot be compared"
        )
    if (query.dim, query.metric, query.poly_degree) != (gallery.dim, gallery.metric, gallery.poly_degree):
        raise InvalidInputError(
            f"the encrypted query is {query.metric} {query.dim}-d at N = {query.poly_degree}, the gallery "
            f"{gallery.metric} {gallery.dim}-d at N = {gallery.poly_degree}"
        )
    if query.norm_scale != gallery.norm_scale:
        raise InvalidInputError(
            f"the query was encrypted for a gallery of norm scale {query.norm_scale:g}, not this one "
            f"({gallery.norm_scale:g}): encrypt it again for this gallery"
        )


@dataclass(frozen=True, eq=False)
class EncryptedScores:
    """Score ciphertexts per query and gallery group: only the key holder can read them."""

    groups: tuple[tuple[bytes, ...], ...]  # per query: one ciphertext per gallery group
    count: int
    metric: str
    key_fingerprint: str
    poly_degree: int = POLY_DEGREE


def _plain_constants(weights: np.ndarray, parms_id, poly_degree: int) -> list:
    """Complex weights as SEAL plaintext constants; one that encodes to 0 at the scale is None (SEAL refuses a
    product by zero: a transparent ciphertext)."""
    seal = sealapi()
    encoder = seal.CKKSEncoder(_shared_context(poly_degree))
    out = []
    for w in weights:
        if not (round(w.real * 2.0**SCALE_BITS) or round(w.imag * 2.0**SCALE_BITS)):
            out.append(None)
            continue
        plain = seal.Plaintext()
        encoder.encode(complex(w), parms_id, 2.0**SCALE_BITS, plain)
        out.append(plain)
    return out


def score(gallery: CkksGallery, query) -> EncryptedScores:
    """The matcher's step: encrypted similarities of every query (features or ``EncryptedQuery``) to the gallery.

    Needs the gallery's parameters only: nothing here holds a key.
    """
    seal = sealapi()
    context = _shared_context(gallery.poly_degree)
    evaluator = seal.Evaluator(context)
    groups = gallery.ciphertexts()
    if isinstance(query, EncryptedQuery):
        comparable(gallery, query)
        rows = [[from_bytes("Ciphertext", context, ct) for ct in row] for row in query.weights]
        multiply = evaluator.multiply
    else:
        q = _nonzero(_features("query features", query, gallery.dim))
        scale = 1.0 if gallery.metric == "cosine" else gallery.norm_scale
        parms_id = groups[0][0].parms_id()
        weights = np.conj(_paired(_weights(q / scale, gallery.metric)))
        rows = [_plain_constants(row, parms_id, gallery.poly_degree) for row in weights]
        multiply = evaluator.multiply_plain
    out = []
    for row in rows:
        per_group = []
        for columns in groups:
            total = None
            for column, weight in zip(columns, row, strict=True):
                if weight is None:
                    continue
                term = seal.Ciphertext()
                multiply(column, weight, term)
                total = term if total is None else (evaluator.add_inplace(total, term), total)[1]
            if total is None:
                raise InvalidInputError("this query's weights all round to zero at the CKKS scale")
            per_group.append(to_bytes(total))
        out.append(tuple(per_group))
    return EncryptedScores(tuple(out), gallery.count, gallery.metric, gallery.key_fingerprint, gallery.poly_degree)


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
        seal = sealapi()
        self.key = key
        self._decryptor = seal.Decryptor(key.context(), key.secret_key())
        self._encoder = seal.CKKSEncoder(key.context())

    def decrypt(self, scores: EncryptedScores) -> np.ndarray:
        """``(n_query, n_gallery)`` similarities (higher is closer): ``2 q.g - |g|^2`` up to a positive scale."""
        if scores.key_fingerprint != self.key.fingerprint:
            raise WrongKeyError(
                f"these scores were computed under CKKS key {scores.key_fingerprint[:16]}…, not this key "
                f"({self.key.fingerprint[:16]}…): wrong key"
            )
        return np.asarray(
            [np.concatenate([self.read(ct) for ct in per_query]) for per_query in scores.groups], dtype=np.float64
        ).reshape(len(scores.groups), -1)[:, : scores.count]

    def read(self, blob: bytes) -> np.ndarray:
        """The real parts of one score ciphertext's slots."""
        plain = sealapi().Plaintext()
        self._decryptor.decrypt(from_bytes("Ciphertext", self.key.context(), blob), plain)
        return np.asarray(self._encoder.decode_complex(plain)).real

    def release(
        self, scores: EncryptedScores, top_k: int = TOP_K, threshold: float | None = None, reveal_scores: bool = False
    ) -> Release:
        """The ``top_k`` best gallery rows per query (those scoring at least ``threshold``, if given; -1 pads)."""
        return release_from(self.decrypt(scores), top_k, threshold, reveal_scores)


def release_from(
    plain: np.ndarray, top_k: int = TOP_K, threshold: float | None = None, reveal_scores: bool = False
) -> Release:
    """``KeyHolder.release`` on scores it has already decrypted (one decryption for its own figures and the
    release)."""
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise InvalidInputError(f"top_k must be an integer of at least 1, got {top_k!r}")
    if threshold is not None and not np.isfinite(threshold):
        raise InvalidInputError(f"a release threshold must be finite, got {threshold!r}")
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
