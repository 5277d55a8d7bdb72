"""torchreid-style transforms with Pillow, numpy and torch only (images are decoded by ``data.images``).

torchvision does not import beside our pinned torch, so the few transforms
re-ID needs are written here with torchreid's conventions: bilinear resize to
(H, W), for training random horizontal flip, 10-pixel zero padding + random
crop and random erasing, then [0, 1] scaling and ImageNet normalisation.
Randomness comes from torch's generator, which DataLoader seeds per worker.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageOps

from .images import read_image
from .sizes import check_size

# read_image stays importable from here for callers written before data.images existed.
__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ReidTransform",
    "build_transforms",
    "random_erase",
    "read_image",
    "to_unit_tensor",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_unit_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB image -> float32 tensor (3, H, W) in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


def build_transforms(
    size: tuple[int, int] = (256, 128),
    train: bool = False,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    random_erasing: bool = True,
) -> Callable[[Image.Image], torch.Tensor]:
    """A callable PIL image -> normalised float tensor (3, H, W).

    ``train`` adds flip, pad-10 random crop and (if ``random_erasing``) erasing.
    """
    return ReidTransform(check_size(size), train, tuple(mean), tuple(std), random_erasing)


class ReidTransform:
    """The transform ``build_transforms`` returns; a class so DataLoader workers can pickle it."""

    def __init__(self, size: tuple[int, int], train: bool, mean: tuple, std: tuple, random_erasing: bool):
        self.height, self.width = size
        self.train, self.mean, self.random_erasing = train, mean, random_erasing
        self.mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        height, width = self.height, self.width
        image = image.convert("RGB").resize((width, height), Image.BILINEAR)
        if self.train:
            if torch.rand(()) < 0.5:
                image = ImageOps.mirror(image)
            image = ImageOps.expand(image, border=10, fill=0)
            top = int(torch.randint(0, 21, ()))
            left = int(torch.randint(0, 21, ()))
            image = image.crop((left, top, left + width, top + height))
        tensor = (to_unit_tensor(image) - self.mean_t) / self.std_t
        if self.train and self.random_erasing:
            tensor = random_erase(tensor, fill=self.mean)
        return tensor


def random_erase(
    tensor: torch.Tensor,
    probability: float = 0.5,
    area: tuple[float, float] = (0.02, 0.4),
    min_aspect: float = 0.3,
    fill: tuple[float, float, float] = IMAGENET_MEAN,
) -> torch.Tensor:
    """torchreid's RandomErasing: with ``probability``, fill one random rectangle.

    The rectangle covers ``area`` of the image with aspect in [min_aspect, 1/min_aspect];
    like torchreid it is filled with the per-channel ``fill`` values.
    """
    if torch.rand(()) >= probability:
        return tensor
    _, height, width = tensor.shape
    for _ in range(100):
        target = float(torch.empty(()).uniform_(*area)) * height * width
        aspect = float(torch.empty(()).uniform_(min_aspect, 1.0 / min_aspect))
        h = round(math.sqrt(target * aspect))
        w = round(math.sqrt(target / aspect))
        if 0 < h < height and 0 < w < width:
            top = int(torch.randint(0, height - h + 1, ()))
            left = int(torch.randint(0, width - w + 1, ()))
            tensor = tensor.clone()
            tensor[:, top : top + h, left : left + w] = torch.tensor(fill, dtype=tensor.dtype).view(3, 1, 1)
            return tensor
    return tensor
