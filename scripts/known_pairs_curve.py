"""Key recovery on a study's cached features: from ciphertext statistics alone, and from k known pairs.

    PYTHONPATH=src python scripts/known_pairs_curve.py OUT/cache/extract_features-*/features.npz

The attacker's features are its own images (it holds their ciphertexts under
the users' key); the users' query and gallery features are what leaks. For every
catalogue cipher with a known-pair attack, prints the statistics-only recovery
(the matrix's ``key-recovery`` row) and the known-pair curve (its
``known-pairs`` rows): bit positions placed exactly, positions that decrypt
the users' values alike (equivalent), positions the pairs alone pin down, and
the fraction of the users' words (and non-zero words) decrypted bit-exactly.
The README's key-recovery figures come from this script.
"""

from __future__ import annotations

import argparse

import numpy as np

from shufflebits.attacks.keyrecovery import recover_permutation, score_recovery, true_permutation
from shufflebits.attacks.knownpairs import exact_words, known_pair_attack, pair_curve
from shufflebits.ciphers.catalogue import cipher_names, spec
from shufflebits.ciphers.hazmat import experiment_cipher

PAIRS = (1, 2, 4, 8, 16, 32, 64)


def _line(label: str, result: dict) -> str:
    return (
        f"  {label:<18} {result['value']:6.2f} {result['bits_equivalent']:11.2f} {result['bits_determined']:11.2f} "
        f"{result['words_exact']:12.4f} {result['nonzero_words_exact']:16.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("features", help="features.npz of a study's extract_features stage")
    parser.add_argument("--pairs", type=int, nargs="+", default=list(PAIRS))
    parser.add_argument("--seed", type=int, default=0, help="the study's seed (keys and the order of the pairs)")
    args = parser.parse_args()
    data = np.load(args.features)
    attacker = data["attacker_features"]
    users = np.concatenate([data["user_query_features"], data["user_gallery_features"]])
    print(f"{len(attacker)} attacker and {len(users)} user features of {attacker.shape[1]} dimensions")
    print(
        f"  {'attack':<18} {'exact':>6} {'equivalent':>11} {'determined':>11} {'words exact':>12} "
        f"{'non-zero exact':>16}   (bit positions of 32; fractions of the users' words)"
    )
    for name in cipher_names():
        cipher = experiment_cipher(name, args.seed)
        A, U = (cipher.encrypt(np.ascontiguousarray(x, dtype=np.float32)).words() for x in (attacker, users))
        attack = known_pair_attack(spec(name), ciphertexts=np.concatenate([A, U]), reference=attacker)
        if attack is None:
            continue
        print(name)
        statistics = recover_permutation(np.concatenate([A, U]), attacker, per_dimension=attack.per_dimension)
        scores = score_recovery(statistics, true_permutation(cipher, attacker.shape[1]), users)
        exact = exact_words(statistics, U, users)
        nonzero = users.view(np.uint32) != 0
        print(
            _line(
                "statistics only",
                {
                    "value": scores["bits_exact"],
                    "bits_equivalent": scores["bits_equivalent"],
                    "bits_determined": 0.0,
                    "words_exact": float(exact.mean()),
                    "nonzero_words_exact": float(exact[nonzero].mean()),
                },
            )
        )
        curve = pair_curve(attack, cipher, attacker, A, users, U, args.pairs, args.seed)
        for k, result in zip(curve.pairs, curve.evaluation):
            print(_line(f"{k} known pairs", result))


if __name__ == "__main__":
    main()
