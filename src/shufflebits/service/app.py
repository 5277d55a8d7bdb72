"""The HTTP black box: a FastAPI app that turns uploaded images into features.

The paper's deployment: the server holds the model (and, when asked, the key) and
answers feature vectors, encrypted before they leave the process. Requests are
authenticated before their body is read, bounded in size, and decoded in worker
threads; the model and cipher run under one lock because neither is assumed to be
thread-safe (decoding, the usual bottleneck for small crops, stays parallel).
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ..ciphers.base import Sealed
from ..errors import ShuffleBitsError
from .images import MAX_PIXELS, decode_image
from .wire import encode_result

DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_IMAGES = 256


def _reject(status: int, detail: str, **headers: str) -> HTTPException:
    return HTTPException(status_code=status, detail=detail, headers=headers or None)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit`` without buffering it."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise _reject(400, "malformed Content-Length header")
        if int(declared) > limit:
            raise _reject(
                413,
                f"request body of {declared} bytes exceeds the limit of {limit} bytes; send fewer images per request",
            )
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _reject(413, f"request body exceeds the limit of {limit} bytes; send fewer images per request")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    extractor: Callable[[Sequence[Image.Image]], np.ndarray],
    token: str,
    cipher: Any = None,
    *,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    max_images: int = DEFAULT_MAX_IMAGES,
    max_pixels: int = MAX_PIXELS,
) -> FastAPI:
    """A FastAPI app serving ``extractor`` at ``POST /v1/features`` behind ``token``.

    ``extractor(list of RGB PIL images) -> (n, d) float32``; with ``cipher`` the
    features are encrypted (``cipher.encrypt``) before they are answered.
    """
    if not token:
        raise ShuffleBitsError("the service needs a non-empty token (--token or SHUFFLEBITS_TOKEN)")
    if max_request_bytes < 1 or max_images < 1:
        raise ShuffleBitsError("max_request_bytes and max_images must be positive")
    in_graph = getattr(extractor, "cipher_name", None)  # shufflebits export: the model encrypts
    if in_graph is not None and cipher is not None:
        raise ShuffleBitsError(f"the model already encrypts with {in_graph}; serve it without --encrypt-with")
    expected = token.encode("utf-8")
    compute_lock = threading.Lock()
    app = FastAPI(title="ShuffleBits black box", docs_url=None, redoc_url=None, openapi_url=None)

    def check_token(request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # compare_digest: the time taken does not reveal how much of the token matched.
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8"), expected):
            raise _reject(
                401, "missing or wrong token: send 'Authorization: Bearer TOKEN'", **{"WWW-Authenticate": "Bearer"}
            )

    def compute(blobs: list[tuple[str, bytes]]) -> dict:
        images = []
        for index, (name, blob) in enumerate(blobs):
            try:
                images.append(decode_image(blob, name=f"images[{index}] ({name})", max_pixels=max_pixels))
            except ShuffleBitsError as error:
                raise _reject(400, str(error)) from error
        with compute_lock:
            output = extractor(images)
            if isinstance(output, Sealed):  # an exported model that encrypts in its own graph
                return encode_result(output)
            features = np.ascontiguousarray(output, dtype=np.float32)
            if features.ndim != 2 or features.shape[0] != len(images):
                raise RuntimeError(f"extractor returned shape {features.shape} for {len(images)} images")
            result = cipher.encrypt(features) if cipher is not None else features
        return encode_result(result)

    @app.get("/v1/health")
    def health() -> dict:
        return {
            "status": "ok",
            "model": getattr(extractor, "name", type(extractor).__name__),
            "feature_dim": getattr(extractor, "feature_dim", None),
            "input_size": list(getattr(extractor, "input_size", ())) or None,
            "encrypted": cipher is not None or in_graph is not None,
            "cipher": cipher.name if cipher is not None else in_graph,
            "key_fingerprint": cipher.key.fingerprint
            if cipher is not None
            else getattr(extractor, "key_fingerprint", None),
            "max_images": max_images,
            "max_request_bytes": max_request_bytes,
        }

    @app.post("/v1/features")
    async def features(request: Request) -> JSONResponse:
        check_token(request)
        body = await _read_body(request, max_request_bytes)

        async def replay() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        # The body is bounded already, so the part count is too; we count images ourselves.
        async with Request(request.scope, replay).form(max_files=float("inf"), max_fields=1000) as form:
            uploads = form.getlist("images")
            if not uploads:
                raise _reject(422, "send one or more image files as multipart/form-data in the field 'images'")
            if not all(isinstance(upload, UploadFile) for upload in uploads):
                raise _reject(422, "the field 'images' must hold files, not text")
            if len(uploads) > max_images:
                raise _reject(413, f"{len(uploads)} images in one request; the limit is {max_images}")
            blobs = [(upload.filename or "image", await upload.read()) for upload in uploads]
        return JSONResponse(await run_in_threadpool(compute, blobs))

    return app
