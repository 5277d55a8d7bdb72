"""Image sizes as (height, width), parsed from the CLI's 'HxW' form."""

from __future__ import annotations

from ..errors import ShuffleBitsError


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' (e.g. '256x128') -> (H, W), with a one-line error otherwise."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        raise ShuffleBitsError(f"size must look like HxW (e.g. 128x64), got {text!r}")
    return check_size((int(parts[0]), int(parts[1])))


def check_size(size) -> tuple[int, int]:
    """Validate a (height, width) pair of positive integers."""
    if len(size) != 2 or min(int(size[0]), int(size[1])) < 1:
        raise ShuffleBitsError(f"size must be (height, width) with positive values, got {size!r}")
    return int(size[0]), int(size[1])
