"""Re-ID models by name (OSNet with torchreid keys, ResNet50-BoT with FastReID import) and feature extractors.

Importing this package registers every model, so ``create_model("osnet_x0_25")``
works from anywhere. Contract: ``eval()`` forward returns features ``(n, d)``,
``train()`` forward returns ``(logits, features)``; models expose
``feature_dim`` and ``num_classes``.
"""

from ..data.images import load_image
from ..registry import create_model
from . import osnet, resnet  # noqa: F401  (registers the models)
from .checkpoints import CHECKPOINT_FORMAT, ModelWeights, load_model, parse_weights, read_checkpoint
from .extractor import FeatureExtractor, OnnxExtractor, TorchExtractor, build_extractor
from .fastreid import import_fastreid

__all__ = [
    "CHECKPOINT_FORMAT",
    "FeatureExtractor",
    "ModelWeights",
    "OnnxExtractor",
    "TorchExtractor",
    "build_extractor",
    "create_model",
    "import_fastreid",
    "load_image",
    "load_model",
    "parse_weights",
    "read_checkpoint",
]
