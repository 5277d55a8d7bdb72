"""Attacks on leaked feature vectors, and on their ciphertexts.

Attribute inference and image reconstruction (the paper's attacks), adaptive
attacks for an attacker who knows the cipher but not the key (same-key
learning on ciphertext views, permutation invariants, ShuffleBits key
recovery from statistics alone and from known plaintext–ciphertext pairs),
and the leakage matrix that runs them all against every cipher.
Importing this package registers ``attr-mlp``, ``attr-paper``,
``recon-autoencoder``, ``recon-gan`` and the ``nn-lookup`` baseline for
``create_attack``, and the attacks on the searchable ciphers (``searchable``):
``invert-procrustes``, ``invert-shuffle``, ``invert-biohash``, ``align-moments``,
``align-procrustes``.
"""

from . import scorereveal, searchable  # noqa: F401 (register the score-reveal and searchable-cipher attacks)
from .attribute import AttributeInference
from .decoders import SurrogatePerceptual
from .keyrecovery import RecoveredKey, recover_permutation, score_recovery, true_permutation
from .knownpairs import KNOWN_PAIR_ATTACKS, BitPermutationPairs, known_pair_attack
from .leakage import leakage_matrix
from .leakage_files import leakage_markdown, read_leakage, write_leakage
from .lookup import NearestLookup
from .reconstruction import Reconstructor
from .reconstruction_eval import (
    TransferModel,
    evaluate_reconstruction,
    grid_png,
    match_threshold,
    reconstruction_grid,
    save_grid,
    success_rate,
)
from .scoring import attribute_scores, balanced_accuracy, permutation_null
from .types import AttackProfile, LabelledFeatures, LeakageResult, LeakageRow
from .views import apply_view, bit_view, float_view, invariant_view, partial_decrypt, popcount_view, zero_view

__all__ = [
    "KNOWN_PAIR_ATTACKS",
    "AttackProfile",
    "AttributeInference",
    "BitPermutationPairs",
    "LabelledFeatures",
    "LeakageResult",
    "LeakageRow",
    "NearestLookup",
    "Reconstructor",
    "RecoveredKey",
    "SurrogatePerceptual",
    "TransferModel",
    "apply_view",
    "attribute_scores",
    "balanced_accuracy",
    "bit_view",
    "evaluate_reconstruction",
    "float_view",
    "grid_png",
    "invariant_view",
    "known_pair_attack",
    "leakage_markdown",
    "leakage_matrix",
    "match_threshold",
    "partial_decrypt",
    "permutation_null",
    "popcount_view",
    "read_leakage",
    "reconstruction_grid",
    "recover_permutation",
    "save_grid",
    "score_recovery",
    "success_rate",
    "true_permutation",
    "write_leakage",
    "zero_view",
]
