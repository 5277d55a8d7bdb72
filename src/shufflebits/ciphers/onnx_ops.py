"""Ciphers as ONNX integer and bitwise operators, appended to a feature extractor's graph.

The float32 features are reinterpreted as uint32 words with ``BitCast`` (opset
26; no float arithmetic ever touches them), encrypted with ``Gather`` /
``BitShift`` / ``BitwiseAnd|Or|Xor`` / ``Add`` on uint32, and reinterpreted back.
The key is baked into the graph as constants: fixed and per-dimension
ShuffleBits as their byte lookup tables, ChaChaPad as the ChaCha20 key words
(RFC 8439 quarter-rounds on uint32, additions wrapping mod 2**32). ChaChaPad's
per-vector nonces (uint8 ``(n, 16)``, counter || nonce as in ``prf``) are a
second model input: a graph cannot draw secure randomness itself.

Exportable: the ciphers whose ciphertext depends only on key, features and (for
ChaChaPad) the given nonces. One-time ShuffleBits is not (a fresh AES keystream
per call, drawn on the host), AES-GCM is not format-preserving.
"""

from __future__ import annotations

import struct

import numpy as np

from ..errors import ShuffleBitsError
from .catalogue import cipher_names, spec
from .kernels_torch import wide_tables

MIN_OPSET = 26  # BitCast
NONCE_INPUT = "nonces"
EXPORTABLE = {("shufflebits", "fixed"), ("shufflebits", "per-dimension"), ("chacha", "pad")}


def exportable_names() -> tuple[str, ...]:
    return tuple(name for name in cipher_names() if (spec(name).family, spec(name).mode) in EXPORTABLE)


def check_exportable(cipher_name: str, opset: int) -> None:
    """One-line errors for what cannot become ONNX operators."""
    record = spec(cipher_name)
    if (record.family, record.mode) not in EXPORTABLE:
        why = "not format-preserving" if not record.format_preserving else "its keystream is drawn on the host per call"
        raise ShuffleBitsError(
            f"cannot export {cipher_name} to ONNX ({why}); supported: {', '.join(exportable_names())}"
        )
    if opset < MIN_OPSET:
        raise ShuffleBitsError(
            f"ONNX export needs opset >= {MIN_OPSET} (BitCast reinterprets float32 features as uint32), got {opset}"
        )


