"""CMC, mAP and mINP under the Market-1501 protocol, as torchreid computes them.

For each query the gallery is ranked by distance after removing the samples
that protocol excludes: the same identity seen by the same camera (trivial
matches) and junk identity ``-1``. Queries left with no true match are
skipped (and counted). Distances are computed a block of queries at a time, so
memory stays at ``block x gallery`` whatever the query count, and the ranking
statistics are vectorised over each block. Galleries of ``FAISS_MIN_GALLERY``
rows or more are ranked by FAISS (``search.GalleryIndex``) instead of numpy.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShuffleBitsError
from .search import FAISS_MIN_GALLERY, GalleryIndex

JUNK_PID = -1
METRICS = ("euclidean", "cosine", "hamming")
BACKENDS = ("auto", "numpy", "faiss")
_BLOCK_ELEMENTS = 1 << 22  # distance entries per block: ~200 MiB of working arrays


def _as_features(name: str, values) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 2:
        raise ShuffleBitsError(f"{name} must be 2-D (n, d), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ShuffleBitsError(f"{name} must be floating point, got {array.dtype} (encrypted? decrypt them first)")
    if not np.isfinite(array).all():
        raise ShuffleBitsError(f"{name} contain NaN or Inf (encrypted features? decrypt them first)")
    return array


def _as_labels(name: str, values, n: int) -> np.ndarray:
    array = np.asarray(values).reshape(-1)
    if len(array) != n:
        raise ShuffleBitsError(f"{name} has {len(array)} entries but there are {n} feature rows")
    return array.astype(np.int64)


def distance_matrix(query: np.ndarray, gallery: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """Squared Euclidean (torchreid's ``euclidean``), ``1 - cosine`` or Hamming distances, float64.

    ``hamming`` takes 0/1 vectors (unpacked hash bits) and counts the positions
    that differ: ``|q| + |g| - 2 q.g``, exact in float64.
    """
    if metric == "hamming":
        return query.sum(1)[:, None] + gallery.sum(1)[None, :] - 2.0 * query @ gallery.T
    if metric == "euclidean":
        distances = (query**2).sum(1)[:, None] + (gallery**2).sum(1)[None, :] - 2.0 * query @ gallery.T
        return np.maximum(distances, 0.0)
    if metric == "cosine":
        q = query / np.maximum(np.linalg.norm(query, axis=1, keepdims=True), 1e-12)
        g = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
        return 1.0 - q @ g.T
    raise ShuffleBitsError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")


def evaluate(
    query_features,
    gallery_features,
    query_ids,
    gallery_ids,
    query_cams,
    gallery_cams,
    metric: str = "euclidean",
    max_rank: int = 50,
    backend: str = "auto",
    ivf_lists: int | None = None,
) -> dict:
    """Re-ID figures: ``mAP``, ``mINP``, ``cmc`` (``cmc[k]`` = rank-(k+1) hit rate), ``rank1/5/10``.

    Also ``num_query`` (queries evaluated), ``num_skipped`` (queries with no
    valid gallery match) and ``backend`` (what ranked: numpy in float64, or
    FAISS in float32; ``"auto"`` picks FAISS from ``FAISS_MIN_GALLERY`` gallery
    rows, or whenever ``ivf_lists`` asks for an approximate IVF index). Ties in
    distance are broken by gallery order.
    """
    if metric not in METRICS:
        raise ShuffleBitsError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    if backend not in BACKENDS:
        raise ShuffleBitsError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if ivf_lists is not None and backend == "numpy":
        raise ShuffleBitsError("an IVF index (ivf_lists) needs the faiss backend")
    if metric == "hamming" and (backend == "faiss" or ivf_lists is not None):
        raise ShuffleBitsError("the faiss backend ranks euclidean or cosine distances; hamming ranks with numpy")
    if max_rank < 1:
        raise ShuffleBitsError(f"max_rank must be at least 1, got {max_rank}")
    query = _as_features("query features", query_features)
    gallery = _as_features("gallery features", gallery_features)
    if query.shape[1] != gallery.shape[1]:
        raise ShuffleBitsError(f"query features are {query.shape[1]}-d but gallery features are {gallery.shape[1]}-d")
    q_pids = _as_labels("query_ids", query_ids, len(query))
    g_pids = _as_labels("gallery_ids", gallery_ids, len(gallery))
    q_cams = _as_labels("query_cams", query_cams, len(query))
    g_cams = _as_labels("gallery_cams", gallery_cams, len(gallery))
    if len(query) == 0 or len(gallery) == 0:
        raise ShuffleBitsError(f"need at least one query and one gallery feature, got {len(query)} and {len(gallery)}")

    use_faiss = backend == "faiss" or (
        backend == "auto" and metric != "hamming" and (ivf_lists or len(gallery) >= FAISS_MIN_GALLERY)
    )
    if use_faiss:
        index = GalleryIndex(gallery, metric, ivf_lists=ivf_lists)

        def rank(rows: np.ndarray) -> np.ndarray:
            return index.ranking(query[rows])
    else:
        query, gallery = query.astype(np.float64, copy=False), gallery.astype(np.float64, copy=False)

        def rank(rows: np.ndarray) -> np.ndarray:
            return np.argsort(distance_matrix(query[rows], gallery, metric), axis=1, kind="stable")

    result = _figures(rank, len(query), q_pids, g_pids, q_cams, g_cams, max_rank)
    result.update(metric=metric, backend="faiss" if use_faiss else "numpy")
    return result


def matches_per_query(query_ids, gallery_ids, query_cams, gallery_cams) -> list[int]:
    """[fewest, most] correct gallery matches of a query (same identity, other camera: the Market protocol).

    ``[1, 1]`` is where mAP equals mINP: with one match, average precision and
    the inverse negative penalty are both 1 / (rank of that match).
    """
    same_pid = np.asarray(query_ids)[:, None] == np.asarray(gallery_ids)[None, :]
    other_camera = np.asarray(query_cams)[:, None] != np.asarray(gallery_cams)[None, :]
    counts = (same_pid & other_camera).sum(axis=1)
    return [int(counts.min()), int(counts.max())] if counts.size else [0, 0]


def evaluate_ranking(order, query_ids, gallery_ids, query_cams, gallery_cams, max_rank: int = 50) -> dict:
    """``evaluate``'s figures from a ranking the caller made: ``order[i]`` = gallery rows, nearest first.

    For schemes whose distances only the key holder sees (CKKS: it releases a
    ranking, not scores).
    """
    order = np.asarray(order)
    if order.ndim != 2 or order.dtype.kind not in "iu":
        raise ShuffleBitsError(f"a ranking is an integer (n_query, n_gallery) array, got {order.dtype} {order.shape}")
    q_pids = _as_labels("query_ids", query_ids, len(order))
    g_pids = _as_labels("gallery_ids", gallery_ids, order.shape[1])
    q_cams = _as_labels("query_cams", query_cams, len(order))
    g_cams = _as_labels("gallery_cams", gallery_cams, order.shape[1])
    if max_rank < 1:
        raise ShuffleBitsError(f"max_rank must be at least 1, got {max_rank}")
    if (np.sort(order, axis=1) != np.arange(order.shape[1])).any():
        raise ShuffleBitsError("each row of a ranking must order every gallery row exactly once")
    return _figures(lambda rows: order[rows], len(order), q_pids, g_pids, q_cams, g_cams, max_rank)


def _figures(rank, n_query: int, q_pids, g_pids, q_cams, g_cams, max_rank: int) -> dict:
    """CMC, mAP and mINP of the ranking ``rank(rows)`` gives for blocks of query rows."""
    first_hit, average_precision, inverse_negative_penalty = [], [], []
    block = max(1, _BLOCK_ELEMENTS // len(g_pids))
    for start in range(0, n_query, block):
        stop = min(start + block, n_query)
        order = rank(np.arange(start, stop))
        ranked_pids, ranked_cams = g_pids[order], g_cams[order]
        pids, cams = q_pids[start:stop, None], q_cams[start:stop, None]
        valid = (ranked_pids != JUNK_PID) & ~((ranked_pids == pids) & (ranked_cams == cams))
        hits = (ranked_pids == pids) & valid
        has_match = hits.any(axis=1)
        # 1-based rank of each position among the valid gallery samples, and hits so far.
        valid_rank = np.cumsum(valid, axis=1)[has_match]
        hits = hits[has_match]
        hits_so_far = np.cumsum(hits, axis=1)
        num_hits = hits_so_far[:, -1]
        precision_at_hits = np.where(hits, hits_so_far / np.maximum(valid_rank, 1), 0.0)
        average_precision.append(precision_at_hits.sum(axis=1) / num_hits)
        first_hit.append(valid_rank[np.arange(len(hits)), hits.argmax(axis=1)])
        last_hit = hits.shape[1] - 1 - hits[:, ::-1].argmax(axis=1)
        inverse_negative_penalty.append(num_hits / valid_rank[np.arange(len(hits)), last_hit])

    first = np.concatenate(first_hit)
    if len(first) == 0:
        raise ShuffleBitsError(
            "no query has a valid gallery match (same identity from another camera); check the ids and cameras"
        )
    ranks = min(max_rank, len(g_pids))
    cmc = (first[:, None] <= np.arange(1, ranks + 1)[None, :]).mean(axis=0)
    result = {
        "mAP": float(np.concatenate(average_precision).mean()),
        "mINP": float(np.concatenate(inverse_negative_penalty).mean()),
        "cmc": cmc,
        "num_query": len(first),
        "num_skipped": int(n_query - len(first)),
    }
    for k in (1, 5, 10, 20):
        result[f"rank{k}"] = float((first <= k).mean())
    return result
