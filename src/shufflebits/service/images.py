"""Images as the HTTP black box sends them: every accepted source as (file name, encoded bytes).

Decoding lives in ``shufflebits.data.images`` (one decoder for the extractor,
both black boxes and the server); this module re-exports what the server
uses. PIL images and arrays travel as PNG (lossless), so the server sees
exactly the pixels the in-process box would; files go as they are on disk.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.images import (
    MAX_PIXELS,
    ImageSource,
    array_to_image,
    as_image_list,
    decode_image,
    decoded_pixels,
    load_image,
)
from ..errors import ShuffleBitsError

__all__ = ["MAX_PIXELS", "ImageSource", "as_image_list", "decode_image", "decoded_pixels", "load_image", "to_upload"]


def to_upload(source: ImageSource) -> tuple[str, bytes]:
    """(file name, encoded bytes) to send over HTTP; files go as they are on disk."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ShuffleBitsError(f"image {path} not found: the file does not exist")
        return path.name, path.read_bytes()
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "image", bytes(source)
    if isinstance(source, np.ndarray):
        source = array_to_image(source)
    if isinstance(source, Image.Image):
        buffer = io.BytesIO()
        source.convert("RGB").save(buffer, format="PNG", compress_level=1)
        return "image.png", buffer.getvalue()
    raise ShuffleBitsError(
        f"cannot use a {type(source).__name__} as an image (PIL image, path, encoded bytes or uint8 array)"
    )
