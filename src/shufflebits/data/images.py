"""The one image decoder: a path, encoded bytes, a PIL image or a uint8 array in, an RGB PIL image out.

Training data, the feature extractors, the black boxes and the HTTP server all
decode here, so every entry point accepts the same inputs, refuses the same
decompression bombs (the size is checked before pixels are decoded), applies
the same EXIF orientation and fails with the same one-line message. Given the
model's input size, a JPEG is decoded at the smallest DCT scale that still
covers it (Pillow's ``draft``) and every image is resized as soon as it is
decoded, so a large upload never stays in memory at full size. Pillow and
numpy only: the HTTP client imports it without torch.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin

from ..errors import ShuffleBitsError

ImageSource = Image.Image | str | os.PathLike | bytes | bytearray | memoryview | np.ndarray

# Re-ID crops are tiny; anything larger is a mistake or a decompression bomb.
MAX_PIXELS = 4096 * 4096

_SINGLE = (Image.Image, str, os.PathLike, bytes, bytearray, memoryview)
_ORIENTATION = 0x0112  # EXIF tag; values 5-8 turn the image by 90 degrees
_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}

Size = tuple[int, int]  # (height, width), as models declare their input size


def _corrupt(name: str, error: Exception) -> ShuffleBitsError:
    detail = str(error).splitlines()[0] if str(error) else ""
    return ShuffleBitsError(f"cannot read image {name}: not a decodable image ({type(error).__name__}: {detail})")


def _open_lazy(file, name: str, max_pixels: int, size: Size | None) -> Image.Image:
    """Open ``file`` without decoding pixels: drafted towards ``size`` and checked against ``max_pixels``.

    Only a JPEG drafts, and only its EXIF is read here (from its header): Pillow
    reads a PNG's EXIF by decoding the whole image when it follows the pixels.
    """
    image = Image.open(file)
    try:
        if size is not None and isinstance(image, JpegImagePlugin.JpegImageFile):
            height, width = size
            if image.getexif().get(_ORIENTATION, 1) in (5, 6, 7, 8):
                height, width = width, height  # drafted before it is turned upright
            image.draft("RGB", (width, height))  # JPEG only: decode at 1/2, 1/4 or 1/8 scale, never below size
        if image.width * image.height > max_pixels:
            raise ShuffleBitsError(
                f"image {name} is {image.width}x{image.height} pixels, more than the limit of {max_pixels}"
            )
    except BaseException:
        image.close()
        raise
    return image


def _decode(file, name: str, max_pixels: int, size: Size | None, resample: str) -> Image.Image:
    """Decode ``file`` (a path or a binary stream) to upright RGB, resized to ``size`` (height, width) if given."""
    try:
        image = _open_lazy(file, name, max_pixels, size)
        try:
            turned = image.getexif().get(_ORIENTATION, 1) != 1
            rgb = image.convert("RGB")  # before turning upright, so the decoded original is freed before that copy
        finally:
            image.close()  # frees the pixels too (leaving a ``with`` block would only close the file)
        if turned:  # exif_transpose copies even an upright image
            rgb = ImageOps.exif_transpose(rgb)
        return _fit(rgb, size, resample)
    except ShuffleBitsError:
        raise
    except Exception as error:  # Pillow raises many types (OSError, SyntaxError, ValueError...) on corrupt data
        raise _corrupt(name, error) from error


def _fit(image: Image.Image, size: Size | None, resample: str) -> Image.Image:
    if size is None or image.size == (size[1], size[0]):
        return image
    return image.resize((size[1], size[0]), _RESAMPLE[resample])


def decoded_pixels(data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS, size: Size | None = None) -> int:
    """How many pixels ``decode_image(data, size=size)`` will decode, read from the header alone."""
    try:
        with _open_lazy(io.BytesIO(data), name, max_pixels, size) as image:
            return image.width * image.height
    except ShuffleBitsError:
        raise
    except Exception as error:
        raise _corrupt(name, error) from error


def read_image(
    path: str | os.PathLike, max_pixels: int = MAX_PIXELS, size: Size | None = None, resample: str = "bilinear"
) -> Image.Image:
    """Open an image file as RGB, with a one-line error when it is missing, undecodable or too large."""
    path = Path(path)
    if not path.is_file():
        raise ShuffleBitsError(f"image {path} not found: the file does not exist")
    return _decode(path, str(path), max_pixels, size, resample)


def decode_image(
    data: bytes,
    name: str = "image",
    max_pixels: int = MAX_PIXELS,
    size: Size | None = None,
    resample: str = "bilinear",
) -> Image.Image:
    """Decode encoded image bytes (an upload, a file's contents) to RGB; ``name`` goes into errors."""
    return _decode(io.BytesIO(data), name, max_pixels, size, resample)


def array_to_image(array: np.ndarray) -> Image.Image:
    """A uint8 ``(H, W, 3)`` array as an RGB image; anything else is refused, not guessed at."""
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ShuffleBitsError(f"image arrays must be uint8 H x W x 3, got {array.dtype} {array.shape}")
    return Image.fromarray(array, "RGB")


def load_image(
    source: ImageSource, max_pixels: int = MAX_PIXELS, size: Size | None = None, resample: str = "bilinear"
) -> Image.Image:
    """Any accepted image source as an RGB PIL image, resized to ``size`` (height, width) if given."""
    if isinstance(source, Image.Image):
        return _fit(source.convert("RGB"), size, resample)
    if isinstance(source, np.ndarray):
        return _fit(array_to_image(source), size, resample)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_image(bytes(source), max_pixels=max_pixels, size=size, resample=resample)
    if isinstance(source, (str, os.PathLike)):
        return read_image(source, max_pixels=max_pixels, size=size, resample=resample)
    raise ShuffleBitsError(
        f"cannot use a {type(source).__name__} as an image (PIL image, path, encoded bytes or uint8 array)"
    )


def as_image_list(images) -> list:
    """A list of image sources; one image (a path string, bytes, an ``(H, W, 3)`` array) becomes a list of one."""
    if isinstance(images, _SINGLE) or (isinstance(images, np.ndarray) and images.ndim == 3):
        return [images]
    return list(images)
