"""From nothing to a victim's leaked features: the victim, its black box, and the features it leaks.

The victim is trained here on the victim world (cached), or loaded from given
weights or an ONNX file; it is served in-process or through the real HTTP
service, and the attacker's and users' images go through that black box.
``prepare_victim`` runs these stages and returns what an attacker holds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..attacks.types import LabelledFeatures
from ..errors import ShuffleBitsError
from ..runtime import torch_threads
from .config import StudyConfig, checked
from .stages import Stage, StageContext, StageRunner
from .worlds import users_stage, victim_world_stage

EXTRACT_BATCH = 64
# Training and extraction run torch on one thread: measured on this project's 2-core CPU
# with another job running, a 64-image OSNet-x0.25 training step at 64x32 took 0.2 s on
# one thread and 2-4 s on two (OpenMP threads wait on each other for the busy core).
TORCH_THREADS = 1
SPLIT_NAMES = {"attacker": "train", "user_query": "query", "user_gallery": "gallery"}
WITH_IMAGES = ("attacker", "user_query")  # the reconstruction attack learns on the first, is judged on the second
FEATURES = "extract_features"  # the stage whose value is the ``VictimData``


@dataclass
class VictimData:
    """What the attacker holds, plus an ``embed`` callable that queries the black box.

    ``embed(images)`` takes ``(n, 3, h, w)`` float images in [0, 1] (e.g.
    reconstructions) and returns the black box's ``(n, d)`` float32 features.
    Call ``close()`` (or use ``with``) to stop the HTTP service when one runs.
    """

    attacker: LabelledFeatures
    user_query: LabelledFeatures
    user_gallery: LabelledFeatures
    embed: Callable[[np.ndarray], np.ndarray]
    victim: str  # what the victim is: trained model name, weights file, or ONNX file
    dataset: str  # where the attacker/user images come from
    black_box: str  # "in-process" or the service URL
    key: str  # cache folder of the features: changes whenever any input does
    history: list[dict] | None = None  # training history when the study trained the victim
    card: dict | None = None  # the zoo victim's model card (None unless ``pretrained``)
    own_world: dict | None = None  # re-ID on the victim world's test split, when the study trained the victim
    seeds: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)  # stages loaded from the cache
    _close: Callable[[], None] | None = None

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self) -> VictimData:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


@dataclass(frozen=True)
class Victim:
    """The victim's feature extractor, how the report names it, and its training history (when trained here)."""

    extractor: Any
    description: str
    history: list[dict] | None = None
    card: dict | None = None  # the zoo victim's model card


@dataclass
class BlackBox:
    """The victim behind its black box; ``close()`` stops the HTTP service when one runs."""

    client: Any
    description: str  # "in-process" or the service URL
    stop: Callable[[], None] | None = None

    def close(self) -> None:
        if self.stop is not None:
            self.stop()
            self.stop = None


def _train(context: StageContext) -> None:
    from ..engine.train import train

    config, profile = context.config, context.config.profile
    with torch_threads(TORCH_THREADS):
        result = train(
            context.values["victim_world"],
            config.victim.model,
            context.folder / "victim.pt",
            epochs=profile.epochs,
            batch_size=profile.batch_size,
            lr=profile.lr,
            size=profile.image_size,
            device=config.device,
            seed=config.seeds["training"],
            max_minutes=profile.max_minutes,
            progress=config.progress,
        )
    (context.folder / "history.json").write_text(json.dumps(result.history, default=float))


def _trained(context: StageContext) -> tuple[Path, list[dict]]:
    return context.folder / "victim.pt", json.loads((context.folder / "history.json").read_text())


def _load_victim(context: StageContext) -> Victim:
    from ..models import build_extractor

    victim, device = context.config.victim, context.config.device
    if victim.pretrained is not None:
        from ..models.zoo import read_card

        extractor = build_extractor(victim.model, pretrained=victim.pretrained, device=device)
        return Victim(extractor, f"zoo victim {victim.pretrained}", card=read_card(victim.pretrained))
    if victim.onnx is not None:
        return Victim(build_extractor(victim.model, device=device), f"ONNX model {Path(victim.onnx).name}")
    if victim.weights is not None:
        extractor = build_extractor(victim.model, weights=victim.weights, device=device)
        return Victim(extractor, f"{victim.model} with weights {Path(victim.weights).name}")
    weights, history = context.values["train_victim"]
    extractor = build_extractor(victim.model, weights=str(weights), device=device)
    return Victim(extractor, f"{victim.model} trained on the synthetic victim world", history)


