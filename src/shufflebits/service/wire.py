"""The JSON body of ``POST /v1/features``: arrays as base64 of little-endian bytes.

Version 2 answers carry ``version``, the ``response_id`` (the client's request
id echoed) and, when encrypted, the seals binding the ciphertext to that answer
(``decode_answer``).

Never JSON floats: ciphertext words are often NaN or Inf bit patterns, which JSON
cannot carry and float parsing would canonicalise. Bytes are produced and read
through unsigned-integer views, so no value is ever touched by float arithmetic.
The only floats in JSON are a key's scheme parameters (``encryption.params``,
finite by construction): they read back as written, and the key fingerprint the
answer carries covers them, so a value read back differently would be refused.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from ..errors import IntegrityError, ShuffleBitsError

WIRE_VERSION = 2
REQUEST_ID_HEADER = "X-ShuffleBits-Request-Id"
# Unversioned answers (wire version 1) of these modes cannot be decrypted here: ChaCha20
# and AES-GCM used the master key directly, and one-time ShuffleBits may be the
# per-element Fisher-Yates construction of file version 1 (the answer does not say).
_UNVERSIONED_CHANGED_MODES = ("one-time", "pad", "aead")
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


def answer_context(response_id: str, rows: int) -> bytes:
    """What an encrypted answer's seal binds: the wire version, its response id and its row count."""
    return b"shufflebits/http/v2\0" + response_id.encode("ascii") + b"\0" + rows.to_bytes(8, "little")


def valid_request_id(value: Any) -> bool:
    """Request / response ids are 32 lowercase hex digits (16 random bytes)."""
    return isinstance(value, str) and len(value) == 32 and all(c in "0123456789abcdef" for c in value)


def encode_result(result: Any, response_id: str) -> dict:
    """Response body for plaintext features or a ``Sealed`` (ciphertext + what decryption needs)."""
    body = {"version": WIRE_VERSION, "response_id": response_id}
    if isinstance(result, np.ndarray):
        features, shape, dtype = encode_array(result)
        return {**body, "features": features, "shape": shape, "dtype": dtype, "encryption": None}
    from ..ciphers.catalogue import spec

    features, shape, dtype = encode_array(result.data)
    encryption = {
        "cipher": result.cipher,
        "mode": spec(result.cipher).mode,
        "key_fingerprint": result.key_fingerprint,
        "params": dict(result.params),
        "plaintext_dtype": result.dtype,
        "plaintext_shape": list(result.shape),
        "nonces": None,
        "nonce_shape": None,
        "nonce_dtype": None,
        "authenticated": result.authenticated,
        "seals": [seal.as_dict() for seal in result.seals],
    }
    if result.nonces is not None:
        encryption["nonces"], encryption["nonce_shape"], encryption["nonce_dtype"] = encode_array(result.nonces)
    return {**body, "features": features, "shape": shape, "dtype": dtype, "encryption": encryption}


def decode_result(body: Any) -> Any:
    """Inverse of ``encode_result``: an ndarray, or a ``Sealed`` (``decode_answer``)."""
    if not isinstance(body, dict) or not {"features", "shape", "dtype"} <= body.keys():
        raise ShuffleBitsError("response is not a features answer (no features/shape/dtype)")
    if body.get("encryption") is not None:
        return decode_answer(body)
    data = decode_array(body["features"], body["shape"], body["dtype"])
    if data.dtype != np.float32 or data.ndim != 2:
        raise ShuffleBitsError(f"plaintext answer must be 2-D float32, got {data.dtype} {data.shape}")
    return data


