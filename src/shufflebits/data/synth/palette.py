"""Seeded random streams and colours, shared by the people, the drawing and the scenery."""

from __future__ import annotations

import colorsys
from functools import lru_cache

import numpy as np

SEED_TAG = 0x5B175EED  # separates our random streams from other uses of the same seeds

# (hue range, saturation range, value range) of each colour name, HSV in [0, 1].
COLOUR_HSV = {
    "black": ((0.0, 1.0), (0.0, 0.25), (0.07, 0.2)),
    "white": ((0.0, 1.0), (0.0, 0.07), (0.84, 0.97)),
    "gray": ((0.0, 1.0), (0.0, 0.07), (0.4, 0.62)),
    "red": ((-0.025, 0.02), (0.65, 0.9), (0.55, 0.85)),
    "pink": ((0.91, 0.98), (0.25, 0.5), (0.82, 0.96)),
    "purple": ((0.74, 0.82), (0.4, 0.7), (0.35, 0.62)),
    "yellow": ((0.12, 0.16), (0.6, 0.9), (0.78, 0.95)),
    "blue": ((0.57, 0.65), (0.45, 0.85), (0.38, 0.78)),
    "green": ((0.26, 0.4), (0.4, 0.8), (0.3, 0.65)),
    "brown": ((0.05, 0.1), (0.45, 0.7), (0.3, 0.52)),
}


def stream(world_seed: int, *keys: int) -> np.random.Generator:
    """The random stream of ``keys`` in a world: every draw is a function of (world seed, keys)."""
    return np.random.default_rng([SEED_TAG, world_seed, *keys])


def hsv_colour(rng: np.random.Generator, name: str) -> tuple:
    """An RGB shade of the colour ``name``, drawn inside its HSV box."""
    (h0, h1), (s0, s1), (v0, v1) = COLOUR_HSV[name]
    rgb = colorsys.hsv_to_rgb(rng.uniform(h0, h1) % 1.0, rng.uniform(s0, s1), rng.uniform(v0, v1))
    return tuple(round(255 * c) for c in rgb)


@lru_cache(maxsize=8192)
def shade(rgb: tuple, factor: float) -> tuple:
    """``rgb`` darkened (factor < 1) or lightened, clipped to 0..255; cached, drawing asks often."""
    return tuple(int(min(255, max(0, round(c * factor)))) for c in rgb)


def muted(rng: np.random.Generator, v: tuple = (0.3, 0.75), s: tuple = (0.05, 0.35)) -> tuple:
    """A random RGB colour of low saturation: bags, hats, scenery clutter."""
    rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*s), rng.uniform(*v))
    return tuple(round(255 * c) for c in rgb)


def contrasting(rng: np.random.Generator, avoid: tuple, candidates: int = 6) -> tuple:
    """A saturated RGB colour far from every colour in ``avoid``: accessories that stand out.

    Of ``candidates`` random colours, the one whose nearest ``avoid`` colour is farthest
    (RGB distance); a bag the colour of the coat would be invisible to any attack.
    """
    best, best_distance = None, -1.0
    for _ in range(candidates):
        rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.55, 1.0), rng.uniform(0.3, 0.95))
        colour = tuple(round(255 * c) for c in rgb)
        distance = min(float(np.linalg.norm(np.subtract(colour, other))) for other in avoid)
        if distance > best_distance:
            best, best_distance = colour, distance
    return best
