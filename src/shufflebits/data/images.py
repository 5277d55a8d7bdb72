"""The one image decoder: a path, encoded bytes, a PIL image or a uint8 array in, an RGB PIL image out.

Training data, the feature extractors, the black boxes and the HTTP server all
decode here, so every entry point accepts the same inputs, refuses the same
decompression bombs (the size is checked before pixels are decoded) and fails
with the same one-line message. Pillow and numpy only: the HTTP client imports
it without torch.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ShuffleBitsError

ImageSource = Image.Image | str | os.PathLike | bytes | bytearray | memoryview | np.ndarray

# Re-ID crops are tiny; anything larger is a mistake or a decompression bomb.
MAX_PIXELS = 4096 * 4096

_SINGLE = (Image.Image, str, os.PathLike, bytes, bytearray, memoryview)


def _open_rgb(file, name: str, max_pixels: int) -> Image.Image:
    """Decode ``file`` (a path or a binary stream) to RGB, checking its size before its pixels."""
    try:
        with Image.open(file) as image:
            if image.width * image.height > max_pixels:
                raise ShuffleBitsError(
                    f"image {name} is {image.width}x{image.height} pixels, more than the limit of {max_pixels}"
                )
            return image.convert("RGB")
    except ShuffleBitsError:
        raise
    except Exception as error:  # Pillow raises many types (OSError, SyntaxError, ValueError...) on corrupt data
        detail = str(error).splitlines()[0] if str(error) else ""
        raise ShuffleBitsError(
            f"cannot read image {name}: not a decodable image ({type(error).__name__}: {detail})"
        ) from error


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open an image file as RGB, with a one-line error when it is missing, undecodable or too large."""
    path = Path(path)
    if not path.is_file():
        raise ShuffleBitsError(f"image {path} not found: the file does not exist")
    return _open_rgb(path, str(path), max_pixels)


def decode_image(data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode encoded image bytes (an upload, a file's contents) to RGB; ``name`` goes into errors."""
    return _open_rgb(io.BytesIO(data), name, max_pixels)


def array_to_image(array: np.ndarray) -> Image.Image:
    """A uint8 ``(H, W, 3)`` array as an RGB image; anything else is refused, not guessed at."""
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ShuffleBitsError(f"image arrays must be uint8 H x W x 3, got {array.dtype} {array.shape}")
    return Image.fromarray(array, "RGB")


def load_image(source: ImageSource, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Any accepted image source as an RGB PIL image."""
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    if isinstance(source, np.ndarray):
        return array_to_image(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_image(bytes(source), max_pixels=max_pixels)
    if isinstance(source, (str, os.PathLike)):
        return read_image(source, max_pixels=max_pixels)
    raise ShuffleBitsError(
        f"cannot use a {type(source).__name__} as an image (PIL image, path, encoded bytes or uint8 array)"
    )


def as_image_list(images) -> list:
    """A list of image sources; one image (a path string, bytes, an ``(H, W, 3)`` array) becomes a list of one."""
    if isinstance(images, _SINGLE) or (isinstance(images, np.ndarray) and images.ndim == 3):
        return [images]
    return list(images)