def decode_answer(payload: dict) -> Any:
    """The ``Sealed`` of an encrypted answer (``payload``: its parsed JSON), its seal checked against the answer.

    A version 2 answer from a server holding the key carries one seal whose
    context binds the answer's ``response_id`` and row count; the key holder's
    ``decrypt`` then verifies the tag, so a flipped bit, a reordered, dropped or
    duplicated row, or rows spliced from another answer fail there. Answers of an
    in-graph model (no key on the server) are untagged: ``authenticated=False``.
    Answers without a version (before seals) are read when their construction is
    unchanged; ChaCha20 and AES-GCM ones are refused.
    """
    from ..ciphers.base import Sealed
    from ..ciphers.catalogue import spec
    from ..ciphers.sealing import Seal
    from ..ciphers.words import unsigned

    if not isinstance(payload, dict) or not {"features", "shape", "dtype"} <= payload.keys():
        raise ShuffleBitsError("response is not a features answer (no features/shape/dtype)")
    encryption = payload.get("encryption")
    if not isinstance(encryption, dict):
        raise ShuffleBitsError("response is not an encrypted answer (its 'encryption' is empty)")
    version = payload.get("version")
    if version not in (None, WIRE_VERSION):
        raise ShuffleBitsError(f"response has wire version {version!r}; this client reads {WIRE_VERSION}")
    data = decode_array(payload["features"], payload["shape"], payload["dtype"])
    try:
        record = spec(str(encryption["cipher"]))
        if version is None and record.mode in _UNVERSIONED_CHANGED_MODES:
            raise ShuffleBitsError(
                f"response from a server older than wire version {WIRE_VERSION}: its {record.name} ciphertext "
                "used a construction or key derivation that has changed; upgrade the server"
            )
        nonces = None
        if encryption["nonces"] is not None:
            nonces = decode_array(encryption["nonces"], encryption["nonce_shape"], encryption["nonce_dtype"])
        seals = tuple(Seal.from_dict(seal) for seal in encryption.get("seals") or [])
        sealed = Sealed.from_words(
            unsigned(data),
            cipher=record.name,
            key_fingerprint=str(encryption["key_fingerprint"]),
            dtype=str(encryption["plaintext_dtype"]),
            nonces=nonces,
            seals=seals,
            params=encryption.get("params") or {},
        )
        declared = tuple(int(size) for size in encryption["plaintext_shape"])
    except (KeyError, TypeError, ValueError) as error:
        raise ShuffleBitsError(f"response has malformed encryption metadata ({error})") from error
    if sealed.shape != declared:
        raise ShuffleBitsError(f"response declares plaintext shape {list(declared)} but carries {list(sealed.shape)}")
    if encryption.get("authenticated", False) != sealed.authenticated:
        raise IntegrityError("response's authenticated flag does not match its seals (stripped?)")
    if seals:
        response_id = payload.get("response_id")
        rows = sealed.shape[0]
        if not valid_request_id(response_id) or len(seals) != 1:
            raise IntegrityError("sealed response needs one seal and a 32-hex-digit response_id")
        if seals[0].context != answer_context(response_id, rows):
            raise IntegrityError(f"response's seal is not bound to response {response_id} of {rows} rows")
    return sealed


def concatenate_results(parts: list[Any]) -> Any:
    """Join per-batch answers; ciphertext batches must come from one cipher and key."""
    if all(isinstance(part, np.ndarray) for part in parts):
        return np.concatenate(parts)
    first = parts[0]
    sealed = [part for part in parts if not isinstance(part, np.ndarray)]
    same = [
        (part.cipher, part.params, part.key_fingerprint, part.dtype, part.shape[1:], part.authenticated)
        for part in sealed
    ]
    if len(same) != len(parts) or len(set(same)) != 1:
        raise ShuffleBitsError(
            "the service changed cipher, parameters, key, feature shape or authentication between batches; "
            "the answers cannot be combined"
        )
    if len(parts) == 1:
        return first
    return first.from_words(
        np.concatenate([part.payload() for part in parts]),
        cipher=first.cipher,
        key_fingerprint=first.key_fingerprint,
        dtype=first.dtype,
        nonces=None if first.nonces is None else np.concatenate([part.nonces for part in parts]),
        seals=tuple(seal for part in parts for seal in part.seals),
        params=first.params,
    )
