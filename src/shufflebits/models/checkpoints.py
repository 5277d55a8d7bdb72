"""Load model weights from the formats users bring, detected by their keys.

- ours: ``{"format": "shufflebits-checkpoint", "model", "num_classes",
  "input_size", "state_dict", ...}`` (written by training; optional
  ``model_kwargs``, ``normalize_features``, ``distance``, ``mean``, ``std``);
- torchreid: a bare state dict (or ``{"state_dict": ...}``, keys maybe prefixed
  ``module.``) for ``osnet_*``; torchreid records no input size, so 256x128;
- FastReID: ``{"model": {"backbone.…", "heads.…"}}`` for ``resnet50_bot``.

Everything loads with ``weights_only=True`` and ``strict=True``; only the
classifier may be dropped, when the caller asks for another number of classes.
"""

from __future__ import annotations

import math
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ..errors import ShuffleBitsError
from ..registry import create_model
from .fastreid import import_fastreid, is_fastreid_checkpoint

CHECKPOINT_FORMAT = "shufflebits-checkpoint"
DEFAULT_INPUT_SIZE = (256, 128)
_OSNET_BY_STEM_WIDTH = {16: "osnet_x0_25", 32: "osnet_x0_5", 48: "osnet_x0_75", 64: "osnet_x1_0"}
# What torch.load raises on a truncated or corrupt file.
_UNREADABLE = (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, IndexError, KeyError, struct.error)


@dataclass
class ModelWeights:
    """A state dict plus what inference needs to use it the way it was trained."""

    source: str  # "shufflebits", "torchreid" or "fastreid"
    state_dict: dict[str, torch.Tensor]
    num_classes: int
    model_name: str | None = None
    model_kwargs: dict = field(default_factory=dict)
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    normalize_features: bool = False
    distance: str = "euclidean"


