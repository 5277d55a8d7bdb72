"""Key recovery from known plaintext–ciphertext pairs.

Under the threat model the attacker encrypts its own images through the
encrypting black box, so it holds pairs under the users' key. A bit
permutation moves bit columns intact: ciphertext position ``j`` can only hold a
plaintext position whose column matches column ``j`` on every pair. Columns the
pairs leave tied (identical on every pair, such as the sign bit of post-ReLU
features) are placed by the ciphertext statistics of ``keyrecovery``, within
what the pairs allow; ties that no data separates decrypt every such word alike.

Each kind of key has its own attack, found through a catalogue field
(``KNOWN_PAIR_ATTACKS``): a keyed transform added later (a rotation, a dimension
shuffle) declares itself in the catalogue and adds one entry and one class with
``recover``, ``validate`` and ``evaluate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from ..errors import ShuffleBitsError
from .keyrecovery import RecoveredKey, bit_statistics, score_recovery, solve, true_permutation
from .views import WORD_BITS, as_words, word_bits


def _plain_words(features: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(features, dtype=np.float32).view(np.uint32)


def compatible(plain_words: np.ndarray, cipher_words: np.ndarray, per_dimension: bool) -> np.ndarray:
    """``allowed[e, j, k]``: ciphertext column ``j`` equals plaintext column ``k`` on every pair.

    ``e`` runs over the key's permutations: one for a fixed key (all words share
    it), one per dimension otherwise.
    """
    plain, cipher = word_bits(as_words(plain_words)), word_bits(as_words(cipher_words))
    if plain.shape != cipher.shape:
        raise ShuffleBitsError(f"{plain.shape[:2]} plaintexts do not pair with {cipher.shape[:2]} ciphertexts")
    if not per_dimension:
        plain, cipher = plain.reshape(1, -1, WORD_BITS), cipher.reshape(1, -1, WORD_BITS)
    else:
        plain, cipher = plain.transpose(1, 0, 2), cipher.transpose(1, 0, 2)  # (d, pairs, 32)
    plain_columns = np.packbits(plain, axis=1).transpose(0, 2, 1)  # (e, 32, bytes)
    cipher_columns = np.packbits(cipher, axis=1).transpose(0, 2, 1)
    return (cipher_columns[:, :, None, :] == plain_columns[:, None, :, :]).all(axis=-1)


def exact_words(key, cipher_words: np.ndarray, plaintext: np.ndarray) -> np.ndarray:
    """Which words ``key`` decrypts bit-exactly, ``(n, d)`` bool (integer comparison only)."""
    return key.decrypt_words(as_words(cipher_words)) == _plain_words(plaintext)


def validate_key(key, plaintext: np.ndarray, cipher_words: np.ndarray) -> float:
    """What the attacker can check on its own pairs: the fraction of their words ``key`` decrypts bit-exactly."""
    return float(exact_words(key, cipher_words, plaintext).mean())


class BitPermutationPairs:
    """Known-pair attack on a ShuffleBits key: one permutation for every word, or one per dimension.

    ``ciphertexts`` (any words under the key, paired or not) and ``reference``
    (the attacker's plaintext features from the same model) give the statistics
    that break the ties the pairs leave; without them a tie is settled by the
    assignment solver's fixed order.
    """

    metric = "key_bits_recovered"

    def __init__(self, per_dimension: bool, ciphertexts=None, reference=None):
        self.per_dimension = per_dimension
        self.prior = None if ciphertexts is None else bit_statistics(ciphertexts, reference, per_dimension)

    def recover(self, plaintext: np.ndarray, cipher_words: np.ndarray) -> RecoveredKey:
        """The permutation(s) from pairs ``plaintext[i]`` (float32 features) -> ``cipher_words[i]``.

        ``confident`` marks plaintext positions the pairs alone pin to one ciphertext position.
        """
        allowed = compatible(_plain_words(plaintext), cipher_words, self.per_dimension)
        perm = np.empty((len(allowed), WORD_BITS), dtype=np.int64)
        for e, mask in enumerate(allowed):
            if self.prior is None:
                zeros, ones = np.zeros((WORD_BITS, WORD_BITS)), np.ones((WORD_BITS, WORD_BITS))
                perm[e] = solve(zeros, zeros, ones, refine=False, allowed=mask)
            else:
                C, M, V = (stat if stat.ndim == 2 else stat[e] for stat in self.prior)
                perm[e] = solve(C, M, V, refine=True, allowed=mask)
        confident = allowed.sum(axis=1) == 1  # (e, 32 plaintext positions)
        if not self.per_dimension:
            perm, confident = perm[0], confident[0]
        return RecoveredKey(perm=perm, confident=confident, n_words=int(np.asarray(cipher_words).size))

    def validate(self, key: RecoveredKey, plaintext: np.ndarray, cipher_words: np.ndarray) -> float:
        """What the attacker can check: the fraction of its own held-out pairs' words decrypted bit-exactly."""
        return validate_key(key, plaintext, cipher_words)

    def evaluate(self, key: RecoveredKey, cipher, plaintext: np.ndarray, cipher_words: np.ndarray) -> dict:
        """Evaluation only (reads the true key through ``cipher``): the row's ``value`` and details.

        ``value``: bit positions placed exactly (of 32, mean over the key's
        permutations); ``words_exact`` / ``nonzero_words_exact``: the fraction of
        the users' words (``cipher_words`` of ``plaintext``) decrypted bit-exactly;
        ``bits_determined``: positions the pairs alone pinned down.
        """
        plaintext = np.ascontiguousarray(plaintext, dtype=np.float32)
        scores = score_recovery(key, true_permutation(cipher, plaintext.shape[1]), plaintext)
        exact = exact_words(key, cipher_words, plaintext)
        nonzero = _plain_words(plaintext) != 0
        return {
            "value": scores.pop("bits_exact"),
            "of": WORD_BITS,
            "bits_determined": scores.pop("bits_confident"),
            **scores,
            "words_exact": float(exact.mean()),
            "nonzero_words_exact": float(exact[nonzero].mean()) if nonzero.any() else 1.0,
        }


# (catalogue field, value) -> the known-pair attack on that kind of key; decided by field, never by cipher name.
KNOWN_PAIR_ATTACKS = {
    ("permutation", "fixed"): partial(BitPermutationPairs, per_dimension=False),
    ("permutation", "per-dimension"): partial(BitPermutationPairs, per_dimension=True),
}


def known_pair_attack(cipher_spec, **kwargs):
    """The known-pair attack for a catalogue entry's key (``kwargs`` go to its constructor), or ``None``."""
    for (field, value), factory in KNOWN_PAIR_ATTACKS.items():
        if getattr(cipher_spec, field, None) == value:
            return factory(**kwargs)
    return None


@dataclass(frozen=True)
class PairCurve:
    """What ``pair_curve`` measured for each number of pairs, in the order given."""

    pairs: tuple[int, ...]
    keys: tuple  # recovered keys
    validation: tuple[float, ...]  # held-out attacker words decrypted bit-exactly
    evaluation: tuple[dict, ...]  # ``evaluate`` on the users' words


def pair_curve(attack, cipher, attacker_plain, attacker_words, users_plain, users_words, pairs, seed) -> PairCurve:
    """Recover the key from the first ``k`` of one seeded order of the attacker's pairs, for each ``k``.

    The pairs are nested (every ``k`` extends the smaller ones), and the rows
    the attack did not use are its validation split; ``k`` above the attacker's
    rows minus one is left out.
    """
    order = np.random.default_rng(seed).permutation(len(attacker_plain))
    ks = tuple(int(k) for k in pairs if 0 < k < len(order))
    keys, validation, evaluation = [], [], []
    for k in ks:
        used, held = order[:k], order[k:]
        key = attack.recover(attacker_plain[used], attacker_words[used])
        keys.append(key)
        validation.append(attack.validate(key, attacker_plain[held], attacker_words[held]))
        evaluation.append(attack.evaluate(key, cipher, users_plain, users_words))
    return PairCurve(pairs=ks, keys=tuple(keys), validation=tuple(validation), evaluation=tuple(evaluation))
