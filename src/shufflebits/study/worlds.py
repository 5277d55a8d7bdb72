"""Where the study's images come from: generated worlds (cached stages) or a real dataset folder.

The paper's setting: the victim model is trained on one dataset (MSMT17) and
attacked on another (Market-1501), whose labelled train split is the attacker's
auxiliary data and whose query/gallery images are the users. By default both
are synthetic worlds generated from two world seeds; a real Market-1501 or
DukeMTMC-reID folder replaces the attacker/user world.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import StudyConfig
from .stages import Stage, StageContext, lookup


@dataclass(frozen=True)
class Users:
    """The attacker/user images: a ``ReidDataset`` and how the report names it."""

    dataset: Any  # shufflebits.data.ReidDataset
    description: str


def _generate(context: StageContext, identities: str, images: str, seed: str) -> None:
    from ..data import generate_world

    config = context.config
    generate_world(
        context.folder / "world",
        identities=lookup(config, identities),
        images_per_identity=lookup(config, images),
        world_seed=lookup(config, seed),
        size=config.profile.image_size,
        progress=config.progress,
    )


def _world_stage(name: str, config: StudyConfig, identities: str, images: str, seed: str, load) -> Stage:
    description = (
        f"generating the {name.replace('_', ' ')} ({lookup(config, identities)} identities x "
        f"{lookup(config, images)} images, seed {lookup(config, seed)})"
    )
    return Stage(
        name,
        run=lambda context: _generate(context, identities, images, seed),
        params=(identities, images, "profile.image_size", seed),
        code=("data",),
        load=load,
        description=description,
    )


def victim_world_stage(config: StudyConfig) -> Stage:
    """The MSMT17 stand-in the victim trains on; its value is the world's folder."""
    return _world_stage(
        "victim_world",
        config,
        "profile.victim_identities",
        "profile.victim_images_per_identity",
        "seeds.victim_world",
        load=lambda context: context.folder / "world",
    )


def _load_generated(context: StageContext) -> Users:
    """A generated world read back through the Market-1501 loader (the real-data path)."""
    from ..data import load_market1501

    root = context.folder / "world"
    world = load_market1501(root, root / "market_attribute.mat")
    return Users(world, f"synthetic world (seed {context.config.seeds['user_world']})")


def _load_real(context: StageContext) -> Users:
    """A real Market-1501 / DukeMTMC-reID folder with its attribute labels."""
    from ..data import load_dukemtmc, load_market1501

    data = context.config.data
    loader = load_market1501 if data.dataset == "market1501" else load_dukemtmc
    return Users(loader(Path(data.root), Path(data.attribute_file)), f"{data.dataset} at {data.root}")


def synthetic_users_stage(config: StudyConfig, name: str = "user_world") -> Stage:
    """The generated attacker/user world (also the realism gauge's synthetic side next to real images)."""
    return _world_stage(
        name,
        config,
        "profile.user_identities",
        "profile.images_per_identity",
        "seeds.user_world",
        load=_load_generated,
    )


def users_stage(config: StudyConfig) -> Stage:
    """The attacker/user images: ``user_world`` (generated, cached) or ``load_dataset`` (a real folder)."""
    if config.data.dataset is None:
        return synthetic_users_stage(config)
    return Stage(
        "load_dataset",
        run=_load_real,
        params=("data.dataset", "data.root"),
        files=("data.attribute_file",),
        code=("data",),
        description=f"loading {config.data.dataset} from {config.data.root}",
    )