class _Graph:
    """Collects nodes and constant initializers with unique names."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def name(self) -> str:
        self._count += 1
        return f"{self.prefix}/{self._count}"

    def const(self, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name()
        self.initializers.append(numpy_helper.from_array(value.copy(order="C"), name))  # keeps 0-d arrays 0-d
        return name

    def op(self, op_type: str, *inputs: str, **attributes) -> str:
        from onnx import helper

        out = self.name()
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attributes))
        return out

    def u32(self, value: int) -> str:
        return self.const(np.array(value, dtype=np.uint32))

    def shift(self, x: str, amount: int, direction: str) -> str:
        return self.op("BitShift", x, self.u32(amount), direction=direction)


def _gather(g: _Graph, table: np.ndarray, index_u32: str) -> str:
    from onnx import TensorProto

    return g.op("Gather", g.const(table), g.op("Cast", index_u32, to=TensorProto.INT64), axis=0)


def _fixed(g: _Graph, words: str, cipher, d: int) -> str:
    wide = wide_tables(cipher.tables(32, None, False))  # (2, 65536) uint32
    low = _gather(g, wide[0], g.op("BitwiseAnd", words, g.u32(0xFFFF)))
    high = _gather(g, wide[1], g.shift(words, 16, "RIGHT"))
    return g.op("BitwiseOr", low, high)


def _per_dimension(g: _Graph, words: str, cipher, d: int) -> str:
    tables = cipher.tables(32, d, False)  # (d, 4, 256): one flat table, index byte + 256 * (4 j + k)
    flat = tables.reshape(-1)
    acc = None
    for k in range(4):
        byte = g.op("BitwiseAnd", g.shift(words, 8 * k, "RIGHT") if k else words, g.u32(255))
        offsets = (np.arange(d, dtype=np.uint32) * 4 + k) * 256
        moved = _gather(g, flat, g.op("Add", byte, g.const(offsets)))
        acc = moved if acc is None else g.op("BitwiseOr", acc, moved)
    return acc


def _chacha(g: _Graph, words: str, cipher, d: int, nonces: str) -> str:
    from onnx import TensorProto

    blocks = -(-d * 4 // 64)
    raw = g.op("Cast", nonces, to=TensorProto.UINT32)  # (n, 16)
    quads = g.op("Reshape", raw, g.const(np.array([-1, 4, 4], np.int64)))  # (n, word, byte)
    nonce_words = None
    for byte in range(4):
        part = g.op("Gather", quads, g.const(np.array(byte, np.int64)), axis=2)  # (n, 4)
        part = g.shift(part, 8 * byte, "LEFT") if byte else part
        nonce_words = part if nonce_words is None else g.op("BitwiseOr", nonce_words, part)
    column = [g.op("Gather", nonce_words, g.const(np.array([k], np.int64)), axis=1) for k in range(4)]  # (n, 1)
    counters = g.op("Add", column[0], g.const(np.arange(blocks, dtype=np.uint32)[None, :]))  # (n, blocks)
    zeros = g.op("BitwiseXor", counters, counters)
    fixed = struct.unpack("<12I", b"expand 32-byte k" + cipher.pad_key)
    init = [g.op("Add", zeros, g.u32(word)) for word in fixed]
    init += [counters] + [g.op("Add", zeros, column[k]) for k in (1, 2, 3)]
    s = list(init)

    def rotl(x: str, n: int) -> str:
        return g.op("BitwiseOr", g.shift(x, n, "LEFT"), g.shift(x, 32 - n, "RIGHT"))

    def quarter(a: int, b: int, c: int, e: int) -> None:
        s[a] = g.op("Add", s[a], s[b])
        s[e] = rotl(g.op("BitwiseXor", s[e], s[a]), 16)
        s[c] = g.op("Add", s[c], s[e])
        s[b] = rotl(g.op("BitwiseXor", s[b], s[c]), 12)
        s[a] = g.op("Add", s[a], s[b])
        s[e] = rotl(g.op("BitwiseXor", s[e], s[a]), 8)
        s[c] = g.op("Add", s[c], s[e])
        s[b] = rotl(g.op("BitwiseXor", s[b], s[c]), 7)

    for _ in range(10):
        for a, b, c, e in ((0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15)):
            quarter(a, b, c, e)
        for a, b, c, e in ((0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14)):
            quarter(a, b, c, e)
    final = [g.op("Unsqueeze", g.op("Add", s[k], init[k]), g.const(np.array([2], np.int64))) for k in range(16)]
    stream = g.op("Concat", *final, axis=2)  # (n, blocks, 16): little-endian words in stream order
    flat = g.op("Reshape", stream, g.const(np.array([0, blocks * 16], np.int64)))
    one = g.const(np.array([1], np.int64))  # Slice's axes and steps
    pad = g.op("Slice", flat, g.const(np.array([0], np.int64)), g.const(np.array([d], np.int64)), one, one)
    return g.op("BitwiseXor", words, pad)


def append_cipher(model, cipher, feature_output: str, d: int, output_name: str = "ciphertext"):
    """Append ``cipher`` after ``model``'s float32 ``(n, d)`` output ``feature_output``; returns the new model.

    The new output ``output_name`` has the features' shape and dtype; ChaChaPad
    adds the uint8 ``(n, 16)`` input ``nonces``.
    """
    from onnx import TensorProto, helper

    record = spec(cipher.name)
    check_exportable(cipher.name, max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")))
    g = _Graph("shufflebits")
    words = g.op("BitCast", feature_output, to=TensorProto.UINT32)
    if record.mode == "pad":
        nonces = helper.make_tensor_value_info(NONCE_INPUT, TensorProto.UINT8, ["n", 16])
        model.graph.input.append(nonces)
        encrypted = _chacha(g, words, cipher, d, NONCE_INPUT)
    elif record.permutation == "fixed":
        encrypted = _fixed(g, words, cipher, d)
    else:
        encrypted = _per_dimension(g, words, cipher, d)
    g.nodes.append(
        helper.make_node("BitCast", [encrypted], [output_name], name=f"{g.prefix}/out", to=TensorProto.FLOAT)
    )
    model.graph.node.extend(g.nodes)
    model.graph.initializer.extend(g.initializers)
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["n", d]))
    metadata = {"shufflebits.cipher": cipher.name, "shufflebits.key_fingerprint": cipher.key.fingerprint}
    helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, **metadata})
    return model
