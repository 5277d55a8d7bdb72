"""FAISS gallery search ranks as the numpy path does, and evaluate() gives the same figures through it."""

from __future__ import annotations

import numpy as np
import pytest

from shufflebits.errors import ShuffleBitsError
from shufflebits.reid import distance_matrix, evaluate
from shufflebits.reid.search import GalleryIndex


def integer_features(rng, n, d=6):
    """Small integers: squared distances are exact in float32 and float64, and full of ties."""
    return rng.integers(-3, 4, size=(n, d)).astype(np.float32)


def numpy_ranking(query, gallery, metric):
    return np.argsort(distance_matrix(query.astype(np.float64), gallery.astype(np.float64), metric), 1, kind="stable")


def test_flat_euclidean_ranking_is_numpys_ties_included():
    rng = np.random.default_rng(0)
    gallery, query = integer_features(rng, 300), integer_features(rng, 40)
    index = GalleryIndex(gallery, "euclidean")
    expected = numpy_ranking(query, gallery, "euclidean")
    assert np.array_equal(index.ranking(query), expected)
    distances, indices = index.search(query, 25)
    assert np.array_equal(indices, expected[:, :25])
    exact = distance_matrix(query.astype(np.float64), gallery.astype(np.float64))
    assert np.array_equal(distances, np.take_along_axis(exact, indices, 1))


def test_flat_cosine_ranking_is_numpys_up_to_float32_near_ties():
    rng = np.random.default_rng(1)
    gallery = rng.standard_normal((400, 16)).astype(np.float32)
    query = rng.standard_normal((30, 16)).astype(np.float32)
    ranking = GalleryIndex(gallery, "cosine").ranking(query)
    expected = numpy_ranking(query, gallery, "cosine")
    exact = distance_matrix(query.astype(np.float64), gallery.astype(np.float64), "cosine")
    # Where the orders differ, the float64 distances they swap agree to float32 precision.
    differ = ranking != expected
    assert differ.mean() < 0.01
    gaps = np.take_along_axis(exact, ranking, 1) - np.take_along_axis(exact, expected, 1)
    assert np.abs(gaps[differ]).max(initial=0) < 1e-6
    assert all(sorted(row) == list(range(400)) for row in ranking.tolist())


def test_ivf_probing_every_list_is_exact_and_a_partial_probe_still_ranks_everything():
    rng = np.random.default_rng(2)
    gallery, query = integer_features(rng, 500, d=8), integer_features(rng, 20, d=8)
    expected = numpy_ranking(query, gallery, "euclidean")
    every = GalleryIndex(gallery, "euclidean", ivf_lists=4, nprobe=4)
    assert np.array_equal(every.ranking(query), expected)
    partial = GalleryIndex(gallery, "euclidean", ivf_lists=16, nprobe=1).ranking(query)
    assert all(sorted(row) == list(range(500)) for row in partial.tolist())


def test_evaluate_gives_the_same_figures_through_faiss():
    rng = np.random.default_rng(3)
    gallery, query = integer_features(rng, 600), integer_features(rng, 60)
    g_pids, q_pids = rng.integers(-1, 30, 600), rng.integers(0, 30, 60)
    g_cams, q_cams = rng.integers(0, 4, 600), rng.integers(0, 4, 60)
    figures = {
        backend: evaluate(query, gallery, q_pids, g_pids, q_cams, g_cams, backend=backend)
        for backend in ("numpy", "faiss")
    }
    assert figures["numpy"]["backend"] == "numpy" and figures["faiss"]["backend"] == "faiss"
    for name in ("mAP", "mINP", "rank1", "rank5", "num_query", "num_skipped"):
        assert figures["faiss"][name] == figures["numpy"][name], name
    assert np.array_equal(figures["faiss"]["cmc"], figures["numpy"]["cmc"])
    auto = evaluate(query, gallery, q_pids, g_pids, q_cams, g_cams)
    assert auto["backend"] == "numpy"  # a small gallery stays on numpy


def test_bad_index_requests_are_clear_errors():
    gallery = np.zeros((10, 4), np.float32)
    with pytest.raises(ShuffleBitsError, match="ivf_lists"):
        GalleryIndex(gallery, ivf_lists=11)
    with pytest.raises(ShuffleBitsError, match="4-d"):
        GalleryIndex(gallery).search(np.zeros((1, 5), np.float32), 3)
    with pytest.raises(ShuffleBitsError, match="faiss backend"):
        evaluate(
            gallery, gallery, np.arange(10), np.arange(10), np.zeros(10), np.ones(10), backend="numpy", ivf_lists=2
        )
