"""The HTTP black box: a FastAPI app that turns uploaded images into features.

The paper's deployment: the server holds the model (and, when asked, the key) and
answers feature vectors, encrypted before they leave the process. Memory is
bounded per request and in total: a request is authenticated and admitted (at
most ``max_queue`` at once, 503 with Retry-After beyond) before its body is read;
the body must arrive within ``request_timeout`` (408) and stay under
``max_request_bytes``; the pixels it would decode are summed from the image
headers and refused past ``max_request_pixels`` (413) before any is decoded;
each image is then decoded (JPEG drafted towards the model's input size) and
resized at once, at most ``decode_workers`` images at a time. All admitted
requests share one ``memory_budget_bytes`` (``memory.MemoryBudget``), so the
peak does not grow with ``max_queue``: a request holds twice its declared body
until its image headers are read, then its body, its largest part once more
(Pillow may read a part's chunks whole) and its images at the model's input
size, answered 503 with Retry-After when that does not fit; each full-size
decode waits for its header-estimated cost (503 after ``request_timeout``). Concurrent
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
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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
from .memory import DECODE_BYTES_PER_PIXEL, HELD_BYTES_PER_PIXEL, Hold, MemoryBudget, release_free_memory
from .wire import REQUEST_ID_HEADER, answer_context, encode_result, valid_request_id

DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_IMAGES = 256
DEFAULT_MAX_REQUEST_PIXELS = 2 * MAX_PIXELS  # two of the largest images, or ~1000 crops of 256x128
DEFAULT_MAX_QUEUE = 8
DEFAULT_DECODE_WORKERS = 2
DEFAULT_REQUEST_TIMEOUT = 30.0
DEFAULT_MAX_BATCH = 32
DEFAULT_MAX_WAIT_MS = 10.0
# One full-size decode beside the largest request the other defaults allow (a model without an input size).
DEFAULT_MEMORY_BUDGET = 384 * 1024 * 1024
RETRY_AFTER_SECONDS = 1


def _reject(status: int, detail: str, **headers: str) -> HTTPException:
    return HTTPException(status_code=status, detail=detail, headers=headers or None)


def _declared_length(request: Request, limit: int) -> int | None:
    """The body's Content-Length, if given, refusing (413) one over ``limit`` before anything is read."""
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    if not declared.isdigit():
        raise _reject(400, "malformed Content-Length header")
    if int(declared) > limit:
        raise _reject(
            413, f"request body of {declared} bytes exceeds the limit of {limit} bytes; send fewer images per request"
        )
    return int(declared)


async def _read_body(request: Request, limit: int) -> deque[bytes]:
    """The request body as it arrived, in chunks, refusing (413) anything over ``limit`` as soon as it is."""
    chunks, total = deque(), 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _reject(413, f"request body exceeds the limit of {limit} bytes; send fewer images per request")
        chunks.append(chunk)
    return chunks


