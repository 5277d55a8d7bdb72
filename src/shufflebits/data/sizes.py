"""Image sizes as (height, width), parsed from the CLI's 'HxW' form."""

from __future__ import annotations

import re

from ..errors import ShuffleBitsError

_HXW = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", re.ASCII)


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' (e.g. '256x128') -> (H, W), with a one-line error otherwise."""
    match = _HXW.fullmatch(text)
    if not match or min(int(match.group(1)), int(match.group(2))) < 1:
        raise ShuffleBitsError(f"size must be HxW with positive integers (e.g. 256x128), got {text!r}")
    return int(match.group(1)), int(match.group(2))


def check_size(size) -> tuple[int, int]:
    """Validate a (height, width) pair of positive integers."""
    if len(size) != 2 or min(int(size[0]), int(size[1])) < 1:
        raise ShuffleBitsError(f"size must be (height, width) with positive values, got {size!r}")
    return int(size[0]), int(size[1])