def _own_world(context: StageContext) -> None:
    """Re-ID of the victim trained here on its own world's test split: the figure the zoo's cards give."""
    from ..data import load_market1501
    from ..engine.zoo import evaluate_on

    folder = context.values["victim_world"]
    with torch_threads(TORCH_THREADS):
        figures = evaluate_on(context.values["load_victim"].extractor, load_market1501(folder), False)
    (context.folder / "own_world.json").write_text(json.dumps(figures))


def _start_black_box(context: StageContext) -> BlackBox:
    from ..service import InProcessBlackBox

    extractor = context.values["load_victim"].extractor
    if not context.config.via_http:
        return BlackBox(InProcessBlackBox(extractor), "in-process")
    from ..service import BackgroundServer, HttpBlackBox, create_app

    token = secrets.token_urlsafe(24)
    running = contextlib.ExitStack()
    server = running.enter_context(BackgroundServer(create_app(extractor, token)))
    client = running.enter_context(HttpBlackBox(server.url, token))
    return BlackBox(client, server.url, running.close)


def black_box_features(black_box, records: list, what: str, progress: bool) -> np.ndarray:
    """The black box's features of ``records``' images, in batches, with a progress bar."""
    paths = [record.path for record in records]
    parts = []
    with tqdm(total=len(paths), desc=f"features: {what}", unit="img", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(paths), EXTRACT_BATCH):
            batch = paths[start : start + EXTRACT_BATCH]
            parts.append(np.asarray(black_box.features(batch), dtype=np.float32))
            bar.update(len(batch))
    return np.concatenate(parts)


def _small_images(records: list, size: tuple[int, int]) -> np.ndarray:
    """``(n, 3, h, w)`` float32 copies in [0, 1]: the reconstruction attack's targets."""
    from PIL import Image

    from ..data.images import read_image

    height, width = size
    out = np.empty((len(records), 3, height, width), dtype=np.float32)
    for row, record in enumerate(records):
        image = read_image(record.path).resize((width, height), Image.BILINEAR)
        out[row] = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return out


def _extract(context: StageContext, users: str) -> None:
    config, world = context.config, context.values[users]
    black_box = context.values["black_box"].client
    arrays = {}
    with torch_threads(TORCH_THREADS):  # (the black box's own thread count applies in the HTTP service)
        for name, split in SPLIT_NAMES.items():
            records = world.dataset.split(split)
            if not records:
                raise ShuffleBitsError(f"the {split} split of {world.description} is empty")
            arrays[f"{name}_features"] = black_box_features(black_box, records, name.replace("_", " "), config.progress)
            if name in WITH_IMAGES:
                arrays[f"{name}_images"] = _small_images(records, config.profile.recon_size)
    np.savez(context.folder / "features.npz", **arrays)


