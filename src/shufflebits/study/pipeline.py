"""From nothing to a victim's leaked features: worlds, victim, black box, features.

The paper's setting: the victim model is trained on one dataset (MSMT17) and
attacked on another (Market-1501), whose labelled train split is the attacker's
auxiliary data and whose query/gallery images are the users. By default both
are synthetic worlds generated from two world seeds; real Market-1501 or
DukeMTMC-reID folders replace the attacker/user world, and real weights replace
the trained victim. Every expensive stage is cached by a hash of its inputs.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from ..runtime import torch_threads
from ..attacks.types import LabelledFeatures
from ..errors import ShuffleBitsError
from .cache import cached_stage, code_version, file_hash
from .profiles import Profile, get_profile

DATASETS = ("market1501", "dukemtmc")
ATTRIBUTE_FILES = {"market1501": "market_attribute.mat", "dukemtmc": "duke_attribute.mat"}
EXTRACT_BATCH = 64
# Training and extraction run torch on one thread: measured on this project's 2-core CPU
# with another job running, a 64-image OSNet-x0.25 training step at 64x32 took 0.2 s on
# one thread and 2-4 s on two (OpenMP threads wait on each other for the busy core).
TORCH_THREADS = 1


def study_seeds(seed: int) -> dict[str, int]:
    """Every seed a run uses, derived from the one the user gives (recorded in the report)."""
    return {
        "seed": seed,
        "victim_world": 2 * seed + 1,  # the MSMT17 stand-in
        "user_world": 2 * seed + 2,  # the Market-1501 stand-in, disjoint from the victim's
        "training": seed,
        "attacks": seed,
    }


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
    key: str  # cache key of the features: changes whenever any input does
    history: list[dict] | None = None  # training history when the study trained the victim
    seeds: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)  # stages loaded from the cache
    _close: Callable[[], None] | None = None

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self) -> "VictimData":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _Stages:
    """Times stages, remembers which came from the cache, and reports progress on stderr."""

    def __init__(self, progress: bool):
        self.progress = progress
        self.timings: dict[str, float] = {}
        self.cached: list[str] = []

    def log(self, message: str) -> None:
        if self.progress:
            tqdm.write(f"[study] {message}", file=sys.stderr)

    def run(self, name: str, description: str, work: Callable[[], Any]) -> Any:
        self.log(f"{description} ...")
        start = time.perf_counter()
        result = work()
        self.timings[name] = time.perf_counter() - start
        return result

    def cached_run(self, name: str, description: str, cache_dir: Path, inputs: dict, build: Callable[[Path], None]) -> Path:
        def work() -> Path:
            folder, was_cached = cached_stage(cache_dir, name, inputs, build)
            if was_cached:
                self.cached.append(name)
                self.log(f"{name}: reused {folder.name}")
            return folder

        return self.run(name, description, work)


def _load_world(root: Path):
    """A generated world read back through the Market-1501 loader (the real-data path)."""
    from ..data import load_market1501

    return load_market1501(root, root / "market_attribute.mat")


def _generate_world(
    stages: _Stages, cache_dir: Path, name: str, profile: Profile, identities: int, images_per_identity: int, world_seed: int
) -> Path:
    inputs = {
        "identities": identities,
        "images_per_identity": images_per_identity,
        "size": list(profile.image_size),
        "world_seed": world_seed,
        "code": code_version("data"),
    }

    def build(folder: Path) -> None:
        from ..data import generate_world

        generate_world(
            folder / "world",
            identities=identities,
            images_per_identity=images_per_identity,
            world_seed=world_seed,
            size=profile.image_size,
            progress=stages.progress,
        )

    description = f"generating the {name.replace('_', ' ')} ({identities} identities x {images_per_identity} images, seed {world_seed})"
    return stages.cached_run(name, description, cache_dir, inputs, build) / "world"


def check_inputs(victim: str | None, weights, dataset: str | None, root, attributes, device: str) -> None:
    """Refuse bad paths and options at once, before any stage spends minutes."""
    from ..runtime import check_device

    check_device(device)
    if victim is not None and victim.startswith("onnx:"):
        if weights is not None:
            raise ShuffleBitsError("an ONNX victim carries its weights; drop --weights")
        if not Path(victim[len("onnx:") :]).is_file():
            raise ShuffleBitsError(f"ONNX file {victim[len('onnx:'):]} does not exist")
    if weights is not None and not Path(weights).is_file():
        raise ShuffleBitsError(f"weights file {weights} does not exist")
    if dataset is None:
        if root is not None or attributes is not None:
            raise ShuffleBitsError("--root and --attributes need --dataset market1501 or dukemtmc")
        return
    if dataset not in DATASETS:
        raise ShuffleBitsError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if root is None:
        raise ShuffleBitsError(f"--dataset {dataset} needs --root PATH (the dataset folder)")
    if not Path(root).is_dir():
        raise ShuffleBitsError(f"dataset folder {root} does not exist")
    _attribute_file(dataset, Path(root), attributes)


def _attribute_file(dataset: str, root: Path, attributes) -> Path:
    """The attribute ``.mat`` file: as given, else inside or beside the dataset folder."""
    if attributes is not None:
        if not Path(attributes).is_file():
            raise ShuffleBitsError(f"attribute file {attributes} does not exist")
        return Path(attributes)
    name = ATTRIBUTE_FILES[dataset]
    for path in (root / name, root.parent / name):
        if path.is_file():
            return path
    raise ShuffleBitsError(f"no {name} in {root} or {root.parent}; give it with --attributes PATH")


def _real_dataset(dataset: str, root: Path, attributes):
    """A real Market-1501 / DukeMTMC-reID folder with its attribute labels."""
    from ..data import load_dukemtmc, load_market1501

    attribute_file = _attribute_file(dataset, root, attributes)
    loader = load_market1501 if dataset == "market1501" else load_dukemtmc
    identity = {"dataset": dataset, "root": str(root.resolve()), "attributes": file_hash(attribute_file)}
    return loader(root, attribute_file), identity


def _victim_extractor(stages, cache_dir, profile, victim, weights, device, seeds, progress):
    """(extractor, description, cache identity, training history) for the victim."""
    from ..models import build_extractor

    if victim.startswith("onnx:"):
        path = Path(victim[len("onnx:") :])
        extractor = stages.run("load_victim", f"loading {path.name}", lambda: build_extractor(victim, device=device))
        return extractor, f"ONNX model {path.name}", {"onnx": file_hash(path)}, None
    if weights is not None:
        weights = Path(weights)
        extractor = stages.run(
            "load_victim", f"loading {victim} from {weights.name}", lambda: build_extractor(victim, weights=str(weights), device=device)
        )
        return extractor, f"{victim} with weights {weights.name}", {"model": victim, "weights": file_hash(weights)}, None

    world = _generate_world(
        stages, cache_dir, "victim_world", profile, profile.victim_identities, profile.victim_images_per_identity, seeds["victim_world"]
    )
    inputs = {
        "world": world.parent.name,
        "model": victim,
        "epochs": profile.epochs,
        "batch_size": profile.batch_size,
        "lr": profile.lr,
        "max_minutes": profile.max_minutes,
        "size": list(profile.image_size),
        "seed": seeds["training"],
        "device": device,
        "code": code_version("data", "models", "engine"),
    }

    def build(folder: Path) -> None:
        from ..engine.train import train

        with torch_threads(TORCH_THREADS):
            result = train(
                world,
                victim,
                folder / "victim.pt",
                epochs=profile.epochs,
                batch_size=profile.batch_size,
                lr=profile.lr,
                size=profile.image_size,
                device=device,
                seed=seeds["training"],
                max_minutes=profile.max_minutes,
                progress=progress,
            )
        (folder / "history.json").write_text(json.dumps(result.history, default=float))

    folder = stages.cached_run("train_victim", f"training the victim {victim} ({profile.epochs} epochs)", cache_dir, inputs, build)
    history = json.loads((folder / "history.json").read_text())
    extractor = build_extractor(victim, weights=str(folder / "victim.pt"), device=device)
    return extractor, f"{victim} trained on the synthetic victim world", {"trained": folder.name}, history


def _start_black_box(extractor, via_http: bool):
    """(black box, its description, a function that stops it)."""
    from ..service import InProcessBlackBox

    if not via_http:
        return InProcessBlackBox(extractor), "in-process", None
    from ..service import BackgroundServer, HttpBlackBox, create_app

    token = secrets.token_urlsafe(24)
    running = contextlib.ExitStack()
    server = running.enter_context(BackgroundServer(create_app(extractor, token)))
    client = running.enter_context(HttpBlackBox(server.url, token))
    return client, server.url, running.close


def _features(black_box, records: list, what: str, progress: bool) -> np.ndarray:
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

    from ..data.transforms import read_image

    height, width = size
    out = np.empty((len(records), 3, height, width), dtype=np.float32)
    for row, record in enumerate(records):
        image = read_image(record.path).resize((width, height), Image.BILINEAR)
        out[row] = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return out


SPLIT_NAMES = {"attacker": "train", "user_query": "query", "user_gallery": "gallery"}
WITH_IMAGES = ("attacker", "user_query")  # the reconstruction attack learns on the first, is judged on the second


def prepare_victim(
    profile: str | Profile,
    out_dir: str | Path,
    victim: str | None = None,
    weights: str | Path | None = None,
    device: str = "cpu",
    dataset: str | None = None,
    root: str | Path | None = None,
    via_http: bool = False,
    seed: int = 0,
    progress: bool = True,
    attributes: str | Path | None = None,
) -> VictimData:
    """Build or load the worlds, the victim and its black box; return the leaked features.

    ``victim`` is a model name (trained here on the victim world unless
    ``weights`` is given) or ``onnx:PATH``; ``dataset``/``root`` replace the
    synthetic attacker/user world by a real one, labelled by the ``attributes``
    file (default: the dataset's ``.mat`` inside or beside ``root``). Outputs are cached under
    ``out_dir/cache``, so a second call with the same inputs is fast.
    """
    profile = get_profile(profile)
    check_inputs(victim, weights, dataset, root, attributes, device)
    out_dir = Path(out_dir)
    cache_dir = out_dir / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    victim = victim or profile.victim_model
    seeds = study_seeds(seed)
    stages = _Stages(progress)

    if dataset is None:
        world_root = _generate_world(
            stages, cache_dir, "user_world", profile, profile.user_identities, profile.images_per_identity, seeds["user_world"]
        )
        world = _load_world(world_root)
        world_id = {"world": world_root.parent.name}
        dataset_name = f"synthetic world (seed {seeds['user_world']})"
    else:
        world, world_id = stages.run("load_dataset", f"loading {dataset} from {root}", lambda: _real_dataset(dataset, Path(root), attributes))
        dataset_name = f"{dataset} at {root}"

    extractor, victim_name, victim_id, history = _victim_extractor(
        stages, cache_dir, profile, victim, weights, device, seeds, progress
    )
    black_box, black_box_name, stop = stages.run(
        "black_box", "starting the HTTP black box" if via_http else "wrapping the victim as a black box",
        lambda: _start_black_box(extractor, via_http),
    )
    try:
        features_inputs = {
            "world": world_id,
            "victim": victim_id,
            "device": device,
            "via_http": via_http,
            "recon_size": list(profile.recon_size),
            "code": code_version("data", "models", "service"),
        }

        def build(folder: Path) -> None:
            arrays = {}
            for name, split in SPLIT_NAMES.items():  # (the black box's own thread count applies in the HTTP service)
                records = world.split(split)
                if not records:
                    raise ShuffleBitsError(f"the {split} split of {dataset_name} is empty")
                arrays[f"{name}_features"] = _features(black_box, records, name.replace("_", " "), progress)
                if name in WITH_IMAGES:
                    arrays[f"{name}_images"] = _small_images(records, profile.recon_size)
            np.savez(folder / "features.npz", **arrays)

        with torch_threads(TORCH_THREADS):
            folder = stages.cached_run("extract_features", "extracting features through the black box", cache_dir, features_inputs, build)
        with np.load(folder / "features.npz") as archive:
            arrays = {name: archive[name] for name in archive.files}

        sets = {}
        for name, split in SPLIT_NAMES.items():
            records = world.split(split)
            sets[name] = LabelledFeatures(
                features=arrays[f"{name}_features"],
                labels=world.labels(records),
                attribute_names=list(world.attribute_names),
                num_classes=[world.num_classes[a] for a in world.attribute_names],
                pids=np.array([record.pid for record in records], dtype=np.int64),
                camids=np.array([record.camid for record in records], dtype=np.int64),
                images=arrays.get(f"{name}_images"),
            )

        def embed(images: np.ndarray) -> np.ndarray:
            # Images travel as 8-bit pixels; a NaN pixel (a diverged reconstruction) is sent as black.
            pixels = np.clip(np.nan_to_num(images, nan=0.0), 0.0, 1.0)
            pixels = (pixels * 255.0).round().astype(np.uint8).transpose(0, 2, 3, 1)
            with torch_threads(TORCH_THREADS):  # as the extracted features: the same sums in the same order
                return np.asarray(black_box.features(list(pixels)), dtype=np.float32)

    except BaseException:
        if stop is not None:
            stop()
        raise
    return VictimData(
        attacker=sets["attacker"],
        user_query=sets["user_query"],
        user_gallery=sets["user_gallery"],
        embed=embed,
        victim=victim_name,
        dataset=dataset_name,
        black_box=black_box_name,
        key=folder.name,
        history=history,
        seeds=seeds,
        timings=stages.timings,
        cached=stages.cached,
        _close=stop,
    )
