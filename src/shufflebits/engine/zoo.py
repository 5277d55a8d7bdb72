"""Retraining a zoo victim from scratch: its world, the BoT recipe with resume, its card and its weights.

``retrain(name, work_dir)`` is what ``shufflebits zoo train NAME`` runs. Every
step is resumable: the world is generated once into ``work_dir``, training
checkpoints after each epoch (kill it and run the same command again), and the
evaluation and export run only once training has finished. The result is a
safetensors file (state dict without the classifier, torchreid key names) and
its model card, written atomically into ``out_dir`` (the package's weights
folder by default).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from ..atomic import atomic_write
from ..errors import ShuffleBitsError
from ..models.zoo import ZooEntry, file_sha256, zoo_entry

CARD_VERSION = 1


def world_folder(work_dir: Path, seed: int, identities: int, size: tuple[int, int], images: tuple[int, int]) -> Path:
    return work_dir / f"world-s{seed}-{identities}-{size[0]}x{size[1]}-{images[0]}to{images[1]}"


def _world(work_dir: Path, seed: int, identities: int, entry: ZooEntry, progress: bool):
    """The generated world, reused when a previous run already wrote it."""
    from ..data import generate_world, load_market1501

    folder = world_folder(work_dir, seed, identities, entry.input_size, entry.images_per_identity)
    if folder.is_dir():
        return load_market1501(folder, folder / "market_attribute.mat")
    return generate_world(
        folder,
        identities=identities,
        world_seed=seed,
        size=entry.input_size,
        images_per_identity=entry.images_per_identity,
        workers=min(2, os.cpu_count() or 1),
        progress=progress,
    )


def retrain(
    name: str, work_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, progress: bool = True
) -> dict:
    """Train zoo entry ``name`` from scratch (resuming in ``work_dir``); write weights and card; return the card."""
    from ..engine.train import train

    entry = zoo_entry(name)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    out_dir = Path(out_dir) if out_dir is not None else entry.weights_path.parent
    if not out_dir.is_dir():
        raise ShuffleBitsError(f"output folder {out_dir} does not exist")
    world = _world(work_dir, entry.world_seed, entry.identities, entry, progress)
    checkpoint = work_dir / f"{entry.name}.pt"
    result = train(
        world.root,
        entry.model,
        checkpoint,
        epochs=entry.epochs,
        batch_size=entry.batch_size,
        lr=entry.lr,
        size=entry.input_size,
        seed=entry.seed,
        resume=True,
        progress=progress,
    )
    if len(result.history) < entry.epochs:
        raise ShuffleBitsError(f"training stopped after {len(result.history)} of {entry.epochs} epochs; run again")
    users = _world(work_dir, entry.user_world_seed, entry.user_identities, entry, progress)
    return export(entry, checkpoint, world, users, out_dir, progress)


def evaluate_on(extractor, dataset, progress: bool) -> dict:
    """rank-1/5/10, mAP and mINP of ``extractor`` on a world's query/gallery split (Market protocol)."""
    from ..reid import evaluate

    def features(records):
        return extractor([record.path for record in records])

    query, gallery = dataset.query, dataset.gallery
    result = evaluate(
        features(query),
        features(gallery),
        [r.pid for r in query],
        [r.pid for r in gallery],
        [r.camid for r in query],
        [r.camid for r in gallery],
    )
    return {key: float(result[key]) for key in ("rank1", "rank5", "rank10", "mAP", "mINP")} | {
        "queries": int(result["num_query"]),
        "gallery": len(gallery),
    }


def export(entry: ZooEntry, checkpoint: Path, world, users, out_dir: Path, progress: bool) -> dict:
    """Evaluate the trained checkpoint, then write ``<name>.safetensors`` and ``<name>.json`` atomically."""
    from safetensors.torch import save

    from ..models import build_extractor, read_checkpoint

    state = read_checkpoint(checkpoint)
    extractor = build_extractor(entry.model, weights=str(checkpoint))
    card = {
        "card_version": CARD_VERSION,
        "name": entry.name,
        "recipe": entry.as_dict(),
        "training": {
            "epochs": state["epoch"],
            "wall_seconds": round(sum(h["seconds"] for h in state["history"]), 1),
            "final_loss": state["history"][-1]["loss"],
            "final_accuracy": state["history"][-1]["accuracy"],
            "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.processor() or 'cpu'}",
            "train_identities": len(state["train_pids"]),
        },
        "own_world": evaluate_on(extractor, world, progress),
        "user_world": evaluate_on(extractor, users, progress),
        "input_size": list(entry.input_size),
        "feature_dim": int(extractor.feature_dim),
    }
    weights = {k: v.contiguous() for k, v in state["state_dict"].items() if not k.startswith("classifier.")}
    blob = save(weights)  # no metadata: its key order is not stable between runs; the card says it all
    target = out_dir / f"{entry.name}.safetensors"
    with atomic_write(target) as handle:
        handle.write(blob)
    card["sha256"] = file_sha256(target)
    card["bytes"] = target.stat().st_size
    with atomic_write(out_dir / f"{entry.name}.json", "w") as handle:
        handle.write(json.dumps(card, indent=2) + "\n")
    card["written"] = time.strftime("%Y-%m-%d")
    return card
