"""The HTTP black box: a FastAPI app that turns uploaded images into features.

The paper's deployment: the server holds the model (and, when asked, the key) and
answers feature vectors, encrypted before they leave the process. Memory is
bounded per request and in total: a request is authenticated and admitted (at
most ``max_queue`` at once, 503 with Retry-After beyond) before its body is read;
the body must arrive within ``request_timeout`` (408) and stay under
``max_request_bytes``; the pixels it would decode are summed from the image
headers and refused past ``max_request_pixels`` (413) before any is decoded;
each image is then decoded (JPEG drafted towards the model's input size) and
resized at once, at most ``decode_workers`` images at a time. Concurrent
requests are batched into one model call (``batching.Batcher``: up to
``max_batch`` images, waiting at most ``max_wait_ms`` for requests admitted
but still being read or decoded; how many images each call took is in the
health answer, for the token holder); the model runs only
in the batcher's thread and the cipher under a lock, so neither needs to be
thread-safe. Each request's rows are encrypted and sealed on their own.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
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
from ..errors import InvalidInputError, ShuffleBitsError
from .batching import Batcher
from .images import MAX_PIXELS, decode_image, decoded_pixels
from .memory import release_free_memory
from .wire import REQUEST_ID_HEADER, answer_context, encode_result, valid_request_id

DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_IMAGES = 256
DEFAULT_MAX_REQUEST_PIXELS = 2 * MAX_PIXELS  # two of the largest images, or ~1000 crops of 256x128
DEFAULT_MAX_QUEUE = 8
DEFAULT_DECODE_WORKERS = 2
DEFAULT_REQUEST_TIMEOUT = 30.0
DEFAULT_MAX_BATCH = 32
DEFAULT_MAX_WAIT_MS = 10.0
RETRY_AFTER_SECONDS = 1


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


async def _uploads(request: Request, body: bytes, max_images: int) -> list[tuple[str, bytes]]:
    """(file name, bytes) of every part in the field ``images`` of a multipart ``body``."""

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
        return [(upload.filename or "image", await upload.read()) for upload in uploads]


def create_app(
    extractor: Callable[[Sequence[Image.Image]], np.ndarray],
    token: str,
    cipher: Any = None,
    *,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    max_images: int = DEFAULT_MAX_IMAGES,
    max_pixels: int = MAX_PIXELS,
    max_request_pixels: int = DEFAULT_MAX_REQUEST_PIXELS,
    max_queue: int = DEFAULT_MAX_QUEUE,
    decode_workers: int = DEFAULT_DECODE_WORKERS,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
) -> FastAPI:
    """A FastAPI app serving ``extractor`` at ``POST /v1/features`` behind ``token``.

    ``extractor(list of RGB PIL images) -> (n, d) float32``; with ``cipher`` the
    features are encrypted (``cipher.encrypt``) before they are answered. Images
    are resized to ``extractor.input_size`` (height, width) with its
    ``interpolation`` as soon as they are decoded, when it declares one.
    """
    if not token:
        raise ShuffleBitsError("the service needs a non-empty token (--token or SHUFFLEBITS_TOKEN)")
    if min(max_request_bytes, max_images, max_pixels, max_request_pixels, max_queue, decode_workers) < 1:
        raise ShuffleBitsError(
            "max_request_bytes, max_images, max_pixels, max_request_pixels, max_queue and decode_workers "
            "must be positive"
        )
    if not request_timeout > 0:
        raise ShuffleBitsError(f"request_timeout must be positive, got {request_timeout}")
    if max_batch < 1 or not max_wait_ms >= 0:
        raise ShuffleBitsError(
            f"max_batch must be positive and max_wait_ms non-negative, got {max_batch}, {max_wait_ms}"
        )
    in_graph = getattr(extractor, "cipher_name", None)  # shufflebits export: the model encrypts
    if in_graph is not None and cipher is not None:
        raise ShuffleBitsError(f"the model already encrypts with {in_graph}; serve it without --encrypt-with")
    expected = token.encode("utf-8")
    size = getattr(extractor, "input_size", None)
    size = (int(size[0]), int(size[1])) if size else None
    resample = getattr(extractor, "interpolation", "bilinear")
    batcher = Batcher(extractor, max_batch=max_batch, max_wait_ms=max_wait_ms)
    cipher_lock = threading.Lock()
    decode_slots = threading.BoundedSemaphore(decode_workers)
    admitted, admitted_lock = [0], threading.Lock()
    app = FastAPI(title="ShuffleBits black box", docs_url=None, redoc_url=None, openapi_url=None)

    def has_token(request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # compare_digest: the time taken does not reveal how much of the token matched.
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8"), expected)

    def check_token(request: Request) -> None:
        if not has_token(request):
            raise _reject(
                401, "missing or wrong token: send 'Authorization: Bearer TOKEN'", **{"WWW-Authenticate": "Bearer"}
            )

    def admit() -> None:
        with admitted_lock:
            if admitted[0] >= max_queue:
                raise _reject(
                    503,
                    f"the server is busy ({max_queue} requests in progress); retry later",
                    **{"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
            admitted[0] += 1

    def leave() -> None:
        with admitted_lock:
            admitted[0] -= 1

    def decode_all(blobs: list[tuple[str, bytes]]) -> list[Image.Image]:
        """Every upload decoded and resized, after the pixel budget is checked on the headers alone."""
        names = [f"images[{index}] ({name})" for index, (name, _) in enumerate(blobs)]
        try:
            total = sum(
                decoded_pixels(blob, name, max_pixels, size) for name, (_, blob) in zip(names, blobs, strict=True)
            )
            if total > max_request_pixels:
                raise _reject(
                    413,
                    f"the images of this request decode to {total} pixels, more than the limit of "
                    f"{max_request_pixels}; send fewer or smaller images per request",
                )
            images = []
            for name, (_, blob) in zip(names, blobs, strict=True):
                with decode_slots:  # at most decode_workers full-size images in memory at once
                    images.append(decode_image(blob, name, max_pixels, size, resample))
            return images
        except ShuffleBitsError as error:
            raise _reject(400, str(error)) from error
        finally:
            release_free_memory()

    def compute(blobs: list[tuple[str, bytes]], response_id: str, submit: Callable[[list], Any]) -> dict:
        images = decode_all(blobs)
        del blobs[:]  # the encoded bytes are no longer needed
        output = submit(images)
        if isinstance(output, Sealed):  # an exported model that encrypts in its own graph: untagged
            return encode_result(output, response_id)
        features = np.ascontiguousarray(output, dtype=np.float32)
        if features.ndim != 2 or features.shape[0] != len(images):
            raise RuntimeError(f"extractor returned shape {features.shape} for {len(images)} images")
        if cipher is None:
            return encode_result(features, response_id)
        context = answer_context(response_id, len(images))
        try:
            with cipher_lock:
                sealed = cipher.encrypt(features, authenticate=True, context=context)
        except InvalidInputError as error:  # e.g. an approximate cipher given non-finite model outputs
            raise _reject(500, f"the model's features cannot be encrypted: {error}") from error
        return encode_result(sealed, response_id)

    @app.get("/v1/health")
    def health(request: Request) -> dict:
        """Public status; the key fingerprint only with the token (a seed key's fingerprint reveals its seed)."""
        fingerprint = cipher.key.fingerprint if cipher is not None else getattr(extractor, "key_fingerprint", None)
        return {
            "status": "ok",
            "model": getattr(extractor, "name", type(extractor).__name__),
            "feature_dim": getattr(extractor, "feature_dim", None),
            "input_size": list(getattr(extractor, "input_size", ())) or None,
            "encrypted": cipher is not None or in_graph is not None,
            "cipher": cipher.name if cipher is not None else in_graph,
            "key_fingerprint": fingerprint if has_token(request) else None,
            "images_per_model_call": batcher.call_sizes() if has_token(request) else None,
            "max_images": max_images,
            "max_request_bytes": max_request_bytes,
        }

    @app.post("/v1/features")
    async def features(request: Request) -> JSONResponse:
        check_token(request)
        admit()
        try:
            with batcher.expecting() as submit:  # a model call gathering now waits for this request's images
                return await answer(request, submit)
        finally:
            leave()

    async def answer(request: Request, submit: Callable[[list], Any]) -> JSONResponse:
        try:
            body = await asyncio.wait_for(_read_body(request, max_request_bytes), request_timeout)
        except TimeoutError:
            raise _reject(408, f"the request body did not arrive within {request_timeout:g} s") from None
        blobs = await _uploads(request, body, max_images)
        del body  # the parts are copied out; the raw body need not outlive them
        given = request.headers.get(REQUEST_ID_HEADER)
        response_id = given if valid_request_id(given) else secrets.token_hex(16)
        return JSONResponse(await run_in_threadpool(compute, blobs, response_id, submit))

    return app
