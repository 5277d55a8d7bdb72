"""Float features <-> unsigned integer words, without float arithmetic.

Every cipher works on the raw IEEE-754 bits, so NaN payloads, -0.0, infinities
and denormals survive bit-exact. Big-endian and non-contiguous inputs become
native-endian contiguous words through integer casts only.
"""

from __future__ import annotations

import numpy as np

WORD_DTYPES = {"float16": np.uint16, "bfloat16": np.uint16, "float32": np.uint32, "float64": np.uint64}


def _unsupported(dtype) -> TypeError:
    return TypeError(
        f"cannot encrypt dtype {dtype}; supported: float16, bfloat16 (torch), float32, float64 "
        "(convert with .astype(np.float32))"
    )


def _is_tensor(x) -> bool:
    return type(x).__module__.startswith("torch")


def to_words(features) -> tuple[np.ndarray, str]:
    """``(words, dtype_name)``: native-endian contiguous unsigned words of ``features``."""
    if _is_tensor(features):
        import torch

        tensor = features.detach().cpu().contiguous()
        names = {
            torch.float16: "float16",
            torch.bfloat16: "bfloat16",
            torch.float32: "float32",
            torch.float64: "float64",
        }
        if tensor.dtype not in names:
            raise _unsupported(tensor.dtype)
        name = names[tensor.dtype]
        signed = {2: torch.int16, 4: torch.int32, 8: torch.int64}[tensor.element_size()]
        return tensor.view(signed).numpy().view(WORD_DTYPES[name]), name
    array = np.asarray(features)
    if array.dtype.kind != "f" or array.dtype.itemsize not in (2, 4, 8):
        raise _unsupported(array.dtype)
    name = f"float{8 * array.dtype.itemsize}"
    same_order = np.dtype(WORD_DTYPES[name]).newbyteorder(array.dtype.byteorder)
    return contiguous(array.view(same_order).astype(WORD_DTYPES[name], copy=False)), name


def from_words(words: np.ndarray, dtype_name: str):
    """Inverse of ``to_words``: a numpy array, or a torch tensor for bfloat16."""
    if dtype_name == "bfloat16":
        import torch

        return torch.from_numpy(contiguous(words).view(np.int16)).view(torch.bfloat16)
    if dtype_name not in WORD_DTYPES:
        raise TypeError(f"unknown feature dtype {dtype_name!r}")
    return contiguous(words).view(np.dtype(dtype_name))


def contiguous(array: np.ndarray) -> np.ndarray:
    """C-contiguous, keeping 0-d arrays 0-d (``np.ascontiguousarray`` does not)."""
    return array if array.flags.c_contiguous else array.copy(order="C")


def unsigned(array: np.ndarray) -> np.ndarray:
    """A native-endian ``array``'s bits as unsigned integers of the same width (a view when contiguous)."""
    return contiguous(array).view(np.dtype(f"u{array.dtype.itemsize}"))
