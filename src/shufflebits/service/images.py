"""Images as a black box receives them: PIL images, file paths, encoded bytes or arrays.

Both backends accept the same inputs, so moving from the in-process box to the
HTTP one changes no caller code. PIL images and arrays travel as PNG (lossless),
so the server sees exactly the pixels the in-process box would.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image

from ..errors import ShuffleBitsError

ImageSource = Union[Image.Image, str, os.PathLike, bytes, np.ndarray]

# Re-ID crops are tiny; anything larger is a mistake or a decompression bomb.
MAX_PIXELS = 4096 * 4096


def decode_image(data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode encoded image bytes to RGB, checking the size before decoding pixels."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > max_pixels:
                raise ShuffleBitsError(
                    f"{name} is {image.width}x{image.height} pixels, more than the limit of {max_pixels}"
                )
            return image.convert("RGB")
    except ShuffleBitsError:
        raise
    except Exception as error:  # Pillow raises many types (OSError, SyntaxError, ValueError...) on corrupt data
        raise ShuffleBitsError(f"{name} is not a decodable image ({type(error).__name__}: {error})") from error


def _array_to_image(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ShuffleBitsError(f"image arrays must be uint8 HxWx3, got {array.dtype} {array.shape}")
    return Image.fromarray(array, "RGB")


def _read_file(path: str | os.PathLike) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise ShuffleBitsError(f"image file {path} does not exist")
    return path.read_bytes()


def to_pil(source: ImageSource, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Any accepted image source as an RGB PIL image."""
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    if isinstance(source, np.ndarray):
        return _array_to_image(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_image(bytes(source), max_pixels=max_pixels)
    if isinstance(source, (str, os.PathLike)):
        return decode_image(_read_file(source), name=str(source), max_pixels=max_pixels)
    raise ShuffleBitsError(f"cannot use a {type(source).__name__} as an image (PIL image, path, bytes or uint8 array)")


def as_image_list(images) -> list:
    """A list of image sources; a single image (even a path string) becomes a list of one."""
    single = (Image.Image, str, os.PathLike, bytes, bytearray, memoryview)
    if isinstance(images, single) or (isinstance(images, np.ndarray) and images.ndim == 3):
        images = [images]
    images = list(images)
    if not images:
        raise ShuffleBitsError("no images given to the black box")
    return images


def to_upload(source: ImageSource) -> tuple[str, bytes]:
    """(file name, encoded bytes) to send over HTTP; files go as they are on disk."""
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name, _read_file(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "image", bytes(source)
    if isinstance(source, np.ndarray):
        source = _array_to_image(source)
    if isinstance(source, Image.Image):
        buffer = io.BytesIO()
        source.convert("RGB").save(buffer, format="PNG", compress_level=1)
        return "image.png", buffer.getvalue()
    raise ShuffleBitsError(f"cannot use a {type(source).__name__} as an image (PIL image, path, bytes or uint8 array)")
