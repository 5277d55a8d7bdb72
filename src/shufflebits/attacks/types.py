"""What the attacker holds: features of an image set, with labels where known."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LabelledFeatures:
    """Black-box features of one image set, aligned row by row with its labels.

    ``features`` are the victim's plaintext outputs; ciphers are applied by the
    attack code so every cipher sees the same rows. ``images`` are small copies
    of the inputs (for reconstruction attacks), or ``None``.
    """

    features: np.ndarray  # (n, d) float32
    labels: np.ndarray  # (n, a) int64 attribute classes, -1 where missing
    attribute_names: list[str]
    num_classes: list[int]
    pids: np.ndarray  # (n,) int64 identities
    camids: np.ndarray  # (n,) int64 cameras
    images: np.ndarray | None = None  # (n, 3, h, w) float32 in [0, 1]

    def __post_init__(self) -> None:
        n = len(self.features)
        for name in ("labels", "pids", "camids", "images"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} rows but features have {n}")
        if self.labels.shape[1:] != (len(self.attribute_names),):
            raise ValueError("labels need one column per attribute name")
        if len(self.num_classes) != len(self.attribute_names):
            raise ValueError("num_classes needs one entry per attribute name")

    def __len__(self) -> int:
        return len(self.features)
