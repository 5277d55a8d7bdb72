"""Attacks on the searchable ciphers: invert ciphertexts from known pairs, or align them with no pairs at all.

Every estimator takes ciphertexts as ``ciphers.matching.match_view`` gives them
(the float values for DCPE and rotation, 0/1 bits for BioHash) and predicts
plaintext features; ``score(X, y)`` is the mean cosine between prediction and
truth.

Known pairs (the attacker's own images, encrypted by the black box under the
users' key), ``fit(C, P)``:

- ``invert-procrustes`` (rotation): orthogonal Procrustes, ``W = U V^T`` from
  the SVD of ``P^T C``; exact from ``d`` generic pairs.
- ``invert-shuffle`` (DCPE, with or without the dimension shuffle): assignment
  of ciphertext to plaintext dimensions by correlation over the pairs
  (Hungarian algorithm), the scale ``s`` by least squares, then the assignment
  again on the squared residuals at that scale; the perturbation stays as noise.
- ``invert-biohash``: projection learning, a ridge regression of each bit
  (as +-1) on the plaintext; a hash inverts to the sum of its signed learnt
  directions.

Ciphertext only (users' ciphertexts plus the attacker's own plaintext
features, no pairs), ``fit(C, reference=P)``:

- ``align-moments`` (dimension shuffle): the scale from the median norms, then
  each ciphertext dimension assigned to the plaintext dimension whose quantile
  profile it matches.
- ``align-procrustes`` (rotation): principal axes of both sets (``Cov(C) = R
  Cov(P) R^T``) with each axis' sign fixed by its third moment, then a few
  rounds of nearest-neighbour pairing and Procrustes.
- ``align-biohash`` (BioHash with b = d): each hash as a +-1 vector, the sign of
  an orthonormal projection of the features, aligned to them as a rotation is
  (``align-procrustes``): the signs keep the projection's principal axes, up to
  the sign's distortion.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ..errors import InvalidInputError
from ..registry import register

QUANTILES = np.linspace(0.05, 0.95, 19)
NEAREST_BLOCK = 4096  # rows per block of the nearest-neighbour search: 100,000 ciphertexts in bounded memory


def mean_cosine(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Mean row-wise cosine between two ``(n, d)`` arrays."""
    a, b = np.asarray(estimate, np.float64), np.asarray(truth, np.float64)
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(np.mean(np.sum(a * b, axis=1) / norms))


def _procrustes(P: np.ndarray, C: np.ndarray) -> np.ndarray:
    """The orthogonal ``W`` minimising ``|P W - C|``."""
    u, _, vt = np.linalg.svd(P.T @ C)
    return u @ vt


def _nearest(X: np.ndarray, P: np.ndarray) -> np.ndarray:
    """For each row of ``X`` the index of its nearest row of ``P`` (Euclidean), ``NEAREST_BLOCK`` rows at a time."""
    squared = (P**2).sum(1)  # |x|^2 is the same for every candidate of a row: left out
    blocks = range(0, len(X), NEAREST_BLOCK)
    return np.concatenate([np.argmin(squared - 2 * X[i : i + NEAREST_BLOCK] @ P.T, axis=1) for i in blocks])


class _Inversion(BaseEstimator):
    def score(self, X, y) -> float:
        return mean_cosine(self.predict(X), y)


class ProcrustesInversion(_Inversion):
    """Known pairs -> the rotation (``C = P W``); predicts ``C W^T``."""

    def fit(self, X, y):
        self.W_ = _procrustes(np.asarray(y, np.float64), np.asarray(X, np.float64))
        return self

    def predict(self, X):
        check_is_fitted(self)
        return np.asarray(X, np.float64) @ self.W_.T


def _column_correlations(C: np.ndarray, P: np.ndarray) -> np.ndarray:
    """``(d_c, d_p)`` correlations of ciphertext with plaintext columns (uncentred below 3 pairs)."""
    if len(C) >= 3:
        C, P = C - C.mean(0), P - P.mean(0)
    Cn = C / np.maximum(np.linalg.norm(C, axis=0), 1e-12)
    Pn = P / np.maximum(np.linalg.norm(P, axis=0), 1e-12)
    return Cn.T @ Pn


class _Assignment(_Inversion):
    """Ciphertext dimension ``j`` is plaintext dimension ``source_[j]`` times ``scale_``."""

    def predict(self, X):
        check_is_fitted(self)
        X = np.asarray(X, np.float64)
        out = np.empty_like(X)
        out[:, self.source_] = X / self.scale_
        return out


class ShuffleInversion(_Assignment):
    """Known pairs -> the dimension shuffle (assignment on correlations) and the scale (least squares)."""

    def fit(self, X, y):
        C, P = np.asarray(X, np.float64), np.asarray(y, np.float64)
        _, self.source_ = linear_sum_assignment(-_column_correlations(C, P))
        for _ in range(2):  # scale from the assignment, then the assignment on residuals at that scale
            matched = P[:, self.source_]
            self.scale_ = float(np.sum(C * matched) / max(np.sum(matched * matched), 1e-12))
            residual = (C**2).sum(0)[:, None] + self.scale_**2 * (P**2).sum(0)[None, :] - 2 * self.scale_ * C.T @ P
            _, self.source_ = linear_sum_assignment(residual)
        return self