def read_checkpoint(path: str | os.PathLike) -> object:
    """``torch.load`` with ``weights_only=True`` and one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise ShuffleBitsError(f"weights file {path} does not exist")
    with open(path, "rb") as handle:
        magic = handle.read(2)
    # torch.save writes a zip archive (b"PK"); very old releases a raw pickle (protocol byte 0x80).
    if magic not in (b"PK", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"):
        raise ShuffleBitsError(f"{path} is not a PyTorch checkpoint (.pth/.pt written by torch.save)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        lines = [line for line in str(error).splitlines() if "Unsupported" in line]
        reason = lines[0].split(" was not")[0].split("error: ")[-1].strip() if lines else "unsupported objects"
        raise ShuffleBitsError(
            f"{path} holds more than tensors and plain containers ({reason}); refusing to unpickle it "
            "(weights_only=True): re-save it as a plain state dict"
        ) from error
    except _UNREADABLE as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ShuffleBitsError(f"{path} is not a readable PyTorch checkpoint (truncated?): {detail}") from error


def _strip_module_prefix(state: dict) -> dict:
    if state and all(str(key).startswith("module.") for key in state):
        return {key[len("module.") :]: value for key, value in state.items()}
    return state


def _numbers(value: object, count: int, what: str, origin: str) -> tuple[float, ...]:
    """``count`` finite real numbers (metadata), or a one-line error naming the field."""
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ShuffleBitsError(
            f"{origin}: checkpoint {what} must be {count} numbers, got {str(value)[:60]!r}"
        ) from None
    if len(numbers) != count or not all(math.isfinite(v) for v in numbers):
        raise ShuffleBitsError(f"{origin}: checkpoint {what} must be {count} finite numbers, got {numbers}")
    return numbers


def _checked(weights: ModelWeights, origin: str) -> ModelWeights:
    """Preprocessing metadata a checkpoint may carry, checked before it is trusted (a bad std divides by zero)."""
    size = _numbers(weights.input_size, 2, "input_size", origin)
    if not all(v >= 1 and v == int(v) for v in size):
        raise ShuffleBitsError(f"{origin}: checkpoint input_size must be two positive integers, got {size}")
    weights.input_size = (int(size[0]), int(size[1]))
    weights.mean = _numbers(weights.mean, 3, "mean", origin)
    weights.std = _numbers(weights.std, 3, "std", origin)
    if min(weights.std) <= 0:
        raise ShuffleBitsError(f"{origin}: checkpoint std must be positive, got {weights.std}")
    if weights.num_classes < 1:
        raise ShuffleBitsError(f"{origin}: checkpoint num_classes must be positive, got {weights.num_classes}")
    if weights.distance not in ("euclidean", "cosine"):
        raise ShuffleBitsError(f"{origin}: checkpoint distance must be euclidean or cosine, got {weights.distance!r}")
    return weights


def parse_weights(obj: object, origin: str = "weights") -> ModelWeights:
    """Recognise one of the three formats in a loaded checkpoint object; its metadata is checked."""
    return _checked(_parse_weights(obj, origin), origin)


def _parse_weights(obj: object, origin: str) -> ModelWeights:
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        missing = [key for key in ("model", "num_classes", "state_dict") if key not in obj]
        if missing:
            raise ShuffleBitsError(f"{origin}: shufflebits checkpoint lacks {', '.join(missing)}")
        if isinstance(obj["num_classes"], bool) or not isinstance(obj["num_classes"], int):
            raise ShuffleBitsError(f"{origin}: checkpoint num_classes must be an integer, got {obj['num_classes']!r}")
        weights = ModelWeights(
            source="shufflebits",
            state_dict=obj["state_dict"],
            num_classes=obj["num_classes"],
            model_name=str(obj["model"]),
            model_kwargs=dict(obj.get("model_kwargs") or {}),
            normalize_features=bool(obj.get("normalize_features", False)),
            distance=str(obj.get("distance", "euclidean")),
        )
        for name in ("input_size", "mean", "std"):
            if obj.get(name) is not None:
                setattr(weights, name, obj[name])
        return weights
    if is_fastreid_checkpoint(obj):
        state, info = import_fastreid(obj)
        return ModelWeights(source="fastreid", state_dict=state, model_name="resnet50_bot", **info)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = _strip_module_prefix(obj)
        if "classifier.weight" not in state:
            raise ShuffleBitsError(f"{origin}: state dict has no classifier.weight; not a torchreid re-ID model")
        stem = state.get("conv1.conv.weight")
        name = _OSNET_BY_STEM_WIDTH.get(int(stem.shape[0])) if stem is not None else None
        return ModelWeights(
            source="torchreid", state_dict=state, num_classes=int(state["classifier.weight"].shape[0]), model_name=name
        )
    raise ShuffleBitsError(
        f"{origin}: unrecognised checkpoint (expected a shufflebits checkpoint, a torchreid state dict "
        "or a FastReID checkpoint)"
    )


def _describe_mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> str:
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    shapes = [
        f"{key} {tuple(state[key].shape)} vs {tuple(expected[key].shape)}"
        for key in expected
        if key in state and tuple(state[key].shape) != tuple(expected[key].shape)
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches (e.g. {shapes[0]})")
    return "; ".join(parts)


def load_model(
    name: str,
    weights: str | os.PathLike | ModelWeights | None = None,
    num_classes: int | None = None,
    **model_kwargs,
) -> tuple[nn.Module, ModelWeights | None]:
    """Build registry model ``name`` and load ``weights`` strictly; returns (model, weights info).

    ``num_classes`` defaults to the checkpoint's classifier size; a different
    value keeps a fresh classifier (fine-tuning on another identity set) and
    loads everything else strictly.
    """
    if weights is None:
        return create_model(name, num_classes=1000 if num_classes is None else num_classes, **model_kwargs), None
    origin = str(weights) if not isinstance(weights, ModelWeights) else "weights"
    info = weights if isinstance(weights, ModelWeights) else parse_weights(read_checkpoint(weights), origin)
    if info.model_name is not None and info.model_name != name:
        raise ShuffleBitsError(
            f"{origin} holds {info.source} {info.model_name} weights, not {name}; "
            f"use the model name {info.model_name!r}"
        )
    classes = info.num_classes if num_classes is None else num_classes
    model = create_model(name, num_classes=classes, **{**info.model_kwargs, **model_kwargs})
    state = info.state_dict
    if classes != info.num_classes:
        state = {key: value for key, value in state.items() if not key.startswith("classifier.")}
        state.update({key: value for key, value in model.state_dict().items() if key.startswith("classifier.")})
    problem = _describe_mismatch(model, state)
    if problem:
        raise ShuffleBitsError(f"{origin} does not fit {name}: {problem}")
    model.load_state_dict(state, strict=True)
    return model, info
