"""INSECURE, paper-compatible ShuffleBits: the authors' seed keys and their permutation.

Like pyca/cryptography's ``hazmat.decrepit``: kept because the paper's
ciphertexts must stay readable and reproducible, quarantined because a seed key
has only the seed's entropy (brute-forcing the seed recovers the key) and one
permutation for every element. ``ShuffleBits.from_seed`` and ``shufflebits keygen
--seed`` come here; nothing on a deployment path imports this module.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError
from .keys import Key

PAPER_CIPHER = "shufflebits"  # the fixed mode, the only one the authors' code has


def seed_key(seed: int) -> Key:
    """INSECURE: the authors' key for ``seed`` (fixed mode), for compatibility only."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise InvalidInputError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return Key(PAPER_CIPHER, seed.to_bytes(8, "little"), seed=seed)


def paper_permutation(seed: int, bits: int) -> np.ndarray:
    """The authors' ``idx``: ``np.arange(bits)`` shuffled by ``default_rng(seed)`` (float16 / float64
    use the same recipe on 16 or 64 positions)."""
    idx = np.arange(bits)
    np.random.default_rng(seed).shuffle(idx)
    return idx