def _victim_data(context: StageContext, users: str) -> VictimData:
    """The cached features as labelled sets, with ``embed`` querying the same black box."""
    world, victim, black_box = context.values[users], context.values["load_victim"], context.values["black_box"]
    with np.load(context.folder / "features.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    sets = {}
    for name, split in SPLIT_NAMES.items():
        records = world.dataset.split(split)
        sets[name] = LabelledFeatures(
            features=arrays[f"{name}_features"],
            labels=world.dataset.labels(records),
            attribute_names=list(world.dataset.attribute_names),
            num_classes=[world.dataset.num_classes[a] for a in world.dataset.attribute_names],
            pids=np.array([record.pid for record in records], dtype=np.int64),
            camids=np.array([record.camid for record in records], dtype=np.int64),
            images=arrays.get(f"{name}_images"),
        )

    def embed(images: np.ndarray) -> np.ndarray:
        # Images travel as 8-bit pixels; a NaN pixel (a diverged reconstruction) is sent as black.
        pixels = np.clip(np.nan_to_num(images, nan=0.0), 0.0, 1.0)
        pixels = (pixels * 255.0).round().astype(np.uint8).transpose(0, 2, 3, 1)
        with torch_threads(TORCH_THREADS):  # as the extracted features: the same sums in the same order
            return np.asarray(black_box.client.features(list(pixels)), dtype=np.float32)

    return VictimData(
        attacker=sets["attacker"],
        user_query=sets["user_query"],
        user_gallery=sets["user_gallery"],
        embed=embed,
        victim=victim.description,
        dataset=world.description,
        black_box=black_box.description,
        key=context.folder.name,
        history=victim.history,
        card=victim.card,
        own_world=context.values.get("own_world_figures"),
        seeds=context.config.seeds,
        _close=black_box.close,
    )


def victim_stages(config: StudyConfig) -> list[Stage]:
    """The stages from nothing to the leaked features; the last, ``extract_features``, gives the ``VictimData``."""
    users = users_stage(config)
    stages = [users]
    victim = config.victim
    if victim.trained_here:
        stages.append(victim_world_stage(config))
        stages.append(
            Stage(
                "train_victim",
                run=_train,
                needs=("victim_world",),
                params=(
                    "victim.model",
                    "profile.epochs",
                    "profile.batch_size",
                    "profile.lr",
                    "profile.max_minutes",
                    "profile.image_size",
                    "seeds.training",
                    "device",
                ),
                code=("data", "models", "engine"),
                load=_trained,
                description=f"training the victim {victim.model} ({config.profile.epochs} epochs)"
                + (
                    f"; the zoo victim {victim.untrained_zoo} is not installed yet "
                    f"(`shufflebits zoo train {victim.untrained_zoo}` makes it)"
                    if victim.untrained_zoo
                    else ""
                ),
            )
        )
    if victim.pretrained is not None:
        loading = f"the zoo victim {victim.pretrained}"
    else:
        loading = "the trained victim" if victim.trained_here else Path(victim.onnx or victim.weights).name
    stages += [
        Stage(
            "load_victim",
            run=_load_victim,
            needs=("train_victim",) if victim.trained_here else (),
            params=("victim.model", "victim.pretrained", "device"),
            files=("victim.weights", "victim.onnx", "victim.zoo_weights"),
            code=("models",),
            description=f"loading {loading}",
        ),
        Stage(
            "black_box",
            run=_start_black_box,
            needs=("load_victim",),
            params=("via_http",),
            code=("service",),
            description="starting the HTTP black box" if config.via_http else "wrapping the victim as a black box",
        ),
    ]
    if victim.trained_here:
        stages.append(
            Stage(
                "own_world_figures",
                run=_own_world,
                needs=("victim_world", "load_victim"),
                params=("device",),
                code=("data", "models", "engine", "reid"),
                load=lambda context: json.loads((context.folder / "own_world.json").read_text()),
                description="measuring the victim on its own world's test split",
            )
        )
    stages += [
        Stage(
            FEATURES,
            run=lambda context: _extract(context, users.name),
            needs=(users.name, "load_victim", "black_box", *(("own_world_figures",) if victim.trained_here else ())),
            params=("device", "profile.recon_size"),
            code=("data", "models", "service"),
            load=lambda context: _victim_data(context, users.name),
            description="extracting features through the black box",
        ),
    ]
    return stages


def close_black_box(values: dict[str, Any]) -> None:
    """Stop the HTTP service if a run started one (safe to call twice)."""
    if "black_box" in values:
        values["black_box"].close()


def prepare_victim(config: StudyConfig, out_dir: str | Path) -> VictimData:
    """Build or load the worlds, the victim and its black box; return the leaked features.

    Outputs are cached under ``out_dir/cache``, so a second call with the same
    inputs is fast. A failing stage raises; the HTTP service, if started, is stopped.
    """
    checked(config)
    runner = StageRunner(victim_stages(config), config, out_dir)
    try:
        values = runner.run()
    except BaseException:
        close_black_box(runner.values)
        raise
    return dataclasses.replace(values[FEATURES], timings=runner.timings, cached=runner.cached)
