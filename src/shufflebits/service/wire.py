"""The JSON body of ``POST /v1/features``: arrays as base64 of little-endian bytes.

An encrypted answer records ``format_version``, the ciphertext format of
``ciphers.files`` (2 since one-time ShuffleBits became a Beneš network); one
without it is version 1, and version 1 one-time ciphertext is refused.
Never JSON floats: ciphertext words are often NaN or Inf bit patterns, which JSON
cannot carry and float parsing would canonicalise. Bytes are produced and read
through unsigned-integer views, so no value is ever touched by float arithmetic.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from ..errors import ShuffleBitsError

# What a response may declare; anything else is a malformed (or hostile) answer.
DTYPES = ("float16", "float32", "float64", "uint8", "uint16", "uint32", "uint64")


def encode_array(array: np.ndarray) -> tuple[str, list[int], str]:
    """(base64 of little-endian bytes, shape, dtype name) of ``array``."""
    array = np.ascontiguousarray(array)
    if array.dtype.name not in DTYPES:
        raise ShuffleBitsError(f"cannot send a {array.dtype} array; expected one of {', '.join(DTYPES)}")
    unsigned = np.dtype(f"u{array.dtype.itemsize}").newbyteorder(array.dtype.byteorder)
    raw = array.view(unsigned).astype(unsigned.newbyteorder("<"), copy=False).tobytes()
    return base64.b64encode(raw).decode("ascii"), list(array.shape), array.dtype.name


def decode_array(text: Any, shape: Any, dtype: Any) -> np.ndarray:
    """Inverse of ``encode_array``; raises ShuffleBitsError on anything malformed."""
    if dtype not in DTYPES:
        raise ShuffleBitsError(f"response declares dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise ShuffleBitsError(f"response declares a malformed shape {shape!r}")
    try:
        raw = base64.b64decode(text, validate=True)
    except (TypeError, ValueError, binascii.Error) as error:
        raise ShuffleBitsError(f"response carries malformed base64 ({error})") from error
    itemsize = np.dtype(dtype).itemsize
    if len(raw) != int(np.prod(shape, dtype=np.int64)) * itemsize:
        raise ShuffleBitsError(f"response carries {len(raw)} bytes, which does not match shape {shape} of {dtype}")
    words = np.frombuffer(raw, dtype=f"<u{itemsize}").astype(f"=u{itemsize}")
    return words.view(dtype).reshape(shape)


def encode_result(result: Any) -> dict:
    """Response body for plaintext features or a ``Sealed`` (ciphertext + what decryption needs)."""
    if isinstance(result, np.ndarray):
        features, shape, dtype = encode_array(result)
        return {"features": features, "shape": shape, "dtype": dtype, "encryption": None}
    from ..ciphers.catalogue import spec
    from ..ciphers.files import FILE_VERSION

    features, shape, dtype = encode_array(result.data)
    encryption = {
        "format_version": FILE_VERSION,
        "cipher": result.cipher,
        "mode": spec(result.cipher).mode,
        "key_fingerprint": result.key_fingerprint,
        "plaintext_dtype": result.dtype,
        "plaintext_shape": list(result.shape),
        "nonces": None,
        "nonce_shape": None,
        "nonce_dtype": None,
    }
    if result.nonces is not None:
        encryption["nonces"], encryption["nonce_shape"], encryption["nonce_dtype"] = encode_array(result.nonces)
    return {"features": features, "shape": shape, "dtype": dtype, "encryption": encryption}


def decode_result(body: Any) -> Any:
    """Inverse of ``encode_result``: an ndarray, or a ``Sealed`` rebuilt from its metadata."""
    if not isinstance(body, dict) or not {"features", "shape", "dtype"} <= body.keys():
        raise ShuffleBitsError("response is not a features answer (no features/shape/dtype)")
    data = decode_array(body["features"], body["shape"], body["dtype"])
    encryption = body.get("encryption")
    if encryption is None:
        if data.dtype != np.float32 or data.ndim != 2:
            raise ShuffleBitsError(f"plaintext answer must be 2-D float32, got {data.dtype} {data.shape}")
        return data
    from ..ciphers.base import Sealed
    from ..ciphers.files import FILE_VERSION, V1_CHANGED_MODES
    from ..ciphers.words import unsigned

    if not isinstance(encryption, dict):
        raise ShuffleBitsError("response has malformed encryption metadata (not an object)")
    version = encryption.get("format_version", 1)  # servers before version 2 sent none
    if version == 1 and encryption.get("mode") in V1_CHANGED_MODES:
        raise ShuffleBitsError(
            "response holds version 1 one-time ShuffleBits ciphertext (per-element Fisher-Yates), "
            f"which this version no longer decrypts (ciphertext format {FILE_VERSION}); upgrade the server"
        )
    if version not in (1, FILE_VERSION):
        raise ShuffleBitsError(f"response has unsupported ciphertext format version {version!r} (supported: 1, {FILE_VERSION})")
    try:
        nonces = None
        if encryption["nonces"] is not None:
            nonces = decode_array(encryption["nonces"], encryption["nonce_shape"], encryption["nonce_dtype"])
        sealed = Sealed.from_words(
            unsigned(data),
            cipher=str(encryption["cipher"]),
            key_fingerprint=str(encryption["key_fingerprint"]),
            dtype=str(encryption["plaintext_dtype"]),
            nonces=nonces,
        )
        declared = tuple(int(size) for size in encryption["plaintext_shape"])
    except (KeyError, TypeError, ValueError) as error:
        raise ShuffleBitsError(f"response has malformed encryption metadata ({error})") from error
    if sealed.shape != declared:
        raise ShuffleBitsError(f"response declares plaintext shape {list(declared)} but carries {list(sealed.shape)}")
    return sealed


def concatenate_results(parts: list[Any]) -> Any:
    """Join per-batch answers; ciphertext batches must come from one cipher and key."""
    if all(isinstance(part, np.ndarray) for part in parts):
        return np.concatenate(parts)
    first = parts[0]
    sealed = [part for part in parts if not isinstance(part, np.ndarray)]
    same = [(part.cipher, part.key_fingerprint, part.dtype, part.shape[1:]) for part in sealed]
    if len(same) != len(parts) or len(set(same)) != 1:
        raise ShuffleBitsError(
            "the service changed cipher, key or feature shape between batches; the answers cannot be combined"
        )
    if len(parts) == 1:
        return first
    return first.from_words(
        np.concatenate([part.payload() for part in parts]),
        cipher=first.cipher,
        key_fingerprint=first.key_fingerprint,
        dtype=first.dtype,
        nonces=None if first.nonces is None else np.concatenate([part.nonces for part in parts]),
    )
