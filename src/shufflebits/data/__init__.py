"""Re-ID data: real dataset layouts, attribute files, the synthetic world, image decoding, transforms.

The torch pieces (``ImageDataset``, ``RandomIdentitySampler``, transforms) load
lazily so that importing the loaders does not import torch.
"""

from __future__ import annotations

import importlib

from .attributes import SCHEMAS, AttributeSchema, load_attributes, save_attributes
from .images import MAX_PIXELS, load_image, read_image
from .layouts import load_dukemtmc, load_market1501, load_msmt17
from .records import SPLITS, ImageRecord, ReidDataset
from .sizes import parse_size
from .synth import generate_world

_LAZY = {
    "ImageDataset": "torch_dataset",
    "RandomIdentitySampler": "torch_dataset",
    "IMAGENET_MEAN": "transforms",
    "IMAGENET_STD": "transforms",
    "build_transforms": "transforms",
    "to_unit_tensor": "transforms",
}

__all__ = [
    "MAX_PIXELS",
    "SCHEMAS",
    "SPLITS",
    "AttributeSchema",
    "ImageRecord",
    "ReidDataset",
    "generate_world",
    "load_attributes",
    "load_dukemtmc",
    "load_image",
    "load_market1501",
    "load_msmt17",
    "parse_size",
    "read_image",
    "save_attributes",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
