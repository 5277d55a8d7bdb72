"""The second re-ID model that judges reconstructions (transfer): a zoo model the decoder never used.

A reconstruction that fools only the model it was trained against says less
than one that another re-ID model also takes for the user. The study picks
the first trained zoo entry that is not the victim (``default_transfer``);
the users' query and gallery images go through it once (cached), and the
leakage matrix re-embeds reconstructions through it (``TransferModel``).
"""

from __future__ import annotations

import numpy as np

from ..attacks.reconstruction_eval import TransferModel
from ..runtime import torch_threads
from .stages import Stage, StageContext, StageRunner
from .victim import EXTRACT_BATCH, TORCH_THREADS
from .worlds import users_stage

STAGE = "transfer_features"
SPLITS = {"query": "query", "gallery": "gallery"}


def default_transfer(victim_pretrained: str | None) -> str | None:
    """The first trained zoo entry other than the victim; ``None`` when the installation holds no other."""
    from ..models.zoo import ZOO, is_trained

    return next((name for name in ZOO if name != victim_pretrained and is_trained(name)), None)


def _extractor(context: StageContext):
    from ..models import build_extractor
    from ..models.zoo import zoo_entry

    name = context.config.transfer
    return build_extractor(zoo_entry(name).model, pretrained=name, device=context.config.device)


def _extract(context: StageContext, users: str) -> None:
    extractor, world = _extractor(context), context.values[users]
    arrays = {}
    with torch_threads(TORCH_THREADS):
        for name, split in SPLITS.items():
            paths = [record.path for record in world.dataset.split(split)]
            parts = [extractor(paths[i : i + EXTRACT_BATCH]) for i in range(0, len(paths), EXTRACT_BATCH)]
            arrays[name] = np.concatenate(parts).astype(np.float32)
    np.savez(context.folder / "transfer.npz", **arrays)


def _load(context: StageContext) -> TransferModel:
    extractor = _extractor(context)
    with np.load(context.folder / "transfer.npz") as archive:
        query, gallery = archive["query"], archive["gallery"]

    def embed(images: np.ndarray) -> np.ndarray:
        # As the victim's black box receives them: 8-bit pixels, a NaN pixel sent as black.
        pixels = np.clip(np.nan_to_num(images, nan=0.0), 0.0, 1.0)
        pixels = (pixels * 255.0).round().astype(np.uint8).transpose(0, 2, 3, 1)
        with torch_threads(TORCH_THREADS):
            return np.asarray(extractor(list(pixels)), dtype=np.float32)

    return TransferModel(context.config.transfer, embed, query, gallery)


def transfer_stages(config) -> list[Stage]:
    """The transfer model's features of the users (none when the config names no transfer model)."""
    if config.transfer is None:
        return []
    users = users_stage(config).name
    return [
        Stage(
            STAGE,
            run=lambda context: _extract(context, users),
            needs=(users,),
            params=("transfer", "device"),
            files=("transfer_weights",),
            code=("models",),
            load=_load,
            description=f"the users' images through the second re-ID model {config.transfer}",
        )
    ]


def prepare_transfer(config, out_dir) -> TransferModel | None:
    """The transfer model with the users' features through it (cached in ``out_dir``); ``None`` without one."""
    from .config import checked

    stages = transfer_stages(checked(config))
    if not stages:
        return None
    return StageRunner([users_stage(config), *stages], config, out_dir).run()[STAGE]
