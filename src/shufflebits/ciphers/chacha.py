"""ChaChaPad: a format-preserving one-time pad from the ChaCha20 keystream.

Each vector's bits are XOR-ed with RFC 8439 ChaCha20 keystream under the key and
the vector's 16-byte nonce (4-byte little-endian block counter || 12-byte nonce,
cryptography's layout). A batch gets one random 12-byte nonce and consecutive,
block-aligned counters, so one OpenSSL call covers the whole batch while every
vector still has its own keystream. The ChaCha20 key is an HKDF subkey of the
key (``stream_key``), never the master material. Small inputs (up to
``SMALL_BLOCKS`` blocks, a few vectors) take ``kernels_numba.chacha20_rows``
instead, the same keystream without OpenSSL's per-call context setup
(single-vector latency). Confidential, not authenticated on its own:
``encrypt(..., authenticate=True)`` adds a seal tag (``sealing.py``) and
encrypted files an HMAC (``files.py``).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from ..errors import ShuffleBitsError
from . import prf
from .base import Cipher, Sealed
from .keys import Key, generate_key

_CHUNK_BYTES = 1 << 26
SUBKEY_LABEL = "chacha20"
# Up to this many 64-byte blocks (32 KiB of keystream) numba's ChaCha20 is faster
# than setting up an OpenSSL context (about 10 us per call).
SMALL_BLOCKS = 512


class ChaChaPad(Cipher):
    """XOR with ChaCha20 keystream; float in, same-dtype float out."""

    def __init__(self, key: Key, *, nonce_source=None) -> None:
        super().__init__(key, nonce_source=nonce_source)
        self._cache: dict = {}

    @cached_property
    def stream_key(self) -> bytes:
        """The 32-byte ChaCha20 key of every kernel (OpenSSL, numba, torch, ONNX): HKDF subkey ``SUBKEY_LABEL``."""
        return self.key.subkey(SUBKEY_LABEL)

    @classmethod
    def generate_key(cls) -> Key:
        return generate_key("chacha20")

    def _encrypt_words(self, words, dtype):
        blocks = -(-words.shape[1] * words.itemsize // prf.BLOCK)
        nonces = prf.batch_nonces(words.shape[0], blocks, self.nonce_source)
        return self._xor(words, nonces, self._fresh_runs(words.shape[0], blocks)), nonces

    @staticmethod
    def _fresh_runs(n: int, blocks: int) -> list[tuple[int, int]]:
        """The runs of ``prf.batch_nonces``' layout, known without inspecting the nonces (single-vector latency)."""
        step = max(1, (2**32) // max(blocks, 1))
        return [(start, min(n, start + step)) for start in range(0, n, step)]

    def _decrypt_words(self, words, sealed: Sealed):
        if sealed.nonces is None or sealed.nonces.shape[1:] != (prf.NONCE_BYTES,):
            raise ShuffleBitsError("chacha20 ciphertext needs uint8 (n, 16) nonces")
        return self._xor(words, sealed.nonces)

    def _xor(self, words: np.ndarray, nonces: np.ndarray, runs=None) -> np.ndarray:
        n, d = words.shape
        row_bytes = d * words.itemsize
        blocks = -(-row_bytes // prf.BLOCK)
        out = np.empty_like(words)
        raw_in = words.view(np.uint8).reshape(n, row_bytes)
        raw_out = out.view(np.uint8).reshape(n, row_bytes)
        if 0 < n * blocks <= SMALL_BLOCKS:
            return self._xor_small(words, nonces, blocks, checked=runs is not None)
        rows_per_chunk = max(1, _CHUNK_BYTES // max(1, blocks * prf.BLOCK))
        for start, stop in runs if runs is not None else prf.contiguous_runs(nonces, blocks):
            for a in range(start, stop, rows_per_chunk):
                b = min(stop, a + rows_per_chunk)
                if row_bytes % prf.BLOCK == 0:  # rows are block-aligned: OpenSSL XORs in place
                    prf.chacha20_xor_into(self.stream_key, bytes(nonces[a]), raw_in[a:b], raw_out[a:b])
                else:
                    pad = prf.keystream(self.stream_key, bytes(nonces[a]), (b - a) * blocks * prf.BLOCK)
                    np.bitwise_xor(raw_in[a:b], pad.reshape(b - a, -1)[:, :row_bytes], out=raw_out[a:b])
        return out

    def _xor_small(self, words: np.ndarray, nonces: np.ndarray, blocks: int, checked: bool) -> np.ndarray:
        """``_xor`` through numba: each row's blocks from its own nonce (any nonces, no runs)."""
        from . import kernels_numba

        if not checked:
            prf.contiguous_runs(nonces, blocks)  # refuses counters that would wrap 32 bits
        if "key_words" not in self._cache:
            self._cache["key_words"] = np.frombuffer(self.stream_key, dtype="<u4").astype(np.uint32)
        starts = np.ascontiguousarray(nonces).view("<u4").astype(np.uint32, copy=False)
        stream = np.empty((len(words), 16 * blocks), dtype="<u4")
        kernels_numba.chacha20_rows(self._cache["key_words"], starts, blocks, stream)
        row_bytes = words.shape[1] * words.itemsize
        return words ^ stream.view(np.uint8)[:, :row_bytes].view(words.dtype)

    def encrypt_tensor(self, x):
        """Torch path (CPU or CUDA, in-graph): ``(ciphertext tensor, nonces uint8 (n, 16) tensor)``.

        On CPU the tensor's memory is XOR-ed by OpenSSL's ChaCha20 (the same
        call as ``encrypt``; several times faster than ChaCha20 in torch ops);
        on other devices ``kernels_torch.xor_pad`` computes the keystream there.
        """
        import torch

        from . import kernels_torch

        words = kernels_torch.int_view(x)
        if words.ndim != 2:
            raise ShuffleBitsError(f"chacha20 needs (n, d) tensors, got {tuple(words.shape)}")
        blocks = -(-words.shape[1] * words.element_size() // prf.BLOCK)
        nonces = prf.batch_nonces(words.shape[0], blocks, self.nonce_source)
        if words.device.type == "cpu":
            host = words.detach().numpy().view(f"u{words.element_size()}")
            pad = self._xor(host, nonces, self._fresh_runs(words.shape[0], blocks))
            return torch.from_numpy(pad).view(x.dtype), torch.from_numpy(nonces)
        device_nonces = torch.from_numpy(nonces).to(words.device)
        if ("torch key", str(words.device)) not in self._cache:
            self._cache["torch key", str(words.device)] = kernels_torch.key_tensor(self.stream_key, words.device)
        key_words = self._cache["torch key", str(words.device)]
        return kernels_torch.xor_pad(words, key_words, device_nonces).view(x.dtype), device_nonces
