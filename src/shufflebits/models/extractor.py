"""Feature extractors: images in, ``(n, d)`` float32 features out, preprocessed as the model was trained.

Preprocessing is torchreid's inference convention (RGB, resize to H x W with
Pillow, scale to [0, 1], ImageNet mean/std), done here with Pillow + numpy
because torchvision is unavailable; Pillow's resize is exactly what
torchvision's ``Resize`` calls on PIL images. FastReID imports use bicubic
resizing and their recorded pixel mean/std. Two backends share it: a PyTorch
model from the registry, or any re-ID ONNX model run by onnxruntime.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.images import as_image_list, load_image
from ..data.sizes import check_size
from ..engine.extract import check_batch_size, map_batches
from ..errors import ShuffleBitsError
from ..runtime import check_device
from .checkpoints import DEFAULT_INPUT_SIZE, IMAGENET_MEAN, IMAGENET_STD, ModelWeights, load_model

# On CPU a forward over many large images spills its activations out of the
# cache: at 256x128, OSNet-x0.25 runs about twice as fast per image in forwards
# of 16 images as in forwards of 64 (scripts/bench_extract.py), so CPU batches
# are split into forwards of at most this many pixels.
CPU_PIXELS_PER_FORWARD = 16 * 256 * 128


class FeatureExtractor(ABC):
    """Shared preprocessing, batching, flip-test and normalisation; backends run the model."""

    def __init__(
        self,
        input_size: tuple[int, int],
        feature_dim: int,
        *,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        interpolation: str = "bilinear",
        normalize_features: bool = False,
        distance: str = "euclidean",
        batch_size: int = 64,
        name: str = "",
        source: str = "random",
    ):
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.feature_dim = int(feature_dim)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.interpolation = interpolation
        self.normalize_features = bool(normalize_features)
        self.distance = distance
        self.batch_size = int(batch_size)
        self.name = name
        self.source = source

    @property
    def metadata(self) -> dict:
        """What a consumer of the features needs to know to compare them correctly."""
        return {
            "model": self.name,
            "weights": self.source,
            "input_size": list(self.input_size),
            "feature_dim": self.feature_dim,
            "normalize_features": self.normalize_features,
            "distance": self.distance,
        }

    def preprocess(self, images: Iterable) -> np.ndarray:
        """``(n, 3, H, W)`` float32, resized to ``input_size`` and mean/std normalised."""
        height, width = self.input_size
        arrays = []
        for image in images:
            pil = load_image(image, size=self.input_size, resample=self.interpolation)
            pixels = np.asarray(pil, dtype=np.float32) / np.float32(255.0)
            arrays.append(((pixels - self.mean) / self.std).transpose(2, 0, 1))
        if not arrays:
            return np.zeros((0, 3, height, width), dtype=np.float32)
        return np.ascontiguousarray(np.stack(arrays))

    @abstractmethod
    def _run(self, batch: np.ndarray) -> np.ndarray:
        """Raw ``(n, d)`` model outputs for a preprocessed batch."""

    @abstractmethod
    def embed_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Features of a float batch ``(n, 3, H, W)`` in [0, 1], resized and normalised inside."""

    def embed_array(self, batch: np.ndarray, flip: bool = False) -> np.ndarray:
        """Features of a preprocessed batch; ``flip`` averages with the mirrored images (flip-test)."""
        features = self._run(batch)
        if flip:
            features = (features + self._run(np.ascontiguousarray(batch[..., ::-1]))) / 2
        if self.normalize_features:
            features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        return features.astype(np.float32, copy=False)

    def __call__(self, images: Sequence, flip: bool = False) -> np.ndarray:
        """``(n, feature_dim)`` float32 features of PIL images, paths, encoded bytes or uint8 H x W x 3 arrays."""
        embed = partial(self.embed_array, flip=flip)
        chunks = list(map_batches(embed, as_image_list(images), self.batch_size, prepare=self.preprocess))
        if not chunks:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
        return np.concatenate(chunks)

    def _prepare_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Resize a [0, 1] float batch to ``input_size`` and normalise it, differentiably."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ShuffleBitsError(f"embed_tensor expects (n, 3, H, W), got {tuple(x.shape)}")
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode=self.interpolation, align_corners=False, antialias=True)
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std


