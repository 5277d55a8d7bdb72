"""The nn-lookup baseline, the success-attack rate at a fixed false-match rate, and the validation rule."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.estimator_checks import parametrize_with_checks

from shufflebits.attacks import NearestLookup, Reconstructor, TransferModel, match_threshold, success_rate
from shufflebits.attacks.reconstruction_cells import Candidate, attacker_split, choose, judged_users
from shufflebits.attacks.reconstruction_eval import evaluate_reconstruction
from shufflebits.errors import ShuffleBitsError
from shufflebits.registry import available, create_attack
from test_attacks_estimators import IMAGE_TARGET, RECONSTRUCTOR_FAILURES
from test_attacks_helpers import ToyEmbed, make_world, one_torch_thread  # noqa: F401 (autouse fixture)


@pytest.fixture(scope="module")
def world():
    return make_world(identities=40, per_id=4, d=48, size=(16, 8))


@parametrize_with_checks(
    [NearestLookup()],
    legacy=False,
    expected_failed_checks=lambda _: dict.fromkeys(RECONSTRUCTOR_FAILURES, IMAGE_TARGET),
    xfail_strict=True,
)
def test_lookup_follows_sklearn_api_conventions(estimator, check):
    check(estimator)


def test_lookup_is_registered():
    assert "nn-lookup" in available("attack")
    assert isinstance(create_attack("nn-lookup", view="invariants"), NearestLookup)


def test_copies_of_attacker_images_come_back_exactly_at_distance_zero(world):
    """Users who are copies of attacker images: the lookup returns those very images, which re-embed exactly."""
    attacker, _, _, embed = world
    rows = np.random.default_rng(1).permutation(len(attacker))[:40]
    users = dataclasses.replace(
        attacker,
        features=attacker.features[rows],
        labels=attacker.labels[rows],
        pids=attacker.pids[rows],
        camids=attacker.camids[rows],
        images=attacker.images[rows],
    )
    lookup = NearestLookup().fit(attacker.features, attacker.images)
    distance, index = lookup.kneighbors(users.features)
    assert np.array_equal(index, rows) and np.all(distance < 1e-12)
    out = lookup.predict(users.features)
    assert np.array_equal(out, users.images)
    result = evaluate_reconstruction(out, users, embed)
    assert result["cosine_distance"] < 1e-6 < result["chance"]


def test_lookup_agrees_with_a_brute_force_cosine_search(world):
    attacker, query, _, _ = world
    lookup = NearestLookup().fit(attacker.features, attacker.images)
    distance, index = lookup.kneighbors(query.features)
    reference = NearestNeighbors(n_neighbors=1, metric="cosine", algorithm="brute").fit(attacker.features)
    ref_distance, ref_index = reference.kneighbors(query.features)
    assert np.array_equal(index, ref_index[:, 0])
    assert np.allclose(distance, ref_distance[:, 0], atol=1e-6)  # sklearn works in float32
    assert lookup.score(query.features, query.images) == pytest.approx(
        -np.mean((attacker.images[index].astype(np.float64) - query.images) ** 2)
    )


def test_lookup_on_a_ciphertext_view_searches_in_that_view(world):
    from shufflebits.attacks.views import invariant_view
    from shufflebits.ciphers.hazmat import experiment_cipher

    attacker, query, _, _ = world
    cipher = experiment_cipher("shufflebits", 0)
    A, Q = (cipher.encrypt(s.features).words() for s in (attacker, query))
    lookup = NearestLookup(view="invariants").fit(A, attacker.images)
    reference = NearestNeighbors(n_neighbors=1, metric="cosine", algorithm="brute").fit(invariant_view(A))
    assert np.array_equal(lookup.kneighbors(Q)[1], reference.kneighbors(invariant_view(Q))[1][:, 0])


def test_lookup_refuses_images_that_do_not_fit(world):
    attacker = world[0]
    with pytest.raises(ShuffleBitsError):
        NearestLookup().fit(attacker.features, attacker.images[:-1])


def test_threshold_admits_the_false_match_rate_of_impostor_pairs():
    rng = np.random.default_rng(0)
    qf, gf = rng.normal(size=(60, 8)), rng.normal(size=(300, 8))
    query = type("Set", (), {"features": qf, "pids": np.arange(60) % 20})()
    gallery = type("Set", (), {"features": gf, "pids": np.arange(300) % 20})()
    t = match_threshold(query, gallery, fmr=0.01)
    q = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    g = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    impostor = [q[i] @ g[j] for i in range(60) for j in range(300) if query.pids[i] != gallery.pids[j]]
    assert t["impostor_pairs"] == len(impostor) == 60 * 300 * 19 // 20
    assert np.mean(np.array(impostor) > t["threshold"]) == pytest.approx(0.01, abs=1 / len(impostor))
    assert success_rate(qf, qf, t["threshold"]) == 1.0  # a feature matches itself
    assert success_rate(-qf, qf, t["threshold"]) == 0.0


def test_success_rate_and_transfer_figures_of_perfect_and_shuffled_reconstructions(world):
    _, query, gallery, embed = world
    other = ToyEmbed(32, (16, 8), seed=5)  # a second "re-ID model" with its own features
    transfer = TransferModel("toy-5", other, other(query.images), other(gallery.images))
    perfect = evaluate_reconstruction(query.images, query, embed, gallery=gallery, transfer=transfer)
    assert perfect["success_rate"] == 1.0 and perfect["success_chance"] < 0.2
    assert perfect["transfer"]["success_rate"] == 1.0 and perfect["transfer"]["model"] == "toy-5"
    assert perfect["fmr"] == 1e-3 and perfect["impostor_pairs"] > 0
    wrong = query.images[np.roll(np.arange(len(query)), 2)]  # the next person (two query images each)
    shifted = evaluate_reconstruction(wrong, query, embed, gallery=gallery, transfer=transfer)
    assert shifted["success_rate"] < 0.2 and shifted["transfer"]["success_rate"] < 0.2


def test_a_capped_matrix_judges_a_seeded_sample_of_users_each_against_its_own_reconstruction(world):
    """``recon_queries``: the rows count the sampled users, and users who copy attacker images come back at
    distance 0 only if every judged user stays aligned with its own reconstruction."""
    from shufflebits.attacks.leakage import leakage_matrix
    from shufflebits.study.profiles import PROFILES

    attacker, query, gallery, embed = world
    train, _ = attacker_split(attacker, seed=0)
    copied = train[: len(query)]
    users = dataclasses.replace(query, features=attacker.features[copied], images=attacker.images[copied])
    cap = len(query) // 2
    profile = dataclasses.replace(PROFILES["smoke"].attacks, recon_queries=cap)
    result = leakage_matrix(attacker, users, gallery, embed, profile=profile, seed=0, ciphers=(), progress=False)
    rows = [r for r in result.rows if r.cipher == "plaintext" and r.metric.startswith("recon_")]
    assert rows and {r.n for r in rows} == {cap}
    distance = next(r for r in rows if r.metric == "recon_cosine_distance")
    assert distance.details["candidates"]["nn-lookup"]["value"] < 1e-6 < distance.chance
    assert judged_users(len(query), cap, 0).tolist() == judged_users(len(query), cap, 0).tolist() != list(range(cap))
    assert judged_users(len(query), None, 0).tolist() == list(range(len(query)))


def test_a_decoder_counts_only_if_it_beats_the_lookup_on_validation():
    lookup, decoder = NearestLookup(), Reconstructor()
    empty = np.zeros((1, 1))
    candidates = {"recon-autoencoder": Candidate(decoder, empty, empty), "nn-lookup": Candidate(lookup, empty, empty)}
    assert choose(candidates, {"recon-autoencoder": 0.2, "nn-lookup": 0.2}) == "nn-lookup"  # a tie is no win
    assert choose(candidates, {"recon-autoencoder": 0.19, "nn-lookup": 0.2}) == "recon-autoencoder"
    assert choose(candidates, {"recon-autoencoder": 0.3, "nn-lookup": 0.2}) == "nn-lookup"
