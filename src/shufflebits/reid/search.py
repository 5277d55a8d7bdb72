"""Matching decrypted features against a large gallery with FAISS.

``GalleryIndex`` holds the gallery once (float32, memory linear in its size):
exact flat search by default (``IndexFlatL2`` for squared Euclidean,
``IndexFlatIP`` on L2-normalised vectors for cosine), or an inverted-file index
(``ivf_lists``: faster, approximate; ``nprobe`` lists searched per query).
Distances are the numpy path's (``metrics.distance_matrix``) and ties are
broken by gallery order as there, so on small galleries both rank alike; the
two differ only where distances agree to float32 precision (FAISS computes in
float32, numpy in float64).
"""

from __future__ import annotations

import numpy as np

from ..errors import ShuffleBitsError

# evaluate() ranks with FAISS from this gallery size on ("auto"); below it numpy is as fast.
FAISS_MIN_GALLERY = 20_000


def _float32(name: str, values: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(values, dtype=np.float32)
    if array.ndim != 2:
        raise ShuffleBitsError(f"{name} must be 2-D (n, d), got shape {array.shape}")
    return array


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


class GalleryIndex:
    """A FAISS index over ``gallery`` for ``metric`` (``"euclidean"`` or ``"cosine"``)."""

    def __init__(
        self, gallery: np.ndarray, metric: str = "euclidean", *, ivf_lists: int | None = None, nprobe: int = 8
    ) -> None:
        import faiss

        if metric not in ("euclidean", "cosine"):
            raise ShuffleBitsError(f"unknown metric {metric!r}; expected euclidean or cosine")
        gallery = _float32("gallery features", gallery)
        if len(gallery) == 0:
            raise ShuffleBitsError("the gallery is empty")
        self.metric = metric
        self.ivf_lists = ivf_lists
        self.size, dim = gallery.shape
        if metric == "cosine":
            gallery = _unit(gallery).astype(np.float32)
        flat = faiss.IndexFlatL2(dim) if metric == "euclidean" else faiss.IndexFlatIP(dim)
        if ivf_lists is None:
            self.index = flat
        else:
            if not 1 <= ivf_lists <= self.size:
                raise ShuffleBitsError(f"ivf_lists must be between 1 and the gallery size {self.size}, got {ivf_lists}")
            kind = faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
            self.index = faiss.IndexIVFFlat(flat, dim, ivf_lists, kind)
            self.index.train(gallery)
            self.index.nprobe = max(1, min(nprobe, ivf_lists))
            self._quantizer = flat  # the IVF index does not own it
        self.index.add(gallery)

    def _distances(self, scores: np.ndarray) -> np.ndarray:
        """FAISS scores as the numpy path's distances (float64): squared L2 clipped at 0, or 1 - cosine."""
        scores = scores.astype(np.float64)
        return np.maximum(scores, 0.0) if self.metric == "euclidean" else 1.0 - scores

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, indices)`` of the ``k`` nearest gallery rows per query, nearest first.

        Distances are squared Euclidean or ``1 - cosine`` (float64); an IVF index
        may find fewer than ``k`` rows, the rest are index -1 at distance +inf.
        """
        queries = _float32("query features", queries)
        if queries.shape[1] != self.index.d:
            raise ShuffleBitsError(f"queries are {queries.shape[1]}-d but the gallery is {self.index.d}-d")
        if self.metric == "cosine":
            queries = _unit(queries).astype(np.float32)
        k = min(k, self.size)
        scores, indices = self.index.search(queries, k)
        distances = scores.astype(np.float64) if self.metric == "euclidean" else 1.0 - scores.astype(np.float64)
        distances = np.where(
            indices < 0, np.inf, np.maximum(distances, 0.0) if self.metric == "euclidean" else distances
        )
        # Ties (and FAISS's own order among them) are broken by gallery order, as numpy's stable argsort does.
        order = np.lexsort((np.where(indices < 0, self.size, indices), distances), axis=-1)
        return np.take_along_axis(distances, order, 1), np.take_along_axis(indices, order, 1)

    def ranking(self, queries: np.ndarray) -> np.ndarray:
        """Every gallery index per query, nearest first; rows an IVF search missed follow in gallery order.

        A flat index computes all distances at once (FAISS's float32 BLAS) and sorts
        them: a full ranking through its k-nearest heap (k = gallery size) is slower.
        """
        import faiss

        if self.ivf_lists is None:
            queries = _float32("query features", queries)
            if self.metric == "cosine":
                queries = _unit(queries).astype(np.float32)
            stored = faiss.rev_swig_ptr(self.index.get_xb(), self.size * self.index.d).reshape(self.size, -1)
            kind = faiss.METRIC_L2 if self.metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
            return np.argsort(self._distances(faiss.pairwise_distances(queries, stored, kind)), axis=1, kind="stable")
        _, indices = self.search(queries, self.size)
        missed = (indices < 0).any(axis=1)
        for row in np.flatnonzero(missed):
            found = indices[row][indices[row] >= 0]
            rest = np.setdiff1d(np.arange(self.size), found, assume_unique=True)
            indices[row] = np.concatenate([found, rest])
        return indices
