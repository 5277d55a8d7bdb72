"""Known-pair and ciphertext-only attacks on the searchable ciphers, on synthetic features with distinct dimensions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from shufflebits.attacks.searchable import MomentAlignment, ProcrustesAlignment, mean_cosine
from shufflebits.ciphers.hazmat import experiment_cipher
from shufflebits.ciphers.matching import match_view
from shufflebits.registry import create_attack

D = 64


def features(n: int, seed: int) -> np.ndarray:
    """ReLU-like features whose dimensions differ in scale and offset (as a network's do)."""
    shape = np.random.default_rng(99)
    basis = shape.standard_normal((8, D)) * np.exp(shape.normal(0, 0.7, D))
    offset = shape.normal(0, 1, D)
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.standard_normal((n, 8)) @ basis + offset + 0.3 * rng.standard_normal((n, D)), 0)
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)).astype(np.float32)


def encrypted(name: str, x: np.ndarray) -> np.ndarray:
    return match_view(experiment_cipher(name, 0).encrypt(x))[0]


ATTACKER, USERS = features(1500, 1), features(3000, 2)


def test_procrustes_recovers_the_rotation_from_d_pairs_and_not_from_few():
    C, U = encrypted("rotation", ATTACKER), encrypted("rotation", USERS)
    attack = create_attack("invert-procrustes")
    assert attack.fit(C[:D], ATTACKER[:D]).score(U, USERS) > 0.999
    R = experiment_cipher("rotation", 0).matrix(D)
    np.testing.assert_allclose(attack.W_, R.T, atol=1e-4)
    assert clone(attack).fit(C[:8], ATTACKER[:8]).score(U, USERS) < 0.9


@pytest.mark.parametrize("name", ["dcpe", "dcpe-shuffle"])
def test_assignment_and_least_squares_recover_the_dcpe_shuffle_and_scale(name):
    cipher = experiment_cipher(name, 0)
    C, U = encrypted(name, ATTACKER), encrypted(name, USERS)
    attack = create_attack("invert-shuffle").fit(C[:32], ATTACKER[:32])
    # dimensions that stay under the perturbation (radius 1/4, about 0.03 per dimension) cannot be told apart
    live = (ATTACKER[:32].max(axis=0) > 0.1)[cipher.order(D)]
    assert live.sum() > D / 2 and attack.scale_ == pytest.approx(1.0, abs=0.05)
    assert np.array_equal(attack.source_[live], cipher.order(D)[live])
    # what is left is the perturbation: about the cosine that c / s with the true shuffle reaches
    ideal = mean_cosine(U[:, np.argsort(cipher.order(D))], USERS)
    assert attack.score(U, USERS) == pytest.approx(ideal, abs=0.002) and ideal > 0.9


def test_projection_learning_inverts_biohash_better_with_more_pairs():
    C, U = encrypted("biohash", ATTACKER), encrypted("biohash", USERS)
    baseline = mean_cosine(np.tile(ATTACKER.mean(0), (len(USERS), 1)), USERS)  # knowing only the population mean
    few, many = (create_attack("invert-biohash").fit(C[:k], ATTACKER[:k]).score(U, USERS) for k in (16, 1500))
    assert many > few and many > baseline + 0.1
    attack = create_attack("invert-biohash").fit(C, ATTACKER)
    forged = attack.hash(USERS)
    true_bits = U[:, attack.active_]
    assert (forged == true_bits).mean() > 0.85  # the learnt directions hash new faces like the key does


def test_moment_alignment_finds_most_of_the_shuffle_with_more_ciphertexts():
    cipher = experiment_cipher("dcpe-shuffle", 0)
    U = encrypted("dcpe-shuffle", USERS)
    right = [(MomentAlignment().fit(U[:n], reference=ATTACKER).source_ == cipher.order(D)).mean() for n in (100, 3000)]
    assert right[1] > right[0] and right[1] > 0.6


def test_procrustes_alignment_runs_and_estimators_refuse_before_fit():
    U = encrypted("rotation", USERS)
    attack = ProcrustesAlignment(rounds=2).fit(U[:500], reference=ATTACKER)
    np.testing.assert_allclose(attack.W_ @ attack.W_.T, np.eye(D), atol=1e-9)
    for name in (
        "invert-procrustes",
        "invert-shuffle",
        "invert-biohash",
        "align-moments",
        "align-procrustes",
        "align-biohash",
    ):
        with pytest.raises(NotFittedError):
            create_attack(name).predict(U[:2])


def test_nearest_neighbours_in_blocks_are_the_brute_force_ones(monkeypatch):
    from shufflebits.attacks import searchable

    monkeypatch.setattr(searchable, "NEAREST_BLOCK", 7)  # 100 rows: 15 blocks, the last one short
    X, P = USERS[:100].astype(np.float64), ATTACKER[:300].astype(np.float64)
    brute = np.argmin(((X[:, None, :] - P[None, :, :]) ** 2).sum(-1), axis=1)
    assert np.array_equal(searchable._nearest(X, P), brute)


def test_ciphertext_only_attack_knows_the_scheme_and_its_curve_fits_the_first_n_ciphertexts():
    from shufflebits.attacks.protection import alignment_curve, ciphertext_only_attack, mean_guess_cosine

    assert ciphertext_only_attack("chacha20") is None  # not matchable: nothing to align
    assert ciphertext_only_attack("dcpe").get_params() == {"shuffled": False}
    template = ciphertext_only_attack("dcpe-shuffle")
    U = encrypted("dcpe-shuffle", USERS)
    curve, last = alignment_curve(template, U, ATTACKER, U[:500], USERS[:500], [100, 3000])
    assert [n for n, _ in curve] == [100, 3000] and curve[1][1] > curve[0][1]
    assert np.array_equal(last.source_, MomentAlignment().fit(U, reference=ATTACKER).source_)
    assert not hasattr(template, "source_")  # each count fits a clone; the template stays unfitted
    # 100 ciphertexts misplace dimensions: worse than the attacker's mean feature for everyone; 3,000 beat it
    assert curve[0][1] < mean_guess_cosine(ATTACKER, USERS[:500]) < curve[1][1]


def test_biohash_alignment_aligns_the_hashes_as_signs_and_refuses_other_widths():
    from shufflebits.attacks.protection import ciphertext_only_attack
    from shufflebits.attacks.searchable import BioHashAlignment
    from shufflebits.errors import InvalidInputError

    bits = encrypted("biohash", USERS)  # b = d: every bit one direction of the keyed projection
    attack = ciphertext_only_attack("biohash").fit(bits[:2000], reference=ATTACKER)
    assert isinstance(attack, BioHashAlignment)
    signs = ProcrustesAlignment().fit(2 * bits[:2000] - 1, reference=ATTACKER)  # the rotation's alignment on +-1
    np.testing.assert_array_equal(attack.alignment_.W_, signs.W_)
    np.testing.assert_array_equal(attack.predict(bits[:5]), (2 * bits[:5] - 1) @ signs.W_.T)
    with pytest.raises(InvalidInputError, match="align-biohash aligns 64-bit hashes") as error:
        BioHashAlignment().fit(bits[:100, :32], reference=ATTACKER)
    assert "\n" not in str(error.value)