class MomentAlignment(_Assignment):
    """Ciphertext only: the scale from median norms, the shuffle from per-dimension quantile profiles.

    ``shuffled=False`` (the scheme has no shuffle, and the attacker knows the scheme): the scale only.
    """

    def __init__(self, shuffled: bool = True):
        self.shuffled = shuffled

    def fit(self, X, y=None, reference=None):
        C, P = np.asarray(X, np.float64), np.asarray(reference, np.float64)
        self.scale_ = float(np.median(np.linalg.norm(C, axis=1)) / max(np.median(np.linalg.norm(P, axis=1)), 1e-12))
        if not self.shuffled:
            self.source_ = np.arange(C.shape[1])
            return self
        qc = np.quantile(C / self.scale_, QUANTILES, axis=0).T
        qp = np.quantile(P, QUANTILES, axis=0).T
        cost = (qc**2).sum(1)[:, None] + (qp**2).sum(1)[None, :] - 2 * qc @ qp.T
        _, self.source_ = linear_sum_assignment(cost)
        return self


class ProcrustesAlignment(_Inversion):
    """Ciphertext only: principal axes with third-moment signs, refined by nearest-neighbour Procrustes."""

    def __init__(self, rounds: int = 5):
        self.rounds = rounds

    def fit(self, X, y=None, reference=None):
        C, P = np.asarray(X, np.float64), np.asarray(reference, np.float64)
        axes = []
        for Z in (P, C):
            centred = Z - Z.mean(0)
            _, vectors = np.linalg.eigh(centred.T @ centred / len(Z))
            skew = np.sign(np.mean((centred @ vectors) ** 3, axis=0))
            axes.append(vectors * np.where(skew == 0, 1.0, skew))
        self.W_ = axes[0] @ axes[1].T  # C = P W
        for _ in range(self.rounds):
            self.W_ = _procrustes(P[_nearest(C @ self.W_.T, P)], C)
        return self

    def predict(self, X):
        check_is_fitted(self)
        return np.asarray(X, np.float64) @ self.W_.T


class BioHashAlignment(_Inversion):
    """Ciphertext only: hashes as +-1 vectors aligned like rotated features (``ProcrustesAlignment``)."""

    def __init__(self, rounds: int = 5):
        self.rounds = rounds

    def fit(self, X, y=None, reference=None):
        B, P = np.asarray(X, np.float64), np.asarray(reference, np.float64)
        d = P.shape[1]
        if B.shape[1] < d:  # d bits, then the padding to whole words
            raise InvalidInputError(f"align-biohash aligns {d}-bit hashes of {d}-d features, got {B.shape[1]} bits")
        self.alignment_ = ProcrustesAlignment(self.rounds).fit(2 * B[:, :d] - 1, reference=P)
        return self

    def predict(self, X):
        check_is_fitted(self)
        d = self.alignment_.W_.shape[0]
        return self.alignment_.predict(2 * np.asarray(X, np.float64)[:, :d] - 1)


class BioHashInversion(_Inversion):
    """Known pairs -> each bit's direction (ridge regression of +-1 on the plaintext); a hash -> its signed sum."""

    def __init__(self, ridge: float = 0.1):
        self.ridge = ridge

    def fit(self, X, y):
        B, P = np.asarray(X, np.float64), np.asarray(y, np.float64)
        self.active_ = B.min(0) != B.max(0)  # padding and bits constant over the pairs carry no direction
        targets = 2 * B[:, self.active_] - 1
        gram = P.T @ P + self.ridge * np.trace(P.T @ P) / P.shape[1] * np.eye(P.shape[1])
        W = np.linalg.solve(gram, P.T @ targets)
        self.directions_ = W / np.maximum(np.linalg.norm(W, axis=0), 1e-12)
        return self

    def predict(self, X):
        check_is_fitted(self)
        return (2 * np.asarray(X, np.float64)[:, self.active_] - 1) @ self.directions_.T

    def hash(self, P) -> np.ndarray:
        """The attacker's forged hash bits of plaintext ``P`` (its active bits only)."""
        check_is_fitted(self)
        return (np.asarray(P, np.float64) @ self.directions_ > 0).astype(np.uint8)


@register("attack", "invert-procrustes")
def _invert_procrustes(**kwargs) -> ProcrustesInversion:
    return ProcrustesInversion(**kwargs)


@register("attack", "invert-shuffle")
def _invert_shuffle(**kwargs) -> ShuffleInversion:
    return ShuffleInversion(**kwargs)


@register("attack", "invert-biohash")
def _invert_biohash(**kwargs) -> BioHashInversion:
    return BioHashInversion(**kwargs)


@register("attack", "align-moments")
def _align_moments(**kwargs) -> MomentAlignment:
    return MomentAlignment(**kwargs)


@register("attack", "align-procrustes")
def _align_procrustes(**kwargs) -> ProcrustesAlignment:
    return ProcrustesAlignment(**kwargs)


@register("attack", "align-biohash")
def _align_biohash(**kwargs) -> BioHashAlignment:
    return BioHashAlignment(**kwargs)
