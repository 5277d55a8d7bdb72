"""The nearest-neighbour lookup reconstruction (``nn-lookup``): the baseline every learned decoder must beat.

Instead of generating an image, return the attacker's own image whose
feature is nearest (cosine) to the leaked one, in the same view of the
ciphertext a decoder would get. It needs no training, so when a decoder does
not beat it the decoder has learnt less than the attacker's photo album holds.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from ..errors import ShuffleBitsError
from ..registry import register
from .decoders import image_tensor
from .views import apply_view, validated

CHUNK = 1024  # leaked rows compared at once: a (CHUNK, attacker rows) similarity block


def _unit_rows(Z: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (float64); an all-zero row stays zero (similarity 0 to everything)."""
    Z = np.asarray(Z, dtype=np.float64)
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    return Z / np.where(norms > 0, norms, 1.0)


class NearestLookup(RegressorMixin, BaseEstimator):
    """Features (or ciphertext words, with ``view``) -> the attacker image with the most similar feature.

    ``fit(X, y)`` stores the attacker's inputs and images ``y`` ``(n, 3, h, w)``;
    ``predict(X)`` returns, row by row, the image whose input has the highest
    cosine similarity (ties: the first). ``kneighbors(X)`` gives the cosine
    distances and indices behind it. Same interface as ``Reconstructor``:
    ``score`` is the negative pixel MSE against images ``y``.
    """

    def __init__(self, view: str | None = None, image_size: tuple[int, int] | None = None):
        self.view = view
        self.image_size = image_size

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        return tags

    def fit(self, X, y) -> NearestLookup:
        """``X``: the attacker's features (or words, with ``view``); ``y``: its images, (n, 3, h, w) in [0, 1]."""
        X = validated(self, X, ensure_min_samples=1)
        if y is None or len(y) != len(X) or np.ndim(y) != 4:
            raise ShuffleBitsError("nn-lookup needs one attacker image (3, h, w) per feature vector")
        self.image_size_ = tuple(self.image_size or np.asarray(y).shape[2:])
        self.images_ = image_tensor(y, self.image_size_, "cpu").numpy()
        self.keys_ = _unit_rows(apply_view(self.view, X))
        return self

    def kneighbors(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Cosine distance to, and row index of, each leaked row's nearest attacker row."""
        check_is_fitted(self)
        Z = _unit_rows(apply_view(self.view, validated(self, X, reset=False)))
        index = np.empty(len(Z), dtype=np.int64)
        distance = np.empty(len(Z), dtype=np.float64)
        for start in range(0, len(Z), CHUNK):
            similarity = Z[start : start + CHUNK] @ self.keys_.T
            best = similarity.argmax(axis=1)
            index[start : start + CHUNK] = best
            distance[start : start + CHUNK] = 1.0 - similarity[np.arange(len(best)), best]
        return distance, index

    def predict(self, X) -> np.ndarray:
        """The nearest attacker images, (n, 3, h, w) float32 in [0, 1]."""
        _, index = self.kneighbors(X)
        return self.images_[index]

    def score(self, X, y) -> float:
        """Negative mean squared pixel error against images ``y`` at ``image_size_`` (higher is better)."""
        check_is_fitted(self)
        target = image_tensor(y, self.image_size_, "cpu").numpy()
        return -float(np.mean((self.predict(X).astype(np.float64) - target) ** 2))


@register("attack", "nn-lookup")
def _nn_lookup(**kwargs) -> NearestLookup:
    return NearestLookup(**kwargs)
