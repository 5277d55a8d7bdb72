"""Synthetic people: attribute priors and the sampling of one identity from its world seed.

Each identity carries the Market-1501 attribute schema plus traits no attribute
names (skin tone, build, exact colour shade, garment pattern, shoe and hair
colour, gait). Some identities are near-copies of another that differ in one
attribute and share its clothes, so re-ID cannot rely on attributes alone.

The priors are the label frequencies of the real ``market_attribute.mat``
(train and test, 1,501 identities; ``scripts/market_priors.py`` counts them and
``tests/test_synth_priors.py`` checks these constants against the file), with
gender-dependent hair, dress and handbag rates as counted there. One change:
every class gets at least ``PRIOR_FLOOR``, so that each class is held by enough
attacker identities to be learnt and scored (Market's 0.1 % purple trousers
would give one identity in a thousand).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..attributes import SCHEMAS
from .palette import contrasting, hsv_colour, muted, shade, stream

SCHEMA = SCHEMAS["market"]
UP_COLOURS = SCHEMA.colours["up_colour"][1]
DOWN_COLOURS = SCHEMA.colours["down_colour"][1]
# Counted from market_attribute.mat (train + test): P(class) per attribute, colours among
# identities with exactly one colour marked; "female:"/"male:" entries are conditional on gender.
MARKET_PRIORS = {
    "gender": (0.563, 0.437),
    "hair|female": (0.215, 0.785),
    "hair|male": (0.994, 0.006),
    "up": (0.056, 0.944),
    "down|dress": (0.128, 0.872),
    "down|pants": (0.407, 0.593),
    "clothes|female": (0.297, 0.703),
    "hat": (0.971, 0.029),
    "backpack": (0.743, 0.257),
    "bag": (0.753, 0.247),
    "handbag|female": (0.864, 0.136),
    "handbag|male": (0.914, 0.086),
    "age": (0.011, 0.805, 0.175, 0.009),
    "up_colour": (0.164, 0.322, 0.114, 0.040, 0.072, 0.142, 0.072, 0.075),
    "down_colour": (0.406, 0.076, 0.034, 0.001, 0.008, 0.174, 0.194, 0.024, 0.082),
}
PRIOR_FLOOR = 0.05  # every class at least this often: ~25 of 500 attacker identities, so >= 10 with margin
DARK_COLOURS = {"up_colour": [0, 5], "down_colour": [0, 5]}  # black, gray
PATTERNS = ("plain", "plain", "plain", "stripes", "jacket", "logo", "band", "vstripes", "dots", "check")
SKIN_LIGHT, SKIN_DARK = np.array([236, 200, 172]), np.array([98, 66, 48])
HAIR_COLOURS = ((22, 18, 16), (40, 28, 20), (74, 48, 30), (120, 84, 50), (190, 160, 110))
CLONE_RATE = 0.25  # even identities copied from the previous one with one attribute changed
MISSING_COLOUR_RATE = 0.04  # identities left without a colour label, as in the real file


@dataclass(frozen=True)
class Person:
    """One identity: its true attribute classes and how it is drawn."""

    pid: int
    attributes: dict[str, int]
    skin: tuple
    hair_rgb: tuple
    up_rgb: tuple
    up_alt_rgb: tuple
    pattern: str
    down_rgb: tuple
    shoe_rgb: tuple
    hat_rgb: tuple
    backpack_rgb: tuple
    bag_rgb: tuple
    handbag_rgb: tuple
    width: float
    head: float
    hip: float
    gait: float
    bag_side: int
    handbag_side: int
    label_colours: bool  # False: the attribute file marks no colour for this identity


CONDITIONS = {  # conditional priors: attribute -> (condition attribute, {class: condition name})
    "hair": ("gender", {0: "male", 1: "female"}),
    "handbag": ("gender", {0: "male", 1: "female"}),
    "clothes": ("gender", {1: "female"}),  # men wear no dress in the file
    "down": ("clothes", {0: "dress", 1: "pants"}),
}


def count_priors(identities: list[dict[str, int]]) -> dict[str, tuple[float, ...]]:
    """``MARKET_PRIORS`` counted from per-identity labels (missing labels, -1, left out)."""
    out = {}
    for name, k in SCHEMA.num_classes.items():
        groups = {name: identities}
        if name in CONDITIONS:
            given, labels = CONDITIONS[name]
            groups = {f"{name}|{label}": [i for i in identities if i[given] == c] for c, label in labels.items()}
        for key, rows in groups.items():
            counts = np.bincount([row[name] for row in rows if row[name] >= 0], minlength=k)
            out[key] = tuple(float(c) for c in counts / counts.sum())
    return out


def prior(name: str, season: float = 0.0) -> np.ndarray:
    """``MARKET_PRIORS[name]``, dark colours tilted by ``season``, every class raised to ``PRIOR_FLOOR``."""
    p = np.array(MARKET_PRIORS[name], dtype=np.float64)
    if name in DARK_COLOURS:  # winter worlds wear black and gray more often: part of the shift between worlds
        p[DARK_COLOURS[name]] *= 1.0 + 0.5 * season
        p /= p.sum()
    p = np.maximum(p, PRIOR_FLOOR)
    return p / p.sum()


def make_person(world_seed: int, pid: int, season: float) -> Person:
    """The identity ``pid`` of a world; even pids may be near-copies of ``pid - 1``."""
    rng = stream(world_seed, pid, 1)
    if pid % 2 == 0 and rng.random() < CLONE_RATE:
        return _near_copy(_sample_person(stream(world_seed, pid - 1, 1), pid - 1, season), pid, rng)
    return _sample_person(rng, pid, season)


def _draw(rng: np.random.Generator, name: str) -> int:
    return int(rng.choice(len(MARKET_PRIORS[name]), p=prior(name)))


def _sample_person(rng: np.random.Generator, pid: int, season: float) -> Person:
    female = bool(_draw(rng, "gender"))
    sex = "female" if female else "male"
    pants = _draw(rng, "clothes|female") if female else 1
    attributes = {
        "gender": int(female),
        "hair": _draw(rng, f"hair|{sex}"),
        "up": _draw(rng, "up"),
        "down": _draw(rng, "down|pants" if pants else "down|dress"),
        "clothes": pants,
        "hat": _draw(rng, "hat"),
        "backpack": _draw(rng, "backpack"),
        "bag": _draw(rng, "bag"),
        "handbag": _draw(rng, f"handbag|{sex}"),
        "age": _draw(rng, "age"),
        "up_colour": int(rng.choice(8, p=prior("up_colour", season))),
        "down_colour": int(rng.choice(9, p=prior("down_colour", season))),
    }
    up_rgb = hsv_colour(rng, UP_COLOURS[attributes["up_colour"]])
    pattern = str(rng.choice(PATTERNS))
    alt_factor = rng.choice([0.55, 0.75, 1.3, 1.6])
    up_alt = shade(up_rgb, alt_factor) if rng.random() < 0.6 else muted(rng, (0.2, 0.95))
    body = _sample_body(rng, female, attributes["age"])
    down_rgb = hsv_colour(rng, DOWN_COLOURS[attributes["down_colour"]])
    clothes = (up_rgb, down_rgb, body["skin"], body["hair_rgb"])  # accessories stand out from these
    return Person(
        pid=pid,
        attributes=attributes,
        up_rgb=up_rgb,
        up_alt_rgb=up_alt,
        pattern=pattern,
        down_rgb=down_rgb,
        hat_rgb=contrasting(rng, clothes),
        backpack_rgb=contrasting(rng, clothes),
        bag_rgb=contrasting(rng, clothes),
        handbag_rgb=contrasting(rng, clothes),
        bag_side=int(rng.choice([-1, 1])),
        handbag_side=int(rng.choice([-1, 1])),
        label_colours=bool(rng.random() >= MISSING_COLOUR_RATE),
        **body,
    )


def _sample_body(rng: np.random.Generator, female: bool, age: int) -> dict:
    """Traits that differ between people wearing the same clothes."""
    skin = SKIN_LIGHT + (SKIN_DARK - SKIN_LIGHT) * rng.random() ** 1.6
    hair = HAIR_COLOURS[int(rng.choice(5, p=[0.45, 0.25, 0.15, 0.1, 0.05]))]
    if age == 3:
        hair = shade((170, 168, 165), rng.uniform(0.7, 1.25))
    shoe = shade((30, 28, 28), rng.uniform(0.6, 2.2)) if rng.random() < 0.7 else muted(rng, (0.3, 0.95))
    return {
        "skin": tuple(int(c) for c in skin),
        "hair_rgb": shade(hair, rng.uniform(0.85, 1.15)),
        "shoe_rgb": shoe,
        "width": float(rng.uniform(0.85, 1.18) * (0.9 if female else 1.0) * (0.85 if age == 0 else 1.0)),
        "head": float(rng.uniform(0.92, 1.08) * (1.25 if age == 0 else 1.08 if age == 1 else 1.0)),
        "hip": float(rng.uniform(0.48, 0.52) + (0.03 if age == 0 else 0.0)),
        "gait": float(rng.uniform(0.5, 1.0) * (0.6 if age == 3 else 1.0)),
    }


def _near_copy(base: Person, pid: int, rng: np.random.Generator) -> Person:
    """Same clothes as ``base`` with one attribute changed, on a different body."""
    attributes = dict(base.attributes)
    name = str(rng.choice(["hair", "up", "down", "hat", "backpack", "bag", "handbag", "up_colour", "down_colour"]))
    changes: dict = {}
    if name == "up_colour":
        attributes[name] = int(rng.choice([c for c in range(8) if c != attributes[name]]))
        changes["up_rgb"] = hsv_colour(rng, UP_COLOURS[attributes[name]])
    elif name == "down_colour":
        attributes[name] = int(rng.choice([c for c in range(9) if c != attributes[name]]))
        changes["down_rgb"] = hsv_colour(rng, DOWN_COLOURS[attributes[name]])
    else:
        attributes[name] = 1 - attributes[name]
    body = _sample_body(rng, bool(attributes["gender"]), attributes["age"])
    return replace(base, pid=pid, attributes=attributes, **changes, **body)
