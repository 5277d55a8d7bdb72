"""Synthetic people: attribute priors and the sampling of one identity from its world seed.

Each identity carries the Market-1501 attribute schema plus traits no attribute
names (skin tone, build, exact colour shade, garment pattern, shoe and hair
colour, gait). Some identities are near-copies of another that differ in one
attribute and share its clothes, so re-ID cannot rely on attributes alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..attributes import SCHEMAS
from .palette import hsv_colour, muted, shade, stream

SCHEMA = SCHEMAS["market"]
UP_COLOURS = SCHEMA.colours["up_colour"][1]
DOWN_COLOURS = SCHEMA.colours["down_colour"][1]
# Class frequencies close to market_attribute.mat (train and test tables).
UP_PRIOR = np.array([0.15, 0.30, 0.10, 0.04, 0.06, 0.12, 0.09, 0.08])
DOWN_PRIOR = np.array([0.37, 0.07, 0.04, 0.02, 0.02, 0.16, 0.19, 0.03, 0.10])
AGE_PRIOR = np.array([0.03, 0.77, 0.17, 0.03])
PATTERNS = ("plain", "plain", "plain", "stripes", "jacket", "logo", "band", "vstripes")
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


def _tilted(prior: np.ndarray, season: float, dark: list[int]) -> np.ndarray:
    """Shift probability mass toward dark colours in winter-like worlds."""
    p = prior.copy()
    p[dark] *= 1.0 + 1.5 * season
    return p / p.sum()


def make_person(world_seed: int, pid: int, season: float) -> Person:
    """The identity ``pid`` of a world; even pids may be near-copies of ``pid - 1``."""
    rng = stream(world_seed, pid, 1)
    if pid % 2 == 0 and rng.random() < CLONE_RATE:
        return _near_copy(_sample_person(stream(world_seed, pid - 1, 1), pid - 1, season), pid, rng)
    return _sample_person(rng, pid, season)


def _sample_person(rng: np.random.Generator, pid: int, season: float) -> Person:
    female = rng.random() < 0.43
    age = int(rng.choice(4, p=AGE_PRIOR))
    dress = female and rng.random() < 0.3
    attributes = {
        "gender": int(female),
        "hair": int(rng.random() < (0.72 if female else 0.06)),
        "up": int(rng.random() < 0.9 - 0.45 * season),
        "down": int(rng.random() < 0.62 - 0.35 * season),
        "clothes": 0 if dress else 1,
        "hat": int(rng.random() < 0.05 + 0.1 * season),
        "backpack": int(rng.random() < 0.26),
        "bag": int(rng.random() < 0.25),
        "handbag": int(rng.random() < (0.18 if female else 0.05)),
        "age": age,
        "up_colour": int(rng.choice(8, p=_tilted(UP_PRIOR, season, [0, 5]))),
        "down_colour": int(rng.choice(9, p=_tilted(DOWN_PRIOR, season, [0, 5]))),
    }
    up_rgb = hsv_colour(rng, UP_COLOURS[attributes["up_colour"]])
    pattern = str(rng.choice(PATTERNS))
    alt_factor = rng.choice([0.55, 0.75, 1.3, 1.6])
    up_alt = shade(up_rgb, alt_factor) if rng.random() < 0.6 else muted(rng, (0.2, 0.95))
    body = _sample_body(rng, female, age)
    return Person(
        pid=pid,
        attributes=attributes,
        up_rgb=up_rgb,
        up_alt_rgb=up_alt,
        pattern=pattern,
        down_rgb=hsv_colour(rng, DOWN_COLOURS[attributes["down_colour"]]),
        hat_rgb=muted(rng, (0.1, 0.9), (0.0, 0.7)),
        backpack_rgb=muted(rng, (0.08, 0.7), (0.0, 0.8)),
        bag_rgb=muted(rng, (0.08, 0.7), (0.0, 0.6)),
        handbag_rgb=muted(rng, (0.1, 0.8), (0.0, 0.8)),
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
