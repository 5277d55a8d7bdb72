"""The black box interface: images in, feature vectors (or their ciphertext) out.

Attacks and the study only ever call ``features(images)``, so they run the same
against a model in this process or a remote service (``HttpBlackBox``).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

import numpy as np
from PIL import Image

from ..errors import ShuffleBitsError
from .images import ImageSource, as_image_list, to_pil


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
        if batch_size < 1:
            raise ShuffleBitsError(f"batch_size must be positive, got {batch_size}")
        self.extractor = extractor
        self.cipher = cipher
        self.batch_size = batch_size

    def features(self, images: Sequence[ImageSource]) -> Any:
        """Features of ``images``; decoded in batches so large lists stay in bounded memory."""
        images = as_image_list(images)
        parts = []
        for start in range(0, len(images), self.batch_size):
            batch = [to_pil(image) for image in images[start : start + self.batch_size]]
            parts.append(np.ascontiguousarray(self.extractor(batch), dtype=np.float32))
        features = np.concatenate(parts)
        return self.cipher.encrypt(features) if self.cipher is not None else features