class TorchExtractor(FeatureExtractor):
    """A registry model in ``eval()`` mode on ``device``."""

    def __init__(self, model: torch.nn.Module, device: str = "cpu", channels_last: bool = False, **kwargs):
        """``channels_last``: NHWC convolutions, faster for OSNet on CPU at the service's small batches
        (``scripts/bench_service.py --layouts`` measures both), equal to the default layout within float
        rounding but not bit for bit: the service opts in; ``extract`` and the study keep the default,
        so their features and figures stay reproducible against earlier runs.
        """
        super().__init__(feature_dim=model.feature_dim, **kwargs)
        # Normalisation happens once, after the flip-test average, in embed_array.
        model.normalize = False
        # Inference only: gradients flow to the input images (embed_tensor), never to the weights.
        self.model = model.eval().requires_grad_(False).to(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)
        self.device = device

    def _run(self, batch: np.ndarray) -> np.ndarray:
        step = len(batch)
        if self.device == "cpu":
            step = max(1, CPU_PIXELS_PER_FORWARD // (batch.shape[2] * batch.shape[3]))
        with torch.inference_mode():
            outputs = [
                self.model(
                    torch.from_numpy(batch[start : start + step]).to(self.device, memory_format=self.memory_format)
                )
                .float()
                .cpu()
                .numpy()
                for start in range(0, len(batch), step)
            ]
        return np.concatenate(outputs) if outputs else np.zeros((0, self.feature_dim), np.float32)

    def embed_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Features of a float batch in [0, 1] of any size; differentiable (gradient-based attacks use it)."""
        features = self.model(self._prepare_tensor(x.to(self.device)))
        return F.normalize(features, dim=1) if self.normalize_features else features


class OnnxExtractor(FeatureExtractor):
    """Any re-ID ONNX model with one image input (n, 3, H, W) and one (n, d) output."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu", size: tuple[int, int] | None = None, **kwargs):
        import onnxruntime

        path = Path(path)
        if not path.is_file():
            raise ShuffleBitsError(f"ONNX model {path} does not exist")
        providers = ["CPUExecutionProvider"]
        if device != "cpu":
            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                raise ShuffleBitsError(
                    f"device {device!r} needs onnxruntime-gpu (CUDAExecutionProvider is not available)"
                )
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=providers)
        except Exception as error:  # onnxruntime raises its own exception types for malformed files
            raise ShuffleBitsError(f"cannot load ONNX model {path}: {str(error).splitlines()[0]}") from error
        node = self.session.get_inputs()[0]
        self.input_name = node.name
        if len(node.shape) != 4:
            raise ShuffleBitsError(f"{path}: expected an image input (n, 3, H, W), got shape {node.shape}")
        fixed = tuple(node.shape[2:]) if all(isinstance(d, int) for d in node.shape[2:]) else None
        if size is not None and fixed is not None and tuple(size) != fixed:
            raise ShuffleBitsError(f"{path} takes {fixed[0]}x{fixed[1]} images only, not {size[0]}x{size[1]}")
        self.fixed_batch = node.shape[0] if isinstance(node.shape[0], int) else None
        input_size = size or fixed or DEFAULT_INPUT_SIZE
        super().__init__(input_size=input_size, feature_dim=0, source=str(path), **kwargs)
        output_dim = self.session.get_outputs()[0].shape[-1]
        if isinstance(output_dim, int):
            self.feature_dim = output_dim
        else:
            self.feature_dim = self._run(np.zeros((1, 3, *self.input_size), dtype=np.float32)).shape[1]

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self.fixed_batch is None:
            return self.session.run(None, {self.input_name: batch})[0].reshape(len(batch), -1)
        step = self.fixed_batch
        outputs = []
        for start in range(0, len(batch), step):
            part = batch[start : start + step]
            padded = np.concatenate([part, np.zeros((step - len(part), *part.shape[1:]), np.float32)])
            outputs.append(self.session.run(None, {self.input_name: padded})[0][: len(part)].reshape(len(part), -1))
        return np.concatenate(outputs) if outputs else np.zeros((0, self.feature_dim), np.float32)

    def embed_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Features of a float batch in [0, 1]; NOT differentiable (onnxruntime is a black box)."""
        batch = self._prepare_tensor(x.detach().float().cpu()).numpy()
        return torch.from_numpy(self.embed_array(np.ascontiguousarray(batch))).to(x.device)


def build_extractor(
    name: str,
    weights: str | os.PathLike | None = None,
    device: str = "cpu",
    size: tuple[int, int] | None = None,
    normalize: bool | None = None,
    batch_size: int = 64,
    pretrained: str | None = None,
    channels_last: bool = False,
) -> FeatureExtractor:
    """Extractor for registry model ``name`` (with ``weights`` or a zoo victim ``pretrained``) or ``"onnx:PATH"``.

    ``size`` (H, W) defaults to the size recorded in our checkpoint, else 256x128
    (torchreid and FastReID record none) or the ONNX model's fixed input.
    ``channels_last`` applies to registry models (``TorchExtractor``); ONNX models keep their layout.
    ``normalize`` (L2) defaults to what the weights' framework does: off for
    torchreid and our checkpoints unless recorded, on for FastReID imports.
    """
    device = check_device(device)
    if size is not None:
        size = check_size(size)
    check_batch_size(batch_size)
    if pretrained is not None and (weights is not None or name.startswith("onnx:")):
        raise ShuffleBitsError("a pretrained zoo victim carries its weights; give no weights file or ONNX model")
    if name.startswith("onnx:"):
        if weights is not None:
            raise ShuffleBitsError("onnx:PATH models carry their weights; leave weights=None")
        from .export import EncryptedOnnxExtractor, exported_cipher

        info = exported_cipher(name[len("onnx:") :])
        if info is not None:  # an exported encrypting model: it answers Sealed ciphertext
            return EncryptedOnnxExtractor(
                name[len("onnx:") :], info, device=device, size=size, batch_size=batch_size, name=name
            )
        return OnnxExtractor(
            name[len("onnx:") :],
            device=device,
            size=size,
            normalize_features=bool(normalize),
            batch_size=batch_size,
            name=name,
        )
    if pretrained is not None:
        from .zoo import pretrained_model, read_card

        model = pretrained_model(name, pretrained)
        info = ModelWeights(
            source="zoo",
            state_dict={},
            num_classes=model.num_classes,
            input_size=tuple(read_card(pretrained)["input_size"]),
        )
    else:
        model, info = load_model(name, weights)
    if info is None:
        info = ModelWeights(source="random", state_dict={}, num_classes=model.num_classes)
    if normalize is None:
        normalize = info.normalize_features or bool(getattr(model, "normalize", False))
    return TorchExtractor(
        model,
        device=device,
        input_size=size or info.input_size,
        mean=info.mean,
        std=info.std,
        interpolation=info.interpolation,
        normalize_features=normalize,
        distance=info.distance,
        batch_size=batch_size,
        name=name,
        source=info.source,
        channels_last=channels_last,
    )
