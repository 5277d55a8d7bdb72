"""Import FastReID ResNet50 BoT checkpoints (e.g. the paper's ``msmt_bot_R50.pth``).

FastReID saves ``{"model": state_dict, "optimizer": ..., "iteration": ...}`` with
keys ``backbone.conv1.weight``, ``backbone.layer1.0.conv1.weight``...,
``heads.bottleneck.0.{weight,bias,running_mean,running_var}`` (the BNNeck),
``heads.weight`` (``heads.classifier.weight`` in older releases), optionally
``heads.pool_layer.p`` (GeM) and ``pixel_mean`` / ``pixel_std`` (0-255 scale).
The mapping below renames them onto ``resnet50_bot``; nothing else is converted.

Preprocessing and metric differ from torchreid's and are recorded with the
weights: FastReID resizes with bicubic interpolation and L2-normalises its
features (inside the model in early releases, in the evaluator later) before
ranking by cosine similarity, so an imported model's extractor normalises its
output (``normalize_features=True``) and reports ``distance="cosine"``.
torchreid normalises nothing by default and ranks raw features by Euclidean
distance (``normalize_features=False``, ``distance="euclidean"``). A user with
the real file runs::

    shufflebits extract --model resnet50_bot --weights msmt_bot_R50.pth \\
        --images Market-1501/query --out query.npz
    shufflebits reid --query query.npz --gallery gallery.npz --metric cosine

Checkpoints load with ``weights_only=True``; if a file's optimizer/scheduler
state holds objects that refuses (e.g. numpy scalars), keep only the weights
once, from a source you trust::

    python -c "import torch; c = torch.load('msmt_bot_R50.pth', weights_only=False); \\
        torch.save({'model': c['model']}, 'msmt_bot_R50_weights.pth')"
"""

from __future__ import annotations

import torch

from ..errors import ShuffleBitsError

IMAGENET_PIXEL_MEAN = (123.675, 116.28, 103.53)
IMAGENET_PIXEL_STD = (58.395, 57.12, 57.375)
_BACKBONE_PREFIXES = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")


def is_fastreid_checkpoint(obj: object) -> bool:
    """FastReID checkpoints nest the state dict under ``model`` with ``backbone.``/``heads.`` keys."""
    if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
        return False
    return any(str(key).startswith("backbone.") for key in obj["model"])


def _rename(key: str) -> str | None:
    """Our ``resnet50_bot`` key for a FastReID key, or None when we have no such parameter."""
    if key.startswith("backbone.") and key[len("backbone.") :].startswith(_BACKBONE_PREFIXES):
        return key[len("backbone.") :]
    if key.startswith("heads.bottleneck.0."):
        return "bottleneck." + key[len("heads.bottleneck.0.") :]
    if key in ("heads.weight", "heads.classifier.weight"):
        return "classifier.weight"
    if key == "heads.pool_layer.p":
        return "pool.p"
    return None


def import_fastreid(checkpoint: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Map a FastReID checkpoint onto ``resnet50_bot``: returns (state_dict, info).

    ``info`` holds what the extractor needs: ``num_classes``, ``model_kwargs``
    (``gem``), ``mean``/``std`` on the [0, 1] scale, ``interpolation``,
    ``normalize_features`` and ``distance``.
    """
    source = checkpoint["model"]
    state: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in source.items():
        if key in ("pixel_mean", "pixel_std"):
            continue
        new_key = _rename(key)
        if new_key is None:
            unknown.append(key)
        else:
            state[new_key] = value
    if unknown:
        raise ShuffleBitsError(
            f"unsupported FastReID checkpoint: {len(unknown)} keys outside a plain R50 BoT (e.g. {unknown[0]}); "
            "only ResNet50 without IBN/SE/non-local blocks and without an embedding layer is supported"
        )
    if "classifier.weight" not in state or "bottleneck.weight" not in state:
        raise ShuffleBitsError("FastReID checkpoint has no BNNeck/classifier (heads.bottleneck.0.*, heads.weight)")
    # Older FastReID releases save BN layers without num_batches_tracked.
    for key in [k for k in state if k.endswith(".running_mean")]:
        state.setdefault(key.replace(".running_mean", ".num_batches_tracked"), torch.tensor(0))
    mean = source.get("pixel_mean", torch.tensor(IMAGENET_PIXEL_MEAN))
    std = source.get("pixel_std", torch.tensor(IMAGENET_PIXEL_STD))
    info = {
        "num_classes": int(state["classifier.weight"].shape[0]),
        "model_kwargs": {"gem": "pool.p" in state},
        "mean": tuple(float(v) / 255.0 for v in mean.flatten()),
        "std": tuple(float(v) / 255.0 for v in std.flatten()),
        "interpolation": "bicubic",
        "normalize_features": True,
        "distance": "cosine",
    }
    return state, info
