"""INSECURE helpers for experiments, kept out of the public ``shufflebits.ciphers`` namespace.

Like pyca/cryptography's hazmat layer: these make choices a deployment must
never make (deterministic keys and nonces), so that a study reruns to the same
figures. Only the leakage matrix and the tests import this module; the service,
``nn`` and the CLI never do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from .catalogue import spec
from .keys import Key


def experiment_nonces(seed: int) -> Callable[[int], bytes]:
    """INSECURE for deployment: a deterministic nonce stream, for repeatable studies only.

    Nonces stay unique within one stream (a SHA-256 counter), so measurements
    are unaffected, but anyone who knows ``seed`` knows every nonce; a second
    stream with the same seed under the same key would reuse nonces.
    """
    counter = 0

    def draw(size: int) -> bytes:
        nonlocal counter
        out = b""
        while len(out) < size:
            out += hashlib.sha256(f"shufflebits/experiment-nonces/{seed}/{counter}".encode()).digest()
            counter += 1
        return out[:size]

    return draw


def experiment_cipher(name: str, seed: int, **params):
    """INSECURE: cipher ``name`` under a key and a nonce stream derived from ``seed``, so a rerun
    sees the same ciphertexts (an experiment, not a deployment). The public ``create_cipher``
    takes no nonce source: only this path swaps ``os.urandom`` out. ``params`` are the scheme's
    own (DCPE's ``beta``, BioHash's ``bits``: the frontier sweep), carried by the key; its
    material does not depend on them (its fingerprint does)."""
    cipher_class = spec(name).resolve()
    material = hashlib.sha256(f"shufflebits/leakage/{seed}/{name}".encode()).digest()
    return cipher_class(Key(name, material, params=params), nonce_source=experiment_nonces(seed))
