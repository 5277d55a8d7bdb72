"""Key recovery from known plaintext–ciphertext pairs, checked against the key read back from the cipher."""

from __future__ import annotations

import numpy as np
import pytest

from shufflebits.attacks.keyrecovery import true_permutation
from shufflebits.attacks.knownpairs import BitPermutationPairs, compatible, known_pair_attack, pair_curve
from shufflebits.attacks.views import word_bits
from shufflebits.ciphers.catalogue import cipher_names, spec
from shufflebits.ciphers.hazmat import experiment_cipher
from test_attacks_helpers import one_torch_thread, relu_features  # noqa: F401 (autouse fixture)

D = 48
PERMUTED = {"shufflebits": False, "shufflebits-dim": True}  # cipher -> one permutation per dimension


def _full_range(n: int, seed: int) -> np.ndarray:
    """Signed float32 over the whole exponent range: every bit column varies, so pairs can pin every position."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, D)) * np.exp2(rng.uniform(-60, 60, (n, D)))).astype(np.float32)


@pytest.mark.parametrize("name", sorted(PERMUTED))
def test_64_pairs_give_the_exact_permutation(name):
    cipher = experiment_cipher(name, seed=4)
    plain = _full_range(64, seed=1)
    key = known_pair_attack(spec(name)).recover(plain, cipher.encrypt(plain).words())
    truth = true_permutation(cipher, D)  # read from the cipher by one-hot probes, not by the attack
    assert np.array_equal(np.broadcast_to(key.perm, (D, 32)), truth)
    assert key.confident.all()  # the pairs alone pinned every position
    users = _full_range(200, seed=2)
    assert np.array_equal(key.decrypt_words(cipher.encrypt(users).words()), users.view(np.uint32))


def test_the_attack_is_chosen_by_catalogue_field():
    for name in cipher_names():
        attack = known_pair_attack(spec(name))
        if spec(name).permutation in ("fixed", "per-dimension"):
            assert attack.per_dimension == PERMUTED[name]
        else:
            assert attack is None  # one-time permutations and stream ciphers: no key to read off pairs


def test_compatible_columns_follow_the_bits():
    plain = np.array([[0b101 << 29]], dtype=np.uint32)  # bits 0 and 2 set (most significant first)
    cipher = np.array([[0b011 << 29]], dtype=np.uint32)  # bits 1 and 2 set
    allowed = compatible(plain, cipher, per_dimension=False)[0]
    assert allowed[1, 0] and allowed[2, 2] and allowed[1, 2] and not allowed[0, 0] and not allowed[1, 1]
    assert allowed[0, 1] and allowed[31, 31]  # zero columns pair with zero columns


def test_ties_the_pairs_leave_go_to_statistics_and_decrypt_alike():
    """Post-ReLU features between 2^-15 and 4 hold exponent bits 2-4 equal (1, or 0 on zeros): no pair parts them."""
    cipher = experiment_cipher("shufflebits", seed=5)
    attacker, users = relu_features(64, D, seed=1), relu_features(500, D, seed=2)
    A, U = cipher.encrypt(attacker).words(), cipher.encrypt(users).words()
    attack = BitPermutationPairs(per_dimension=False, ciphertexts=np.concatenate([A, U]), reference=attacker)
    key = attack.recover(attacker[:16], A[:16])
    columns = word_bits(attacker[:16].view(np.uint32)).reshape(-1, 32).T  # plaintext bit columns over the pairs
    _, which, counts = np.unique(columns, axis=0, return_inverse=True, return_counts=True)
    assert np.array_equal(key.confident, counts[which.ravel()] == 1)  # pinned exactly when no other column matches
    assert not key.confident[2:5].any() and key.confident[5:].all()  # low exponent and mantissa bits vary
    result = attack.evaluate(key, cipher, users, U)
    assert result["bits_determined"] == key.confident.sum() and result["value"] >= result["bits_determined"]
    assert result["words_exact"] > 0.99  # tied columns hold the same bits on (nearly) every value
    assert attack.validate(key, attacker[16:], A[16:]) > 0.99


def test_more_pairs_never_lose_determined_positions():
    cipher = experiment_cipher("shufflebits-dim", seed=6)
    attacker, users = relu_features(200, D, seed=1), relu_features(100, D, seed=2)
    A, U = cipher.encrypt(attacker).words(), cipher.encrypt(users).words()
    curve = pair_curve(BitPermutationPairs(per_dimension=True), cipher, attacker, A, users, U, (1, 8, 64, 500), 0)
    assert curve.pairs == (1, 8, 64)  # 500 is more than the attacker holds
    determined = [e["bits_determined"] for e in curve.evaluation]
    assert determined == sorted(determined) and determined[0] < determined[-1]
    for key, e in zip(curve.keys, curve.evaluation):  # evaluate counts exactly the positions that match the key
        assert e["value"] == pytest.approx((key.perm == true_permutation(cipher, D)).sum(axis=1).mean())