async def _uploads(request: Request, chunks: deque[bytes], max_images: int) -> list[tuple[str, bytes]]:
    """(file name, bytes) of every part in the field ``images`` of a multipart body, consuming ``chunks``."""

    async def replay() -> dict:
        # Each chunk is dropped as the parser takes it and each part as it is read: the body is never held twice.
        body = chunks.popleft() if chunks else b""
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    # The body is bounded already, so the part count is too; we count images ourselves.
    async with Request(request.scope, replay).form(max_files=float("inf"), max_fields=1000) as form:
        uploads = form.getlist("images")
        if not uploads:
            raise _reject(422, "send one or more image files as multipart/form-data in the field 'images'")
        if not all(isinstance(upload, UploadFile) for upload in uploads):
            raise _reject(422, "the field 'images' must hold files, not text")
        if len(uploads) > max_images:
            raise _reject(413, f"{len(uploads)} images in one request; the limit is {max_images}")
        blobs = []
        for upload in uploads:
            blobs.append((upload.filename or "image", await upload.read()))
            await upload.close()
        return blobs


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
    memory_budget_bytes: int | None = None,
) -> FastAPI:
    """A FastAPI app serving ``extractor`` at ``POST /v1/features`` behind ``token``.

    ``extractor(list of RGB PIL images) -> (n, d) float32``; with ``cipher`` the
    features are encrypted (``cipher.encrypt``) before they are answered. Images
    are resized to ``extractor.input_size`` (height, width) with its
    ``interpolation`` as soon as they are decoded, when it declares one.
    ``memory_budget_bytes`` is shared by all admitted requests (default
    ``DEFAULT_MEMORY_BUDGET``, or the least that holds one largest request
    beside one largest decode when the other limits need more).
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
    decode_share = DECODE_BYTES_PER_PIXEL * min(max_pixels, max_request_pixels)  # the costliest image
    largest_images = max_images * size[0] * size[1] if size else max_request_pixels  # as the model is given them
    least_budget = decode_share + 2 * max_request_bytes + HELD_BYTES_PER_PIXEL * largest_images
    if memory_budget_bytes is None:
        memory_budget_bytes = max(DEFAULT_MEMORY_BUDGET, least_budget)
    if memory_budget_bytes < least_budget:
        raise ShuffleBitsError(
            f"a memory budget of {memory_budget_bytes} bytes cannot hold one largest request beside one largest "
            f"decode; with these limits it needs at least {least_budget} bytes ({least_budget / 2**20:.0f} MiB)"
        )
    trimmer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shufflebits-trim")

    def trim_later() -> None:
        """``release_free_memory`` on the trimming thread: a trim walks the whole heap (milliseconds
        on a large one), so neither the event loop nor the request that freed the memory waits."""
        trimmer.submit(lambda: release_free_memory())

    budget = MemoryBudget(memory_budget_bytes, decode_share, trim=trim_later)
    batcher = Batcher(extractor, max_batch=max_batch, max_wait_ms=max_wait_ms)
    cipher_lock = threading.Lock()
    decode_slots = threading.BoundedSemaphore(decode_workers)
    admitted, admitted_lock = [0], threading.Lock()
    app = FastAPI(title="ShuffleBits black box", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.memory_budget = budget

    def has_token(request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # compare_digest: the time taken does not reveal how much of the token matched.
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8"), expected)

    def check_token(request: Request) -> None:
        if not has_token(request):
            raise _reject(
                401, "missing or wrong token: send 'Authorization: Bearer TOKEN'", **{"WWW-Authenticate": "Bearer"}
            )

    def busy(reason: str) -> HTTPException:
        return _reject(503, f"the server is busy ({reason}); retry later", **{"Retry-After": str(RETRY_AFTER_SECONDS)})

    def admit() -> None:
        with admitted_lock:
            if admitted[0] >= max_queue:
                raise busy(f"{max_queue} requests in progress")
            admitted[0] += 1

    def leave() -> None:
        with admitted_lock:
            admitted[0] -= 1
            drained = admitted[0] == 0
        if drained:  # what the requests freed after their last decode (bodies, answers, model buffers)
            trim_later()

    def keep(hold: Hold, nbytes: int) -> None:
        if not hold.resize(nbytes):
            raise busy(f"its memory budget of {budget.limit} bytes is taken")

    def decode_all(blobs: list[tuple[str, bytes]], hold: Hold) -> list[Image.Image]:
        """Every upload decoded and resized (consuming ``blobs``), after the pixel budget is checked on the headers."""
        names = [f"images[{index}] ({name})" for index, (name, _) in enumerate(blobs)]
        try:
            pixels = [
                decoded_pixels(blob, name, max_pixels, size) for name, (_, blob) in zip(names, blobs, strict=True)
            ]
            if sum(pixels) > max_request_pixels:
                raise _reject(
                    413,
                    f"the images of this request decode to {sum(pixels)} pixels, more than the limit of "
                    f"{max_request_pixels}; send fewer or smaller images per request",
                )
            sizes = [len(blob) for _, blob in blobs]
            kept = len(blobs) * size[0] * size[1] if size else sum(pixels)
            keep(hold, sum(sizes) + max(sizes) + HELD_BYTES_PER_PIXEL * kept)
            images = []
            for name, count in zip(names, pixels, strict=True):
                _, blob = blobs.pop(0)  # a part's bytes go once its image is decoded
                with budget.decoding(DECODE_BYTES_PER_PIXEL * count, request_timeout), decode_slots:
                    images.append(decode_image(blob, name, max_pixels, size, resample))
            return images
        except TimeoutError:
            raise busy(f"no room in its memory budget within {request_timeout:g} s") from None
        except ShuffleBitsError as error:
            raise _reject(400, str(error)) from error

    def compute(blobs: list[tuple[str, bytes]], response_id: str, submit: Callable[[list], Any], hold: Hold) -> dict:
        images = decode_all(blobs, hold)
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
            "memory_budget": budget.usage() if has_token(request) else None,
        }

    @app.post("/v1/features")
    async def features(request: Request) -> JSONResponse:
        check_token(request)
        admit()
        try:
            # a model call gathering now waits for this request's images
            with budget.holding() as hold, batcher.expecting() as submit:
                return await answer(request, submit, hold)
        finally:
            leave()

    async def answer(request: Request, submit: Callable[[list], Any], hold: Hold) -> JSONResponse:
        declared = _declared_length(request, max_request_bytes)
        keep(hold, 2 * (max_request_bytes if declared is None else declared))  # until the parts are known
        try:
            chunks = await asyncio.wait_for(_read_body(request, max_request_bytes), request_timeout)
        except TimeoutError:
            raise _reject(408, f"the request body did not arrive within {request_timeout:g} s") from None
        blobs = await _uploads(request, chunks, max_images)
        given = request.headers.get(REQUEST_ID_HEADER)
        response_id = given if valid_request_id(given) else secrets.token_hex(16)
        return JSONResponse(await run_in_threadpool(compute, blobs, response_id, submit, hold))

    return app
