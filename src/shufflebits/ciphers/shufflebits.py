"""ShuffleBits: permute the bits of every float (Ni et al., ICCVW 2021).

Modes (the mode is part of the key: each is its own catalogue entry, see ``catalogue``):

- ``fixed``: one permutation for every element, as in the paper.
- ``per-dimension``: one permutation per feature dimension.
- ``one-time``: a fresh permutation for every element of every vector, from the
  key and a random per-vector nonce that travels with the ciphertext.

Fixed and per-dimension permutations come from unbiased Fisher-Yates
(``prf.fisher_yates``: masked bytes with rejection) on ChaCha20 keystreams under
the sub-key ``permutations``, nonce = (mode tag, word bits, dimension), counter 0;
they are uniform over all ``bits!`` permutations, derived once per key
(all dimensions at once: ``kernels_numba.chacha20_rows``) and cached as lookup tables.

One-time mode (file format version 2; version 1 used per-element Fisher-Yates
and is no longer read) runs each element through a Beneš network: for 32-bit
words, nine stages of 16 two-bit switches (swap distances 16, 8, 4, 2, 1, 2, 4,
8, 16), 144 switch bits per element, every one an independent AES-256-CTR
keystream bit (sub-key ``one-time-benes``). Vector ``i``'s 16-byte nonce is its
initial counter block; its keystream is, per row, ``log2(bits) - 1`` full words
per element (word ``p`` serves the two stages at distance ``bits >> (p + 1)``:
low switch bits before the middle stage, high ones after it), stage-major,
then one half word per element for the middle stage (``kernels_numpy.benes_switches``).
A batch gets one random nonce and consecutive counters (the 64-bit low half
never wraps), so one AES-CTR stream covers it. Small inputs (up to
``SMALL_BLOCKS`` AES blocks, a few vectors) compute the same counter blocks
themselves and encrypt them with a cached AES-256-ECB context: CTR by
definition, without a fresh context and key expansion per call (latency).

Which permutations result: a Beneš network with uniformly random switches
reaches every one of the ``32!`` permutations, but NOT uniformly (2**144 switch
settings over 32! ≈ 2**117.7 permutations, unevenly). Each single bit's
destination is exactly uniform over the 32 positions (every input bit meets a
random switch at each of the first five stages); the joint placement of two or
more bits is not. What that changes: nothing the one-time mode hid before
(value zero and each word's popcount survive any bit permutation anyway), but
the per-element permutation is no longer a perfectly uniform draw, so a
structural attack on pairs of bit positions has a small bias to work with.
``tests/test_ciphers_benes.py`` computes the exact single-bit and bit-pair
distributions of the network.

``from_seed`` reproduces the authors' numpy-seeded permutation for compatibility
only; that INSECURE recipe lives in ``decrepit``.
"""

from __future__ import annotations

import itertools
import struct
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher as _OpenSSL
from cryptography.hazmat.primitives.ciphers import algorithms, modes

from ..errors import IntegrityError, ShuffleBitsError
from . import kernels_numpy, prf
from .base import Cipher, Sealed
from .catalogue import cipher_names, spec
from .keys import Key, generate_key

MODE_CIPHERS = {spec(name).mode: name for name in cipher_names(family="shufflebits")}
KERNELS = ("numba", "numpy")
NONCE_BYTES = 16
AES_BLOCK = 16
# One-time keystream is produced in chunks of about this size (stays in L2),
# the next one on a worker thread while the kernel permutes the current one.
_CHUNK_BYTES = 1 << 20
_TAG_FIXED, _TAG_DIMENSION = 1, 2
# Per-dimension batches this small move bits directly instead of building the
# byte tables (1,024 entries per dimension, worth it from about this many rows).
TABLE_ROWS = 64
# Up to this many AES blocks (32 KiB of keystream, two 512-d float32 vectors) the
# keystream comes from the cached ECB context on the calling thread.
SMALL_BLOCKS = 2048
_SCHEDULE_BYTES = 4 * prf.BLOCK  # keystream per derived permutation before derived_permutation's retry
_worker: ThreadPoolExecutor | None = None


