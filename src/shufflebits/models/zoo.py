"""The victim zoo: re-ID models this project trained on its synthetic victim world, shipped in the package.

Each entry is a recipe (world seed and size, model, input size, epochs, ...) and,
once trained, a safetensors file (tensors only: nothing to unpickle) beside a
JSON model card holding the recipe, the figures measured on the victim
world's test split and on a user world it never saw, wall time, hardware and
the file's sha256, which is checked on every load. ``shufflebits zoo train
NAME`` retrains an entry from scratch (``shufflebits.engine.zoo``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..errors import ShuffleBitsError

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class ZooEntry:
    """How one zoo victim is made: the world it trains on, the model and the training recipe."""

    name: str
    model: str
    input_size: tuple[int, int]
    world_seed: int  # the victim world (the MSMT17 stand-in); the study's default victim world is seed 1
    identities: int  # half train the victim, half form its own-world test split
    images_per_identity: tuple[int, int]
    epochs: int
    batch_size: int
    lr: float
    seed: int
    user_world_seed: int  # a world the victim never saw, for the card's transfer figures (the study's seed 2)
    user_identities: int

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def weights_path(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}.safetensors"

    @property
    def card_path(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}.json"


_SYNTH_128 = ZooEntry(
    name="osnet_x0_25-synth-128x64",
    model="osnet_x0_25",
    input_size=(128, 64),
    world_seed=1,
    identities=2000,
    images_per_identity=(4, 12),
    epochs=60,
    batch_size=64,
    lr=3e-3,
    seed=0,
    user_world_seed=2,
    user_identities=1000,
)
# The same recipe at the paper's input size.
_SYNTH_256 = replace(_SYNTH_128, name="osnet_x0_25-synth-256x128", input_size=(256, 128))
ZOO: dict[str, ZooEntry] = {entry.name: entry for entry in (_SYNTH_128, _SYNTH_256)}


def zoo_entry(name: str) -> ZooEntry:
    """The zoo entry ``name``; an unknown name is a one-line error listing the names."""
    if name not in ZOO:
        raise ShuffleBitsError(f"unknown zoo victim {name!r}; choose one of {', '.join(ZOO)}")
    return ZOO[name]


def is_trained(name: str) -> bool:
    """Whether this installation holds the entry's weights and card (whether they verify is checked on load)."""
    entry = zoo_entry(name)
    return entry.weights_path.is_file() and entry.card_path.is_file()


def read_card(name: str) -> dict:
    """The model card of a trained entry; a missing or unreadable card is a one-line error."""
    entry = zoo_entry(name)
    if not entry.card_path.is_file() or not entry.weights_path.is_file():
        raise ShuffleBitsError(
            f"zoo victim {name!r} has no trained weights in this installation ({entry.weights_path.name}); "
            f"`shufflebits zoo train {name}` trains it"
        )
    try:
        card = json.loads(entry.card_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ShuffleBitsError(f"model card {entry.card_path} is unreadable: {error}") from None
    if not isinstance(card, dict) or not isinstance(card.get("sha256"), str):
        raise ShuffleBitsError(f"model card {entry.card_path} has no sha256")
    return card


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_zoo_state_dict(name: str) -> tuple[dict, dict]:
    """The verified state dict and card of a zoo victim: the file's sha256 must match its card."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    card = read_card(name)
    path = zoo_entry(name).weights_path
    actual = file_sha256(path)
    if actual != card["sha256"]:
        raise ShuffleBitsError(
            f"zoo weights {path.name} do not match their model card (sha256 {actual[:16]}..., "
            f"card says {card['sha256'][:16]}...): the file is corrupted or was replaced"
        )
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise ShuffleBitsError(f"zoo weights {path.name} are unreadable: {error}") from None
    return state, card


def pretrained_model(model: str, name: str, **kwargs):
    """Registry model ``model`` with the zoo victim ``name``'s weights (no classifier: a feature extractor)."""
    from ..registry import create

    entry = zoo_entry(name)
    if entry.model != model:
        raise ShuffleBitsError(
            f"zoo victim {name!r} is a {entry.model}, not {model}; use create_model({entry.model!r})"
        )
    state, _ = load_zoo_state_dict(name)
    network = create("model", model, **kwargs)
    expected = {key for key in network.state_dict() if not key.startswith("classifier.")}
    if set(state) != expected:
        raise ShuffleBitsError(f"zoo weights {entry.weights_path.name} do not fit {model}: other tensor names")
    try:
        network.load_state_dict(state, strict=False)
    except RuntimeError as error:
        raise ShuffleBitsError(f"zoo weights {entry.weights_path.name} do not fit {model}: {error}") from None
    return network.eval()
