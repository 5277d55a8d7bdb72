"""Make a model output ciphertext: ``EncryptedOutput(model, cipher)``.

The wrapped module runs the model, reinterprets its feature tensor as integers
and encrypts it with the torch kernels on the same device, so plaintext features
never leave the graph and never visit the host. Works under ``torch.no_grad``,
in ``eval()``, on CPU and CUDA.

Supported ciphers: every format-preserving one (output: a ciphertext tensor of
the features' shape and dtype). Fixed and per-dimension ShuffleBits need no
nonces (``nonces`` is None). ChaChaPad and one-time ShuffleBits are nonce
ciphers: the output also carries the per-vector nonces (uint8 ``(n, 16)``,
drawn on the host from the cipher's nonce source (``os.urandom``) and copied to
the device). One-time mode also uploads its AES-CTR switch keystream (18 bytes
per float32) and runs the Beneš stages on the device; ChaChaPad XORs CPU
tensors with OpenSSL's keystream and computes ChaCha20 in torch on other
devices. None of this involves the features. AES-GCM is not format-preserving and has no torch kernel: encrypt
on the host with ``cipher.encrypt``.

``torch.compile``: compiling the wrapper compiles the model; the encryption step
is excluded from tracing (``torch.compiler.disable``: key schedules and nonces
are host-side Python) and runs its torch kernels eagerly on the same device.
The kernels themselves (``kernels_torch``) also compile: ``tests/test_nn.py``
checks them under ``torch.compile`` against the numba and OpenSSL paths.
For a deployable model whose graph outputs ciphertext, see ``shufflebits export``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .ciphers import Cipher, Sealed, cipher_names, spec
from .ciphers.words import to_words
from .errors import ShuffleBitsError


class EncryptedFeatures(NamedTuple):
    """Output of ``EncryptedOutput``: ciphertext tensor and nonces (None for fixed / per-dimension)."""

    ciphertext: torch.Tensor
    nonces: torch.Tensor | None


class EncryptedOutput(torch.nn.Module):
    """Wrap ``model`` (features out) so its forward returns ``EncryptedFeatures``."""

    def __init__(self, model: torch.nn.Module, cipher: Cipher) -> None:
        super().__init__()
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not hasattr(cipher, "encrypt_tensor"):
            in_graph = [name for name in cipher_names() if hasattr(spec(name).resolve(), "encrypt_tensor")]
            raise ShuffleBitsError(
                f"{cipher.name} cannot run in-graph; use one of {', '.join(in_graph)} "
                "(or encrypt on the host with cipher.encrypt)"
            )
        self.model = model
        self.cipher = cipher

    def forward(self, *args, **kwargs) -> EncryptedFeatures:
        features = self.model(*args, **kwargs)
        if not isinstance(features, torch.Tensor):
            raise ShuffleBitsError(
                f"the wrapped model must return a feature tensor, got {type(features).__name__} "
                "(in train() many re-ID models return (logits, features); use eval())"
            )
        return self._encrypt(features.detach())

    @torch.compiler.disable
    def _encrypt(self, features: torch.Tensor) -> EncryptedFeatures:
        ciphertext, nonces = self.cipher.encrypt_tensor(features)
        return EncryptedFeatures(ciphertext, nonces)

    def seal(self, output: EncryptedFeatures) -> Sealed:
        """Move one output to the host as ``Sealed`` (for ``cipher.decrypt`` or encrypted files)."""
        words, dtype = to_words(output.ciphertext)
        nonces = None if output.nonces is None else output.nonces.cpu().numpy()
        return Sealed.from_words(
            words, cipher=self.cipher.name, key_fingerprint=self.cipher.key.fingerprint, dtype=dtype, nonces=nonces
        )