def one_time_layout(bits: int, d: int) -> tuple[int, int]:
    """``(row_bytes, blocks)``: keystream bytes of one vector of ``d`` words and the AES blocks holding them."""
    row_bytes = (bits.bit_length() - 2) * d * bits // 8 + d * bits // 16
    return row_bytes, -(-row_bytes // AES_BLOCK)


def one_time_nonces(n: int, blocks: int, random16) -> np.ndarray:
    """uint8 ``(n, 16)`` initial counter blocks: one random 128-bit start (top bit of the low
    64-bit half cleared, so it never wraps), row ``i`` at ``start + i * blocks``."""
    start = bytearray(random16(NONCE_BYTES))
    start[8] &= 0x7F
    if n == 1:  # single-vector latency
        return np.frombuffer(bytes(start), dtype=np.uint8).reshape(1, NONCE_BYTES).copy()
    out = np.empty((n, NONCE_BYTES), dtype=np.uint8)
    out[:, :8] = np.frombuffer(bytes(start[:8]), np.uint8)
    low = int.from_bytes(start[8:], "big") + np.arange(n, dtype=np.uint64) * np.uint64(blocks)
    out[:, 8:] = low.astype(">u8").view(np.uint8).reshape(n, 8)
    return out


def one_time_runs(nonces: np.ndarray, blocks: int) -> list[tuple[int, int]]:
    """Row ranges whose keystreams are consecutive (one AES-CTR stream each)."""
    n = len(nonces)
    if n == 0:
        return []
    low = np.ascontiguousarray(nonces[:, 8:]).view(">u8").reshape(-1).astype(np.uint64)
    if np.any(low > np.uint64(2**64 - 1 - blocks * n)):
        raise IntegrityError("one-time nonce counter would wrap 64 bits (corrupted nonces)")
    same = np.all(nonces[1:, :8] == nonces[:-1, :8], axis=1) & (low[1:] == low[:-1] + np.uint64(blocks))
    edges = [0, *(np.flatnonzero(~same) + 1).tolist(), n]
    return list(itertools.pairwise(edges))


class ShuffleBits(Cipher):
    """Bit-permutation cipher. ``kernel`` picks the numba kernel or the numpy reference."""

    def __init__(self, key: Key, *, kernel: str = "numba", nonce_source=None) -> None:
        super().__init__(key, nonce_source=nonce_source)
        if kernel not in KERNELS:
            raise ShuffleBitsError(f"unknown kernel {kernel!r}; expected one of {', '.join(KERNELS)}")
        self.kernel = kernel
        self.needs_rows = self.mode != "fixed"
        self._cache: dict = {}

    @classmethod
    def generate_key(cls, mode: str = "one-time") -> Key:
        """A fresh 256-bit key; ``one-time`` is the default because it hides the most."""
        if mode not in MODE_CIPHERS:
            raise ShuffleBitsError(f"unknown mode {mode!r}; expected one of {', '.join(MODE_CIPHERS)}")
        return generate_key(MODE_CIPHERS[mode])

    @classmethod
    def from_seed(cls, seed: int, *, kernel: str = "numba") -> ShuffleBits:
        """INSECURE, paper-compatible: the authors' ``default_rng(seed)`` permutation (fixed mode).

        The key has only the seed's entropy and one permutation for everything;
        use it to read or reproduce the paper's ciphertexts, not to protect data.
        float16 / float64 use the same recipe on ``np.arange(16 or 64)``.
        """
        from .decrepit import seed_key

        return cls(seed_key(seed), kernel=kernel)

    @property
    def mode(self) -> str:
        return self.key.mode

    # -- permutations ---------------------------------------------------------

    def permutation(self, bits: int = 32, dimension: int | None = None) -> np.ndarray:
        """``idx`` (output bit j = input bit idx[j], MSB first) of the fixed or per-dimension mode."""
        if self.mode == "one-time":
            raise ShuffleBitsError("one-time keys have no fixed permutation (a fresh one per element)")
        if self.key.seed is not None:
            from .decrepit import paper_permutation

            return paper_permutation(self.key.seed, bits)
        if self.mode == "fixed":
            return prf.derived_permutation(self._subkey("permutations"), _TAG_FIXED, bits, 0)
        if dimension is None:
            raise ShuffleBitsError("per-dimension keys need a dimension index")
        return prf.derived_permutation(self._subkey("permutations"), _TAG_DIMENSION, bits, dimension)

    def dimension_permutations(self, bits: int, d: int) -> np.ndarray:
        """``permutation(bits, j)`` for every ``j < d`` as ``(d, bits)``, derived in one pass.

        The ChaCha20 blocks of all dimensions come from one compiled loop and the
        shuffles from another; the rare dimension whose 256 bytes do not finish
        its shuffle goes through ``prf.derived_permutation`` (same stream, longer).
        """
        from . import kernels_numba

        key = self._subkey("permutations")
        starts = np.zeros((d, 4), dtype=np.uint32)  # counter 0, then the 12-byte nonce of derived_permutation
        head = struct.unpack("<I", struct.pack("<BBH", _TAG_DIMENSION, bits, 0))[0]
        index = np.arange(d, dtype=np.uint64)
        starts[:, 1] = head
        starts[:, 2] = (index & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        starts[:, 3] = (index >> np.uint64(32)).astype(np.uint32)
        blocks = _SCHEDULE_BYTES // prf.BLOCK
        stream = np.empty((d, 16 * blocks), dtype=np.uint32)
        kernels_numba.chacha20_rows(np.frombuffer(key, dtype="<u4").astype(np.uint32), starts, blocks, stream)
        idx = np.empty((d, bits), dtype=np.int64)
        exhausted = kernels_numba.fisher_yates(stream.astype("<u4").view(np.uint8), bits, idx)
        for j in np.flatnonzero(exhausted):
            idx[j] = prf.derived_permutation(key, _TAG_DIMENSION, bits, int(j))
        return idx

    def destinations(self, bits: int, d: int | None = None, decrypt: bool = False) -> np.ndarray:
        """Kernel form of the permutation(s): ``(bits,)`` for fixed, ``(d, bits)`` per dimension."""
        key = ("dst", bits, d, decrypt)
        if key not in self._cache:
            if self.mode == "fixed":
                dst = kernels_numpy.destinations(self.permutation(bits))
            else:
                dst = kernels_numpy.destinations(self.dimension_permutations(bits, d))
            self._cache[key] = kernels_numpy.inverse(dst) if decrypt else dst
        return self._cache[key]

    def tables(self, bits: int, d: int | None, decrypt: bool) -> np.ndarray:
        """Byte lookup tables of the fast kernels (cached per word size and width)."""
        key = ("lut", bits, d, decrypt)
        if key not in self._cache:
            from . import kernels_numba

            dst = self.destinations(bits, d, decrypt)
            out = np.empty((*dst.shape[:-1], bits // 8, 256), dtype=f"u{bits // 8}")
            kernels_numba.lookup_tables(dst.reshape(-1, bits), out.reshape(-1, bits // 8, 256))
            self._cache[key] = out
        return self._cache[key]

    def _subkey(self, purpose: str) -> bytes:
        if ("subkey", purpose) not in self._cache:
            self._cache["subkey", purpose] = self.key.derive(purpose)
        return self._cache["subkey", purpose]

    # -- encryption -----------------------------------------------------------

    def _encrypt_words(self, words, dtype):
        return self._apply(words, None, decrypt=False)

    def _decrypt_words(self, words, sealed: Sealed):
        if self.mode == "one-time":
            if sealed.nonces is None or sealed.nonces.shape[1:] != (NONCE_BYTES,):
                raise ShuffleBitsError("one-time ciphertext needs uint8 (n, 16) nonces")
        return self._apply(words, sealed.nonces, decrypt=True)[0]

    def _apply(self, words: np.ndarray, nonces, decrypt: bool):
        bits = 8 * words.dtype.itemsize
        if self.mode == "fixed":
            if self.kernel == "numpy":
                return kernels_numpy.permute(words, self.destinations(bits, None, decrypt)), None
            from . import kernels_numba

            flat = words.reshape(-1)
            kernel = kernels_numba.fixed_serial if flat.size < kernels_numba.SERIAL_BELOW else kernels_numba.fixed
            out = kernel(flat, self.tables(bits, None, decrypt), np.empty_like(flat))
            return out.reshape(words.shape), None
        _n, d = words.shape
        if self.mode == "per-dimension":
            if self.kernel == "numpy" or d == 0:
                return kernels_numpy.permute(words, self.destinations(bits, d, decrypt)), None
            from . import kernels_numba

            serial = words.size < kernels_numba.SERIAL_BELOW
            if ("lut", bits, d, decrypt) not in self._cache and len(words) < TABLE_ROWS:
                kernel = kernels_numba.per_dimension_direct_serial if serial else kernels_numba.per_dimension_direct
                return kernel(words, self.destinations(bits, d, decrypt), np.empty_like(words)), None
            kernel = kernels_numba.per_dimension_serial if serial else kernels_numba.per_dimension
            return kernel(words, self.tables(bits, d, decrypt), np.empty_like(words)), None
        return self._one_time(words, bits, nonces, decrypt)

    def one_time_keystream(self, n: int, d: int, bits: int, nonces=None):
        """``(nonces, chunks)``: chunks ``(start, stop, stream)`` of the switch keystream of all rows.

        ``stream`` is uint8 ``(rows, 16 * blocks)``, one C-contiguous row per
        vector (``switch_words`` splits it); it is a buffer that the next chunk
        reuses: use or copy it before asking for the next. It depends only on
        the key and nonces, never on features.
        """
        row_bytes, blocks = one_time_layout(bits, d)
        runs = None
        if nonces is None:
            nonces = one_time_nonces(n, blocks, self.nonce_source)
            runs = [(0, n)] if n else []  # fresh nonces: one stream, nothing to inspect
        return nonces, self._keystream_chunks(nonces, d, bits, row_bytes, blocks, runs)

    def _keystream_chunks(self, nonces, d, bits, row_bytes, blocks, runs):
        global _worker
        if row_bytes and 0 < len(nonces) * blocks <= SMALL_BLOCKS:
            if runs is None:
                one_time_runs(nonces, blocks)  # refuses counters that would wrap
            yield 0, len(nonces), self._small_keystream(nonces, blocks)
            return
        stride = blocks * AES_BLOCK
        rows = max(1, _CHUNK_BYTES // max(stride, 1))
        jobs = [
            (a, min(b, a + rows), a == start)
            for start, b in (runs if runs is not None else one_time_runs(nonces, blocks))
            for a in range(start, b, rows)
        ]
        if not jobs or row_bytes == 0:
            for a, b, _fresh in jobs:
                yield a, b, np.zeros((b - a, stride), np.uint8)
            return
        key = self._subkey("one-time-benes")
        size = min(rows, len(nonces)) * stride
        zeros = np.zeros(size, dtype=np.uint8)
        buffers = [np.empty(size + AES_BLOCK, dtype=np.uint8) for _ in range(min(2, len(jobs)))]
        state = {}

        def produce(k):
            a, b, fresh = jobs[k]
            if fresh:
                state["stream"] = _OpenSSL(algorithms.AES(key), modes.CTR(bytes(nonces[a]))).encryptor()
            nbytes = (b - a) * stride
            buffer = buffers[k % len(buffers)]
            state["stream"].update_into(zeros[:nbytes], buffer[: nbytes + AES_BLOCK - 1])
            return buffer[:nbytes].reshape(b - a, stride)

        if len(jobs) == 1:
            a, b, _fresh = jobs[0]
            yield a, b, produce(0)
            return
        if _worker is None:
            _worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shufflebits-keystream")
        pending = _worker.submit(produce, 0)
        for k, (a, b, _fresh) in enumerate(jobs):
            stream = pending.result()
            if k + 1 < len(jobs):
                pending = _worker.submit(produce, k + 1)
            yield a, b, stream

    def _small_keystream(self, nonces: np.ndarray, blocks: int) -> np.ndarray:
        """AES-CTR keystream rows ``(n, 16 * blocks)`` as ECB of the counter blocks (runs already checked)."""
        if "ecb" not in self._cache:
            self._cache["ecb"] = _OpenSSL(algorithms.AES(self._subkey("one-time-benes")), modes.ECB()).encryptor()
        from . import kernels_numba

        counters = kernels_numba.counter_blocks(
            np.ascontiguousarray(nonces), blocks, np.empty((len(nonces), blocks * AES_BLOCK), dtype=np.uint8)
        )
        stream = np.empty(counters.size + AES_BLOCK, dtype=np.uint8)
        self._cache["ecb"].update_into(counters.reshape(-1), stream)
        return stream[: counters.size].reshape(counters.shape)

    @staticmethod
    def switch_words(stream: np.ndarray, d: int, bits: int):
        """``(pairs, middle)`` views of keystream rows (``kernels_numpy.benes_switches`` takes them)."""
        stages = bits.bit_length() - 2
        cut = stages * d * bits // 8
        pairs = stream[:, :cut].view(f"<u{bits // 8}").reshape(len(stream), stages, d)
        middle = stream[:, cut : cut + d * bits // 16].view(f"<u{bits // 16}").reshape(len(stream), d)
        return pairs, middle

    def _one_time(self, words, bits, nonces, decrypt):
        n, d = words.shape
        out = np.empty_like(words)
        nonces, chunks = self.one_time_keystream(n, d, bits, nonces)
        for a, b, stream in chunks:
            if self.kernel == "numba" and bits == 32:
                from . import kernels_numba

                kernels_numba.benes32(words[a:b], stream, decrypt, out[a:b])
            else:
                switches = kernels_numpy.benes_switches(*self.switch_words(stream, d, bits), bits)
                out[a:b] = kernels_numpy.benes(words[a:b], switches, decrypt)
        return out, nonces

    # -- torch ----------------------------------------------------------------

    def encrypt_tensor(self, x):
        """Torch path (CPU or CUDA, in-graph): ``(ciphertext tensor, nonces tensor or None)``.

        CPU tensors are encrypted in place of a copy by the numba kernels on the
        tensor's own memory (several times faster than torch ops on CPU). On
        other devices, fixed and per-dimension modes gather from lookup tables
        there (no nonces); one-time mode makes the AES-CTR switch keystream on
        the host from key + fresh nonces (no feature data involved), uploads it
        (18 bytes per float32) and runs the Beneš stages on the device. One-time
        mode returns the uint8 ``(n, 16)`` nonces.
        """
        import torch

        from . import kernels_torch

        words = kernels_torch.int_view(x)
        bits = 8 * words.element_size()
        if self.mode != "fixed" and words.ndim != 2:
            raise ShuffleBitsError(f"{self.name} needs (n, d) tensors, got {tuple(words.shape)}")
        if words.device.type == "cpu":
            out, nonces = self._apply(words.detach().numpy().view(f"u{words.element_size()}"), None, decrypt=False)
            return torch.from_numpy(out).view(x.dtype), None if nonces is None else torch.from_numpy(nonces)
        if self.mode == "one-time":
            out = torch.empty_like(words)
            nonces, chunks = self.one_time_keystream(words.shape[0], words.shape[1], bits)
            for a, b, stream in chunks:
                pairs, middle = self.switch_words(stream, words.shape[1], bits)
                pairs_t, middle_t = (
                    kernels_torch.host_words(pairs, words.device),
                    kernels_torch.host_words(middle, words.device),
                )
                out[a:b] = kernels_torch.benes(words[a:b], pairs_t, middle_t)
            return out.view(x.dtype), torch.from_numpy(nonces).to(words.device)
        d = None if self.mode == "fixed" else words.shape[-1]
        cache_key = ("torch", bits, d, str(words.device))
        if cache_key not in self._cache:
            tables = self.tables(bits, d, decrypt=False)
            if self.mode == "fixed":
                tables = kernels_torch.wide_tables(tables)
            self._cache[cache_key] = kernels_torch.table_tensor(tables, words.device)
        if self.mode == "fixed":
            out = kernels_torch.permute_fixed(words, self._cache[cache_key])
        else:
            out = kernels_torch.permute_per_dimension(words, self._cache[cache_key])
        return out.view(x.dtype), None
