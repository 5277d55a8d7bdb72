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


def test_informative_features_sit_above_the_interval_and_noise_inside(users):
    query, gallery = users
    null = rank1_chance(query.features, gallery.features, query, gallery, n_shuffles=200)
    observed = rank1(query.features, gallery.features, query, gallery)
    lo, hi = null["chance_ci"]
    assert lo <= null["chance"] <= hi < observed and null["p_value"] == pytest.approx(1 / 201)
    noise = np.random.default_rng(0).normal(size=query.features.shape)
    null = rank1_chance(noise, gallery.features, query, gallery, n_shuffles=200)
    assert null["p_value"] > 0.05
