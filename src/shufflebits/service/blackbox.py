"""The black box interface: images in, feature vectors (or their ciphertext) out.

Attacks and the study only ever call ``features(images)``, so they run the same
against a model in this process or a remote service (``HttpBlackBox``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
from PIL import Image

from ..data.images import ImageSource, as_image_list, load_image
from ..engine.extract import check_batch_size, map_batches
from ..errors import ShuffleBitsError


class BlackBox(Protocol):
    def features(self, images: Sequence[ImageSource]) -> Any:
        """``(n, d)`` float32 features, or a ``Sealed`` when the box encrypts."""


class InProcessBlackBox:
    """A feature extractor (and optional cipher) behind the black-box interface."""

    def __init__(
        self,
        extractor: Callable[[Sequence[Image.Image]], np.ndarray],
        cipher: Any = None,
        batch_size: int = 64,
    ):
        self.extractor = extractor
        self.cipher = cipher
        self.batch_size = check_batch_size(batch_size)

    def features(self, images: Sequence[ImageSource]) -> Any:
        """Features of ``images``; decoded in batches so large lists stay in bounded memory."""
        images = as_image_list(images)
        if not images:
            raise ShuffleBitsError("no images given to the black box")
        parts = map_batches(self.extractor, images, self.batch_size, prepare=_decode_batch)
        features = np.concatenate([np.ascontiguousarray(part, dtype=np.float32) for part in parts])
        return self.cipher.encrypt(features, authenticate=True) if self.cipher is not None else features


def _decode_batch(images: Sequence[ImageSource]) -> list[Image.Image]:
    return [load_image(image) for image in images]
