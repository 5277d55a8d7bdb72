"""BoT-style re-ID training (Luo et al., 2019), sized for a small CPU.

Label-smoothed identity cross-entropy plus batch-hard triplet loss on the
embedding, P x K identity batches, Adam with a linear warm-up then cosine decay,
flip / pad-crop / random-erasing augmentation. Every epoch re-seeds all of its
randomness from (seed, epoch), so a resumed run repeats exactly what an
uninterrupted one would have done, and a checkpoint is written atomically after
each epoch (plain types only: it loads with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..atomic import atomic_write
from ..data.sizes import check_size
from ..errors import ShuffleBitsError
from ..models.checkpoints import CHECKPOINT_FORMAT, read_checkpoint
from ..registry import create_model
from ..runtime import check_device
from .losses import batch_hard_triplet_loss, identity_loss

CHECKPOINT_VERSION = 1
DATASETS = ("market1501", "dukemtmc", "msmt17")
WARMUP_FRACTION = 0.1  # of the whole run, as BoT's 10 warm-up epochs of 120
FINAL_LR_FACTOR = 0.01
WEIGHT_DECAY = 5e-4
MARGIN = 0.3
LABEL_SMOOTHING = 0.1


@dataclass
class TrainResult:
    """Per-epoch history (loss, accuracy, lr, seconds), where the checkpoint is, wall time."""

    history: list[dict]
    checkpoint: Path
    seconds: float


def lr_factor(progress: float) -> float:
    """Learning-rate multiplier at ``progress`` in [0, 1] of the run: linear warm-up, then cosine."""
    if progress < WARMUP_FRACTION:
        return FINAL_LR_FACTOR + (1 - FINAL_LR_FACTOR) * progress / WARMUP_FRACTION
    decay = (progress - WARMUP_FRACTION) / (1 - WARMUP_FRACTION)
    return FINAL_LR_FACTOR + (1 - FINAL_LR_FACTOR) * 0.5 * (1 + math.cos(math.pi * min(decay, 1.0)))


def _load_training_records(data_root: Path, dataset: str) -> list:
    from ..data import layouts

    loaders = {"market1501": layouts.load_market1501, "dukemtmc": layouts.load_dukemtmc, "msmt17": layouts.load_msmt17}
    if dataset not in loaders:
        raise ShuffleBitsError(f"unknown dataset layout {dataset!r}; expected one of {', '.join(DATASETS)}")
    if not data_root.is_dir():
        raise ShuffleBitsError(
            f"training data folder {data_root} does not exist; "
            "shufflebits.data.generate_world (the `shufflebits synth` command) makes one"
        )
    records = [record for record in loaders[dataset](data_root).train if record.pid >= 0]
    if len({record.pid for record in records}) < 2:
        raise ShuffleBitsError(f"{data_root} has fewer than 2 training identities; re-ID training needs at least 2")
    return records


def _relabel(records: list) -> tuple[list, list[int]]:
    """Records with identities renumbered 0..C-1 (the classifier's labels) and the original ids."""
    pids = sorted({record.pid for record in records})
    label = {pid: index for index, pid in enumerate(pids)}
    return [dataclasses.replace(record, pid=label[record.pid]) for record in records], pids


def _data_digest(records: list, pids: list[int]) -> str:
    """Identifies the training set by file names and identities, so resume refuses other data."""
    text = "\n".join(f"{Path(record.path).name} {pids[record.pid]}" for record in records)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _to_cpu(value):
    """Optimizer state with every tensor on the CPU, so checkpoints load anywhere."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(item) for item in value)
    return value


def _resume_state(out_path: Path, config: dict) -> dict:
    checkpoint = read_checkpoint(out_path)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT or "config" not in checkpoint:
        raise ShuffleBitsError(f"{out_path} is not a shufflebits training checkpoint; cannot resume from it")
    saved = checkpoint["config"]
    different = [
        f"{key}={saved.get(key)!r} (now {value!r})" for key, value in config.items() if saved.get(key) != value
    ]
    if different:
        raise ShuffleBitsError(
            f"{out_path} was trained with other settings: {', '.join(different)}; "
            "resume with those or choose another out_path"
        )
    return checkpoint


def _run_epoch(model, optimizer, dataset, records, config: dict, epoch: int, device: str, progress: bool) -> dict:
    """One pass over P x K batches; returns the epoch's mean losses and accuracy."""
    from ..data.torch_dataset import RandomIdentitySampler

    started = time.monotonic()
    epoch_seed = _epoch_seed(config["seed"], epoch)
    torch.manual_seed(epoch_seed)  # the augmentations draw from torch's generator
    batch_size = config["batch_size"]
    order = list(RandomIdentitySampler(records, batch_size, config["num_instances"], seed=epoch_seed))
    steps = len(order) // batch_size
    loader = DataLoader(dataset, batch_size=batch_size, sampler=order, drop_last=True, num_workers=0)
    sums = {"loss": 0.0, "id_loss": 0.0, "triplet_loss": 0.0, "accuracy": 0.0}
    model.train()
    description = f"epoch {epoch + 1}/{config['epochs']}"
    bar = tqdm(loader, total=steps, desc=description, unit="batch", disable=not progress, file=sys.stderr)
    for step, (images, labels, _, _) in enumerate(bar):
        lr = config["lr"] * lr_factor((epoch + step / steps) / config["epochs"])
        for group in optimizer.param_groups:
            group["lr"] = lr
        images, labels = images.to(device), labels.to(device)
        logits, features = model(images)
        id_loss = identity_loss(logits, labels, LABEL_SMOOTHING)
        # On unit-length features: from scratch, raw-feature distances are large and the
        # triplet term swamps the ID loss (measured: no learning in 6 epochs); normalised,
        # the margin is meaningful and both losses train.
        triplet_loss = batch_hard_triplet_loss(F.normalize(features, dim=1), labels, MARGIN)
        loss = id_loss + triplet_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sums["loss"] += loss.item()
        sums["id_loss"] += id_loss.item()
        sums["triplet_loss"] += triplet_loss.item()
        sums["accuracy"] += (logits.argmax(1) == labels).float().mean().item()
        bar.set_postfix(loss=f"{sums['loss'] / (step + 1):.3f}", acc=f"{sums['accuracy'] / (step + 1):.2f}")
    bar.close()
    entry = {"epoch": epoch + 1, **{key: value / max(steps, 1) for key, value in sums.items()}}
    entry.update(lr=optimizer.param_groups[0]["lr"], steps=steps, seconds=time.monotonic() - started)
    return entry


def train(
    data_root: str | os.PathLike,
    model_name: str,
    out_path: str | os.PathLike,
    epochs: int = 12,
    batch_size: int = 64,
    num_instances: int = 4,
    lr: float = 3e-3,
    size: tuple[int, int] = (128, 64),
    device: str = "cpu",
    seed: int = 0,
    resume: bool = False,
    progress: bool = True,
    max_minutes: float | None = None,
    dataset: str = "market1501",
) -> TrainResult:
    """Train ``model_name`` from scratch on the ``data_root`` training split; checkpoint each epoch.

    ``batch_size`` is P x K with K = ``num_instances`` (P shrinks when there are
    fewer identities). ``resume`` continues from ``out_path`` when it exists;
    ``max_minutes`` stops before an epoch that would likely overrun the budget
    (at least one epoch always runs, and the checkpoint can be resumed later).
    """
    started = time.monotonic()
    from ..data.torch_dataset import ImageDataset
    from ..data.transforms import build_transforms

    if epochs < 1 or num_instances < 1 or batch_size < num_instances or lr <= 0:
        raise ShuffleBitsError("epochs must be >= 1, lr > 0 and batch_size >= num_instances >= 1")
    if max_minutes is not None and max_minutes <= 0:
        raise ShuffleBitsError(f"max_minutes must be positive, got {max_minutes}")
    device = check_device(device)
    out_path = Path(out_path)
    if not out_path.parent.is_dir():
        raise ShuffleBitsError(f"output folder {out_path.parent} does not exist")
    height, width = check_size(size)
    records, pids = _relabel(_load_training_records(Path(data_root), dataset))
    pids_per_batch = min(batch_size // num_instances, len(pids))
    config = {
        "model": model_name,
        "dataset": dataset,
        "data": _data_digest(records, pids),
        "num_classes": len(pids),
        "input_size": [height, width],
        "epochs": epochs,
        "batch_size": pids_per_batch * num_instances,
        "num_instances": num_instances,
        "lr": float(lr),
        "seed": seed,
    }
    schedule = {
        "name": "warmup-cosine",
        "warmup_fraction": WARMUP_FRACTION,
        "final_factor": FINAL_LR_FACTOR,
        "per": "iteration",
    }
    dataset_images = ImageDataset(records, build_transforms((height, width), train=True))
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state as it was
        torch.manual_seed(seed)
        model = create_model(model_name, num_classes=len(pids)).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
        history: list[dict] = []
        if resume and out_path.is_file():
            state = _resume_state(out_path, config)
            model.load_state_dict(state["state_dict"])
            optimizer.load_state_dict(state["optimizer"])
            history = list(state["history"])
            if progress:
                tqdm.write(f"resuming {out_path} after epoch {state['epoch']} of {epochs}", file=sys.stderr)
        done_here: list[float] = []
        for epoch in range(len(history), epochs):
            elapsed = time.monotonic() - started
            if max_minutes is not None and done_here and elapsed + np.mean(done_here) > max_minutes * 60:
                if progress:
                    message = f"stopping after epoch {epoch}: max_minutes={max_minutes} would be exceeded"
                    tqdm.write(message, file=sys.stderr)
                break
            entry = _run_epoch(model, optimizer, dataset_images, records, config, epoch, device, progress)
            history.append(entry)
            done_here.append(entry["seconds"])
            checkpoint = {
                "format": CHECKPOINT_FORMAT,
                "version": CHECKPOINT_VERSION,
                "model": model_name,
                "num_classes": len(pids),
                "input_size": [height, width],
                "normalize_features": False,
                "distance": "euclidean",
                "state_dict": _to_cpu(model.state_dict()),
                "optimizer": _to_cpu(optimizer.state_dict()),
                "scheduler": schedule,
                "epoch": epoch + 1,
                "history": history,
                "seed": seed,
                "config": config,
                "train_pids": pids,
            }
            with atomic_write(out_path) as handle:
                torch.save(checkpoint, handle)
    return TrainResult(history=history, checkpoint=out_path, seconds=time.monotonic() - started)
