"""``HttpBlackBox``: the client side of ``POST /v1/features``.

Large image lists are sent in batches. Connection failures, timeouts and 5xx
answers are retried with exponential backoff (features are idempotent, so a
repeated request is harmless); 4xx answers are the caller's mistake and are
reported at once, never retried. Every answer must hold one row per image sent
and the width of the first answer: a server that drops, adds or reshapes rows
is reported, never silently combined. Encrypted answers must be sealed unless
``allow_untagged=True`` (an exported model that encrypts in its own graph holds
no MAC key): over plain HTTP, anything in between can strip the seals and flip
bits, and the key holder's default ``decrypt`` accepts untagged ciphertext.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any

import httpx

from ..data.images import ImageSource, as_image_list
from ..engine.extract import map_batches
from ..errors import IntegrityError, ShuffleBitsError
from .images import to_upload
from .wire import REQUEST_ID_HEADER, concatenate_results, decode_result


class HttpBlackBox:
    """A remote black box at ``url`` (e.g. ``http://127.0.0.1:8000``)."""

    def __init__(
        self,
        url: str,
        token: str,
        batch_size: int = 32,
        retries: int = 3,
        timeout: float = 60.0,
        backoff: float = 0.5,
        *,
        allow_untagged: bool = False,
    ):
        if batch_size < 1 or retries < 0 or timeout <= 0 or backoff < 0:
            raise ShuffleBitsError("batch_size and timeout must be positive, retries and backoff non-negative")
        if not token or not token.isascii() or not token.isprintable() or token != token.strip():
            raise ShuffleBitsError("the token must be non-empty printable ASCII without surrounding spaces")
        self.url = url.rstrip("/")
        self.batch_size = batch_size
        self.retries = retries
        self.backoff = backoff
        self.allow_untagged = allow_untagged
        self._client = httpx.Client(base_url=self.url, timeout=timeout, headers={"Authorization": f"Bearer {token}"})

    def __enter__(self) -> HttpBlackBox:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def health(self) -> dict:
        """The server's model name, feature dimension, input size and encryption state."""
        return self._request("GET", "/v1/health").json()

    def features(self, images: Sequence[ImageSource]) -> Any:
        """Features of ``images``: ``(n, d)`` float32, or a ``Sealed`` if the server encrypts."""
        images = as_image_list(images)
        if not images:
            raise ShuffleBitsError("no images given to the black box")
        parts = list(map_batches(self._post, images, self.batch_size, prepare=_uploads))
        widths = {part.shape[1] for part in parts}
        if len(widths) != 1:
            raise ShuffleBitsError(
                f"{self.url} answered features of different widths ({', '.join(map(str, sorted(widths)))}) "
                "for one list of images; the answers cannot be combined"
            )
        return concatenate_results(parts)

    def _post(self, files: list) -> Any:
        """One ``POST /v1/features`` of a batch of uploads, decoded and checked for one row per image."""
        request_id = secrets.token_hex(16)
        response = self._request("POST", "/v1/features", files=files, headers={REQUEST_ID_HEADER: request_id})
        try:
            body = response.json()
        except (ValueError, RecursionError) as error:  # RecursionError: JSON nested too deep
            raise ShuffleBitsError(f"{self.url} answered something that is not JSON") from error
        result = decode_result(body)
        if isinstance(body, dict) and body.get("version") is not None and body.get("response_id") != request_id:
            raise IntegrityError(f"{self.url} answered request {request_id} with the answer to another request")
        if getattr(result, "authenticated", True) is False and not self.allow_untagged:  # plaintext has none
            raise IntegrityError(
                f"{self.url} answered untagged {result.cipher} ciphertext (authenticated=False): its seals were "
                "stripped on the way, or the model encrypts in its own graph; pass allow_untagged=True to accept "
                "raw ciphertext that cannot be checked for tampering"
            )
        rows, width = (result.shape[0], result.shape[1]) if len(result.shape) == 2 else (None, None)
        if rows != len(files) or not width:
            raise ShuffleBitsError(
                f"{self.url} answered features of shape {list(result.shape)} for {len(files)} images; "
                f"expected {len(files)} rows of at least one value"
            )
        return result

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request with retries on connection errors and 5xx, none on 4xx."""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self._client.request(method, path, **kwargs)
            except httpx.TransportError as error:
                failure = f"{type(error).__name__}: {error}"
                continue
            if response.status_code < 400:
                return response
            if response.status_code < 500:
                raise ShuffleBitsError(
                    f"{self.url}{path} refused the request (HTTP {response.status_code}): {_detail(response)}"
                )
            failure = f"HTTP {response.status_code}: {_detail(response)}"
        raise ShuffleBitsError(f"{self.url}{path} failed after {self.retries + 1} attempts; last error: {failure}")


def _uploads(images: Sequence[ImageSource]) -> list:
    """The multipart ``images`` fields of one request."""
    return [("images", (*to_upload(image), "application/octet-stream")) for image in images]


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except (ValueError, AttributeError, RecursionError):
        return response.text[:200] or response.reason_phrase
