"""Rank-1 chance: many query shuffles, checked against ``reid.evaluate`` on the same shuffles."""

from __future__ import annotations

import numpy as np
import pytest

from shufflebits.attacks.reconstruction_eval import rank1, rank1_chance, shuffled_rank1
from test_attacks_helpers import make_world, one_torch_thread  # noqa: F401 (autouse fixture)


@pytest.fixture(scope="module")
def users():
    _, query, gallery, _ = make_world(identities=60, per_id=6, d=24, size=(16, 8))
    return query, gallery


def test_each_shuffle_scores_as_reid_evaluate_does(users):
    query, gallery = users
    null = rank1_chance(query.features, gallery.features, query, gallery, seed=3, n_shuffles=20)
    rng = np.random.default_rng(3)  # the same permutations, scored by the full re-ID evaluation
    expected = [
        rank1(query.features[rng.permutation(len(query.features))], gallery.features, query, gallery) for _ in range(20)
    ]
    assert null["chance"] == pytest.approx(np.mean(expected), abs=1e-12)
    assert null["chance_ci"] == pytest.approx(list(np.percentile(expected, [2.5, 97.5])), abs=1e-12)
    assert null["shuffles"] == 20
    assert shuffled_rank1(query.features, gallery.features, query, gallery, seed=3, n_shuffles=20) == null["chance"]


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_map_chance_is_reid_evaluate_on_the_same_shuffles(users, metric):
    from shufflebits.attacks.protection import ciphertext_reid_rows, map_chance
    from shufflebits.reid import evaluate

    query, gallery = users
    qf, gf = query.features, gallery.features
    null = map_chance(qf, gf, metric, query, gallery, seed=5, n_shuffles=12)
    rng = np.random.default_rng(5)
    expected = [
        evaluate(qf[rng.permutation(len(qf))], gf, query.pids, gallery.pids, query.camids, gallery.camids, metric)[
            "mAP"
        ]
        for _ in range(12)
    ]
    assert null["chance"] == pytest.approx(np.mean(expected), abs=1e-12) and null["shuffles"] == 12
    assert null["chance_ci"] == pytest.approx(list(np.percentile(expected, [2.5, 97.5])), abs=1e-12)
    _, map_row = ciphertext_reid_rows("plaintext", qf, gf, metric, query, gallery, seed=5)
    assert map_row.chance == map_chance(qf, gf, metric, query, gallery, seed=5)["chance"]
    assert map_row.details["chance_ci"][1] < map_row.value  # informative features: above the interval


def test_informative_features_sit_above_the_interval_and_noise_inside(users):
    query, gallery = users
    null = rank1_chance(query.features, gallery.features, query, gallery, n_shuffles=200)
    observed = rank1(query.features, gallery.features, query, gallery)
    lo, hi = null["chance_ci"]
    assert lo <= null["chance"] <= hi < observed and null["p_value"] == pytest.approx(1 / 201)
    noise = np.random.default_rng(0).normal(size=query.features.shape)
    null = rank1_chance(noise, gallery.features, query, gallery, n_shuffles=200)
    assert null["p_value"] > 0.05


def test_shuffles_take_the_first_valid_nearest_entry_with_ties_and_junk():
    """Tied distances, junk gallery entries and same-camera matches, against a per-query loop."""
    from types import SimpleNamespace

    from shufflebits.attacks.reconstruction_eval import _shuffled_rank1s

    rng = np.random.default_rng(7)
    query = SimpleNamespace(pids=rng.integers(0, 12, 80), camids=rng.integers(0, 3, 80))
    gallery = SimpleNamespace(pids=rng.integers(-1, 12, 120), camids=rng.integers(0, 3, 120))  # -1: junk
    distances = rng.integers(0, 4, (80, 120)).astype(np.float64)  # many ties
    orders = [rng.permutation(80) for _ in range(15)]

    def by_loop(order):
        hits = []
        for i, row in enumerate(order):
            valid = [
                j
                for j in range(120)
                if gallery.pids[j] != -1
                and not (gallery.pids[j] == query.pids[i] and gallery.camids[j] == query.camids[i])
            ]
            if any(gallery.pids[j] == query.pids[i] for j in valid):
                best = min(valid, key=lambda j: (distances[row, j], j))
                hits.append(gallery.pids[best] == query.pids[i])
        return np.mean(hits)

    assert list(_shuffled_rank1s(distances, query, gallery, orders)) == [by_loop(order) for order in orders]
