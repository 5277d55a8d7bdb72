"""The synthetic pedestrian world: the embedded default dataset, generated offline.

Each identity is a procedurally drawn pedestrian carrying the Market-1501
attribute schema (gender, hair, sleeve and lower-body length, dress/pants, hat,
backpack, bag, handbag, age, upper colour of 8, lower colour of 9) plus traits
no attribute names (skin tone, build, exact colour shade, garment pattern,
shoe and hair colour, gait). Some identities are near-copies of another that
differ in one attribute and share its clothes, so re-ID cannot rely on
attributes alone. Images vary by camera (background, illumination, colour cast,
blur, noise), viewpoint (front / back / side; a backpack is a box from behind,
straps from the front), walking phase, scale, offset and partial occlusion.

Everything is a function of ``(world_seed, identity)``: the same seed gives the
same bytes, and another world seed gives other people under other cameras (a
domain shift, as MSMT17 vs Market-1501). The output is the Market-1501 layout
with a ``market_attribute.mat``, read back by ``load_market1501``.

Drawing uses Pillow at twice the output size, reduced for anti-aliasing (or
more, then scaled back up, for a blurry camera); light, colour cast and noise
are applied as numpy arrays on all images of one identity at once.
"""

from __future__ import annotations

import colorsys
import math
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from ..atomic import umask_mode
from ..errors import ShuffleBitsError
from .attributes import SCHEMAS, save_attributes
from .layouts import MARKET_FOLDERS, load_market1501
from .records import ReidDataset
from .sizes import check_size

SEED_TAG = 0x5B175EED  # separates our random streams from other uses of the same seeds
SCHEMA = SCHEMAS["market"]
UP_COLOURS = SCHEMA.colours["up_colour"][1]
DOWN_COLOURS = SCHEMA.colours["down_colour"][1]

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
# Class frequencies close to market_attribute.mat (train and test tables).
UP_PRIOR = np.array([0.15, 0.30, 0.10, 0.04, 0.06, 0.12, 0.09, 0.08])
DOWN_PRIOR = np.array([0.37, 0.07, 0.04, 0.02, 0.02, 0.16, 0.19, 0.03, 0.10])
AGE_PRIOR = np.array([0.03, 0.77, 0.17, 0.03])
PATTERNS = ("plain", "plain", "plain", "stripes", "jacket", "logo", "band", "vstripes")
SKIN_LIGHT, SKIN_DARK = np.array([236, 200, 172]), np.array([98, 66, 48])
HAIR_COLOURS = ((22, 18, 16), (40, 28, 20), (74, 48, 30), (120, 84, 50), (190, 160, 110))
CLONE_RATE = 0.25  # even identities copied from the previous one with one attribute changed
MISSING_COLOUR_RATE = 0.04  # identities left without a colour label, as in the real file
VIEW_PROBS = (0.3, 0.3, 0.2, 0.2)  # front, back, side facing left, side facing right
JPEG_QUALITY = 90


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


@dataclass(frozen=True)
class Camera:
    """A camera: its light, colour cast, blur, noise and background pictures (2x size)."""

    gain: float
    cast: np.ndarray
    blur: float  # about 0 sharp, 1 soft, 2 blurry
    noise: float
    backgrounds: tuple[Image.Image, ...]  # scenes at twice the output size, wider and taller than a crop


@dataclass(frozen=True)
class World:
    """What one world seed fixes besides its people: cameras, scenery, season."""

    seed: int
    season: float  # 0 summer .. 1 winter: shifts sleeve/length/colour priors between worlds
    size: tuple[int, int]
    cameras: list[Camera]
    noise_bank: np.ndarray  # (2H, 2W, 3) float32 standard normal


def _rng(world_seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([SEED_TAG, world_seed, *keys])


def _hsv_colour(rng: np.random.Generator, name: str) -> tuple:
    (h0, h1), (s0, s1), (v0, v1) = COLOUR_HSV[name]
    rgb = colorsys.hsv_to_rgb(rng.uniform(h0, h1) % 1.0, rng.uniform(s0, s1), rng.uniform(v0, v1))
    return tuple(int(round(255 * c)) for c in rgb)


@lru_cache(maxsize=8192)
def _shade(rgb: tuple, factor: float) -> tuple:
    return tuple(int(min(255, max(0, round(c * factor)))) for c in rgb)


def _muted(rng: np.random.Generator, v: tuple = (0.3, 0.75), s: tuple = (0.05, 0.35)) -> tuple:
    rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*s), rng.uniform(*v))
    return tuple(int(round(255 * c)) for c in rgb)


def _tilted(prior: np.ndarray, season: float, dark: list[int]) -> np.ndarray:
    """Shift probability mass toward dark colours in winter-like worlds."""
    p = prior.copy()
    p[dark] *= 1.0 + 1.5 * season
    return p / p.sum()


def make_person(world_seed: int, pid: int, season: float) -> Person:
    """The identity ``pid`` of a world; even pids may be near-copies of ``pid - 1``."""
    rng = _rng(world_seed, pid, 1)
    if pid % 2 == 0 and rng.random() < CLONE_RATE:
        return _near_copy(_sample_person(_rng(world_seed, pid - 1, 1), pid - 1, season), pid, rng)
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
    up_rgb = _hsv_colour(rng, UP_COLOURS[attributes["up_colour"]])
    pattern = str(rng.choice(PATTERNS))
    alt_factor = rng.choice([0.55, 0.75, 1.3, 1.6])
    up_alt = _shade(up_rgb, alt_factor) if rng.random() < 0.6 else _muted(rng, (0.2, 0.95))
    body = _sample_body(rng, female, age)
    return Person(
        pid=pid,
        attributes=attributes,
        up_rgb=up_rgb,
        up_alt_rgb=up_alt,
        pattern=pattern,
        down_rgb=_hsv_colour(rng, DOWN_COLOURS[attributes["down_colour"]]),
        hat_rgb=_muted(rng, (0.1, 0.9), (0.0, 0.7)),
        backpack_rgb=_muted(rng, (0.08, 0.7), (0.0, 0.8)),
        bag_rgb=_muted(rng, (0.08, 0.7), (0.0, 0.6)),
        handbag_rgb=_muted(rng, (0.1, 0.8), (0.0, 0.8)),
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
        hair = _shade((170, 168, 165), rng.uniform(0.7, 1.25))
    shoe = _shade((30, 28, 28), rng.uniform(0.6, 2.2)) if rng.random() < 0.7 else _muted(rng, (0.3, 0.95))
    return {
        "skin": tuple(int(c) for c in skin),
        "hair_rgb": _shade(hair, rng.uniform(0.85, 1.15)),
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
        changes["up_rgb"] = _hsv_colour(rng, UP_COLOURS[attributes[name]])
    elif name == "down_colour":
        attributes[name] = int(rng.choice([c for c in range(9) if c != attributes[name]]))
        changes["down_rgb"] = _hsv_colour(rng, DOWN_COLOURS[attributes[name]])
    else:
        attributes[name] = 1 - attributes[name]
    body = _sample_body(rng, bool(attributes["gender"]), attributes["age"])
    return replace(base, pid=pid, attributes=attributes, **changes, **body)


def make_world(world_seed: int, size: tuple[int, int] = (128, 64), cameras: int = 6) -> World:
    """Cameras, backgrounds and style of one world (no people)."""
    height, width = check_size(size)
    if world_seed < 0:
        raise ShuffleBitsError(f"world_seed must be a non-negative integer, got {world_seed}")
    rng = _rng(world_seed, 0, 0)
    season = float(rng.uniform(0.0, 1.0))
    palette_hue = rng.random()  # the world's architecture colour, a big part of its domain shift
    cams = []
    for _ in range(cameras):
        cast = rng.uniform(0.82, 1.18, size=3)
        cams.append(
            Camera(
                gain=float(rng.uniform(0.7, 1.2)),
                cast=(cast / cast.mean()).astype(np.float32),
                blur=float(rng.uniform(-0.2, 1.5)),
                noise=float(rng.uniform(2.0, 7.0)),
                backgrounds=_backgrounds(rng, 2 * height, 2 * width, palette_hue),
            )
        )
    noise = rng.standard_normal((2 * height, 2 * width, 3), dtype=np.float32)
    return World(seed=world_seed, season=season, size=(height, width), cameras=cams, noise_bank=noise)


def _backgrounds(rng: np.random.Generator, h2: int, w2: int, hue: float, variants: int = 6) -> tuple[Image.Image, ...]:
    """A camera's scene: wall and ground colours, structures and clutter, blurred."""
    bh, bw = h2 + h2 // 4, w2 + w2 // 2
    hue = (hue + rng.normal(0, 0.08)) % 1.0
    wall = colorsys.hsv_to_rgb(hue, rng.uniform(0.05, 0.35), rng.uniform(0.35, 0.85))
    ground = colorsys.hsv_to_rgb((hue + rng.uniform(-0.15, 0.15)) % 1.0, rng.uniform(0.0, 0.25), rng.uniform(0.25, 0.6))
    wall, ground = (tuple(int(255 * c) for c in rgb) for rgb in (wall, ground))
    horizon = rng.uniform(0.35, 0.7)
    layout = [  # x, width, top (fraction of the wall) and brightness of each structure
        (rng.uniform(0, 1), rng.uniform(0.05, 0.3), rng.uniform(0.0, 0.5), rng.uniform(0.5, 1.3))
        for _ in range(rng.integers(2, 7))
    ]
    out = []
    for _ in range(variants):
        image = Image.new("RGB", (bw, bh), wall)
        draw = ImageDraw.Draw(image)
        for band in range(8):  # vertical light gradient on the wall
            y = int(band * horizon * bh / 8)
            draw.rectangle([0, y, bw, y + horizon * bh / 8 + 1], fill=_shade(wall, 0.8 + 0.05 * band))
        for x, w, top, factor in layout:  # pillars, windows, doors
            x0 = (x + rng.normal(0, 0.02)) * bw
            draw.rectangle([x0, top * horizon * bh, x0 + w * bw, horizon * bh], fill=_shade(wall, factor))
        draw.rectangle([0, horizon * bh, bw, bh], fill=ground)
        for line in range(int(rng.integers(2, 6))):  # paving joints
            y = horizon * bh + (line + rng.random()) * (1 - horizon) * bh / 5
            draw.line([0, y, bw, y + rng.normal(0, 6)], fill=_shade(ground, 0.8), width=2)
        for _ in range(int(rng.integers(0, 4))):  # bushes, bins, bicycles, far-away people
            cx, cy = rng.uniform(0, bw), rng.uniform(0.3, 0.9) * bh
            rx, ry = rng.uniform(0.05, 0.2) * bw, rng.uniform(0.03, 0.12) * bh
            colour = _muted(rng, (0.15, 0.8), (0.1, 0.7))
            if rng.random() < 0.5:
                draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=colour)
            else:
                draw.rectangle([cx - rx, cy - ry, cx + rx, cy + ry], fill=colour)
        out.append(image.filter(ImageFilter.GaussianBlur(3)))
    return tuple(out)


class _Figure:
    """Pillow drawing in person units: u down from the head top (0) to the feet (1), v sideways."""

    def __init__(self, draw: ImageDraw.ImageDraw, cx: float, top: float, height: float, facing: int):
        self.draw, self.cx, self.top, self.h, self.f = draw, cx, top, height, facing

    def pt(self, v: float, u: float) -> tuple[float, float]:
        return self.cx + self.f * v * self.h, self.top + u * self.h

    def ellipse(self, v, u, rv, ru, fill) -> None:
        x, y = self.pt(v, u)
        self.draw.ellipse([x - rv * self.h, y - ru * self.h, x + rv * self.h, y + ru * self.h], fill=fill)

    def poly(self, points, fill) -> None:
        self.draw.polygon([self.pt(v, u) for v, u in points], fill=fill)

    def quad(self, u0, left0, right0, u1, left1, right1, fill) -> None:
        """A four-sided shape with a horizontal top edge at u0 and bottom edge at u1."""
        self.poly([(left0, u0), (right0, u0), (right1, u1), (left1, u1)], fill)

    def limb(self, a, b, wa, wb, fill, round_end: bool = True) -> None:
        """A tapered segment from a=(v, u) to b with full widths wa, wb, round at b."""
        (xa, ya), (xb, yb) = self.pt(*a), self.pt(*b)
        length = max(math.hypot(xb - xa, yb - ya), 1e-6)
        nx, ny = -(yb - ya) / length, (xb - xa) / length
        ha, hb = wa * self.h / 2, wb * self.h / 2
        self.draw.polygon(
            [
                (xa + nx * ha, ya + ny * ha),
                (xb + nx * hb, yb + ny * hb),
                (xb - nx * hb, yb - ny * hb),
                (xa - nx * ha, ya - ny * ha),
            ],
            fill=fill,
        )
        if round_end:
            self.draw.ellipse([xb - hb, yb - hb, xb + hb, yb + hb], fill=fill)


def _draw_person(fig: _Figure, p: Person, view: int, phase: float) -> None:
    """Draw ``p`` seen from the front (0), back (1) or side (2, 3) at walking ``phase``."""
    a = p.attributes
    side = view >= 2
    hs, hip, w = p.head, p.hip, p.width
    head_u = 0.068 * hs
    shoulder_u = 0.128 * hs + 0.02
    sw = (0.068 if side else 0.108) * w
    hw = (0.07 if side else 0.092) * w * (1.08 if a["gender"] else 1.0)
    ww = min(sw, hw) * 0.92
    stride = p.gait * np.sin(phase)
    dark_down = _shade(p.down_rgb, 0.72)
    pack_strap = _shade(p.backpack_rgb, 0.7)
    lower_end = 0.93 if a["down"] == 0 else 0.7  # long / short lower body
    dress_hem = 0.86 if a["down"] == 0 else 0.7

    def legs(order):
        for sign in order:
            if side:
                knee, ankle = (sign * 0.09 * stride, 0.74), (sign * 0.17 * stride, 0.95 - 0.02 * abs(stride))
                hip_pt = (0.0, hip)
            else:
                lift = 0.025 * max(0.0, sign * stride)
                knee, ankle = (sign * 0.052 * w, 0.73 - lift), (sign * 0.05, 0.95 - lift)
                hip_pt = (sign * 0.045 * w, hip)
            far = side and sign < 0
            cloth = dark_down if far else p.down_rgb
            skin = _shade(p.skin, 0.85) if far else p.skin
            fig.limb(hip_pt, knee, 0.085, 0.062, skin)
            fig.limb(knee, ankle, 0.062, 0.048, skin)
            if a["clothes"] == 1 and lower_end >= knee[1]:  # trousers
                fig.limb(hip_pt, knee, 0.095, 0.07, cloth)
                t = min(1.0, (lower_end - knee[1]) / (ankle[1] - knee[1]))
                end = (knee[0] + t * (ankle[0] - knee[0]), knee[1] + t * (ankle[1] - knee[1]))
                fig.limb(knee, end, 0.07, 0.058, cloth, round_end=False)
            elif a["clothes"] == 1:  # shorts
                t = (lower_end - hip) / (knee[1] - hip)
                fig.limb(hip_pt, (hip_pt[0] + t * (knee[0] - hip_pt[0]), lower_end), 0.1, 0.09, cloth, round_end=False)
            shoe = _shade(p.shoe_rgb, 0.8) if far else p.shoe_rgb
            fig.ellipse(ankle[0] + (0.02 if side else 0.0), ankle[1] + 0.018, 0.045 if side else 0.033, 0.022, shoe)

    def torso():
        if a["clothes"] == 1:  # hips of the trousers
            fig.poly([(-hw, hip - 0.05), (hw, hip - 0.05), (hw, hip + 0.06), (-hw, hip + 0.06)], p.down_rgb)
        else:  # a dress / skirt, flared
            fig.poly([(-ww, hip - 0.08), (ww, hip - 0.08), (hw * 1.55, dress_hem), (-hw * 1.55, dress_hem)], p.down_rgb)
        fig.poly(
            [(-sw + 0.015, shoulder_u), (sw - 0.015, shoulder_u), (sw, shoulder_u + 0.03), (ww, hip - 0.1),
             (hw, hip + 0.015), (-hw, hip + 0.015), (-ww, hip - 0.1), (-sw, shoulder_u + 0.03)],
            p.up_rgb,
        )
        shadow = [(sw * 0.55, shoulder_u + 0.03), (sw, shoulder_u + 0.03), (ww, hip - 0.1), (hw, hip + 0.015)]
        fig.poly([*shadow, (hw * 0.6, hip + 0.015)], _shade(p.up_rgb, 0.84))
        pattern = p.pattern
        if pattern == "stripes":
            u = shoulder_u + 0.04
            while u < hip - 0.01:
                fig.poly([(-ww, u), (ww, u), (ww, u + 0.018), (-ww, u + 0.018)], p.up_alt_rgb)
                u += 0.05
        elif pattern == "vstripes":
            for v in (-0.6, 0.0, 0.6):
                left, right = v * ww - 0.01, v * ww + 0.01
                fig.quad(shoulder_u + 0.02, left, right, hip, left, right, p.up_alt_rgb)
        elif pattern == "band":
            fig.quad(shoulder_u + 0.13, -ww, ww, shoulder_u + 0.18, -ww, ww, p.up_alt_rgb)
        elif pattern == "jacket" and view == 0:
            fig.poly([(-0.022, shoulder_u), (0.022, shoulder_u), (0.028, hip), (-0.028, hip)], p.up_alt_rgb)
        elif pattern == "logo" and view == 0:
            fig.ellipse(0.0, shoulder_u + 0.1, 0.035, 0.03, p.up_alt_rgb)

    def arm(sign, swing, far=False):
        shoulder = (0.0 if side else sign * (sw - 0.012), shoulder_u + 0.025)
        if side:
            elbow = (-0.06 * swing * sign, shoulder_u + 0.16)
            wrist = (-0.14 * swing * sign, hip - 0.01)
        else:
            elbow = (sign * (sw + 0.018), shoulder_u + 0.16)
            wrist = (sign * (sw + 0.022), hip - 0.01 - 0.02 * abs(swing))
        skin = _shade(p.skin, 0.85) if far else p.skin
        sleeve = _shade(p.up_rgb, 0.75) if far else p.up_rgb
        fig.limb(shoulder, elbow, 0.058, 0.05, skin)
        fig.limb(elbow, wrist, 0.05, 0.042, skin)
        if a["up"] == 0:  # long sleeves
            fig.limb(shoulder, elbow, 0.064, 0.056, sleeve)
            fig.limb(elbow, wrist, 0.056, 0.048, sleeve, round_end=False)
        else:
            mid = (shoulder[0] + 0.55 * (elbow[0] - shoulder[0]), shoulder[1] + 0.55 * (elbow[1] - shoulder[1]))
            fig.limb(shoulder, mid, 0.066, 0.06, sleeve, round_end=False)
        fig.ellipse(wrist[0], wrist[1] + 0.012, 0.022, 0.025, skin)
        return wrist

    def head():
        if a["hair"] == 1 and view == 0:  # long hair falls beside the face
            fig.poly([(-0.055 * hs, head_u), (0.055 * hs, head_u), (0.062, 0.22), (-0.062, 0.22)], p.hair_rgb)
        fig.limb((0.0, head_u + 0.03), (0.0, shoulder_u + 0.01), 0.042, 0.048, p.skin, round_end=False)  # neck
        fig.ellipse(0.0, head_u, 0.05 * hs, 0.066 * hs, p.skin)
        if view == 0:
            fig.ellipse(0.0, head_u - 0.02 * hs, 0.052 * hs, 0.05 * hs, p.hair_rgb)
            fig.ellipse(0.0, head_u + 0.012 * hs, 0.042 * hs, 0.05 * hs, p.skin)
            for v in (-0.017, 0.017):
                fig.ellipse(v * hs, head_u + 0.008 * hs, 0.006, 0.005, _shade(p.skin, 0.45))
        elif view == 1:
            fig.ellipse(0.0, head_u - 0.004, 0.052 * hs, 0.064 * hs, p.hair_rgb)
        else:
            fig.ellipse(-0.012 * hs, head_u - 0.008, 0.047 * hs, 0.06 * hs, p.hair_rgb)
            fig.ellipse(0.052 * hs, head_u + 0.02, 0.01, 0.012, p.skin)  # nose
        if a["hair"] == 1 and view != 0:
            back = -0.02 if side else 0.0
            right = back + (0.02 if side else 0.05) * hs
            fig.quad(head_u, back - 0.05 * hs, right, 0.24, back - 0.06, back + 0.06, p.hair_rgb)
        if a["hat"]:
            fig.ellipse(0.0, head_u - 0.035 * hs, 0.056 * hs, 0.04 * hs, p.hat_rgb)
            if view != 1:
                brim = (0.0, 0.075) if side else (-0.065, 0.065)
                left, right = brim[0] * hs, brim[1] * hs
                fig.quad(head_u - 0.02 * hs, left, right, head_u - 0.008 * hs, left, right, _shade(p.hat_rgb, 0.8))

    def backpack_back():
        fig.quad(shoulder_u + 0.03, -0.085 * w, 0.085 * w, shoulder_u + 0.28, -0.09 * w, 0.09 * w, p.backpack_rgb)
        pocket = _shade(p.backpack_rgb, 0.8)
        fig.quad(shoulder_u + 0.17, -0.06 * w, 0.06 * w, shoulder_u + 0.25, -0.06 * w, 0.06 * w, pocket)

    def bag_strap(sign):
        strap = _shade(p.bag_rgb, 0.7)
        fig.limb((sign * sw * 0.7, shoulder_u + 0.005), (-sign * hw, hip - 0.03), 0.014, 0.014, strap, round_end=False)

    def bag_box(sign):
        v = -sign * (hw + 0.02) if not side else sign * 0.02
        fig.quad(hip - 0.06, v - 0.045, v + 0.045, hip + 0.06, v - 0.05, v + 0.05, p.bag_rgb)

    def handbag(wrist):
        v, u = wrist
        fig.limb((v, u), (v, u + 0.03), 0.01, 0.01, _shade(p.handbag_rgb, 0.6), round_end=False)
        fig.quad(u + 0.03, v - 0.04, v + 0.04, u + 0.11, v - 0.045, v + 0.045, p.handbag_rgb)

    if side:
        if a["backpack"]:
            pack = [(-sw - 0.075, shoulder_u + 0.04), (-sw + 0.01, shoulder_u + 0.02), (-sw + 0.01, shoulder_u + 0.28)]
            fig.poly([*pack, (-sw - 0.08, shoulder_u + 0.27)], p.backpack_rgb)
        arm(1, -stride, far=True)
        legs((-1, 1))
        torso()
        if a["backpack"]:
            fig.limb((0.01, shoulder_u + 0.005), (-0.02, shoulder_u + 0.16), 0.018, 0.018, pack_strap, round_end=False)
        if a["bag"]:
            bag_strap(1)
            bag_box(p.bag_side)
        head()
        wrist = arm(1, stride)
        if a["handbag"]:
            handbag(wrist)
        return
    legs((-1, 1))
    torso()
    if view == 0:
        if a["backpack"]:
            for sign in (-1, 1):
                top, bottom = (sign * sw * 0.55, shoulder_u), (sign * sw * 0.75, shoulder_u + 0.2)
                fig.limb(top, bottom, 0.018, 0.018, pack_strap, round_end=False)
        if a["bag"]:
            bag_strap(p.bag_side)
    wrists = {sign: arm(sign, stride * sign) for sign in (-1, 1)}
    if view == 1:
        if a["backpack"]:
            backpack_back()
        if a["bag"]:
            bag_strap(p.bag_side)
    if a["bag"]:
        bag_box(p.bag_side)
    head()
    if a["handbag"]:
        handbag(wrists[p.handbag_side])


def _draw_occluder(draw: ImageDraw.ImageDraw, rng: np.random.Generator, h2: int, w2: int) -> None:
    """Something between camera and person: a low object, a pole or a passer-by."""
    kind = rng.integers(3)
    colour = _muted(rng, (0.15, 0.85), (0.0, 0.6))
    if kind == 0:
        top = rng.uniform(0.68, 0.85) * h2
        x0 = rng.uniform(-0.3, 0.3) * w2
        draw.rectangle([x0, top, x0 + rng.uniform(0.7, 1.3) * w2, h2], fill=colour)
        draw.line([x0, top + 3, x0 + w2 * 1.3, top + 3], fill=_shade(colour, 1.3), width=3)
    elif kind == 1:
        x0 = rng.uniform(0.0, 0.9) * w2
        draw.rectangle([x0, 0, x0 + rng.uniform(0.06, 0.14) * w2, h2], fill=colour)
    else:
        edge = 0 if rng.random() < 0.5 else w2
        cx = edge + (1 if edge == 0 else -1) * rng.uniform(-0.1, 0.12) * w2
        top = rng.uniform(0.05, 0.2) * h2
        shoulders = top + 0.14 * h2
        body = [(cx - 0.22 * w2, shoulders), (cx + 0.22 * w2, shoulders), (cx + 0.2 * w2, h2), (cx - 0.2 * w2, h2)]
        draw.polygon(body, fill=colour)
        draw.ellipse([cx - 0.1 * w2, top, cx + 0.1 * w2, top + 0.13 * h2], fill=_muted(rng, (0.3, 0.8)))


def render_person(world: World, person: Person, n_images: int) -> tuple[np.ndarray, list[int]]:
    """Draw ``n_images`` views of ``person``; returns uint8 ``(n, H, W, 3)`` and camera ids.

    The identity appears in at least two cameras with at least two images in
    each (one can be a query, one a gallery match); a camera mostly sees one
    viewpoint, as a person walks past it in one direction.
    """
    rng = _rng(world.seed, person.pid, 2)
    n_cams = len(world.cameras)
    chosen = rng.choice(n_cams, size=int(rng.integers(2, max(2, min(n_cams, n_images // 2)) + 1)), replace=False)
    extra = rng.choice(chosen, size=n_images - 2 * len(chosen))
    cameras = sorted([int(c) for c in chosen] * 2 + [int(c) for c in extra])
    view_of_camera = {c: int(rng.choice(4, p=VIEW_PROBS)) for c in chosen}
    h2, w2 = 2 * world.size[0], 2 * world.size[1]

    def paint(draw: ImageDraw.ImageDraw, cam_id: int) -> None:
        view = view_of_camera[cam_id] if rng.random() < 0.8 else int(rng.choice(4, p=VIEW_PROBS))
        person_h = h2 * rng.uniform(0.84, 1.0)
        top = (h2 - person_h) * rng.uniform(0.1, 0.9) + rng.normal(0, 0.015) * h2
        cx = w2 * (0.5 + rng.uniform(-0.08, 0.08))
        figure = _Figure(draw, cx, top, person_h, -1 if view == 2 else 1)
        _draw_person(figure, person, view, float(rng.uniform(0, 2 * np.pi)))
        if rng.random() < 0.2:
            _draw_occluder(draw, rng, h2, w2)

    return _shoot(world, cameras, rng, paint), cameras


def render_distractor(world: World, index: int) -> tuple[np.ndarray, int]:
    """A ``0000`` gallery image: a poor detection showing part of a passer-by."""
    rng = _rng(world.seed, 0, 3, index)
    camera = int(rng.integers(len(world.cameras)))
    stranger = make_person(world.seed, 10_000 + index, world.season)
    h2, w2 = 2 * world.size[0], 2 * world.size[1]

    def paint(draw: ImageDraw.ImageDraw, cam_id: int) -> None:
        person_h = h2 * rng.uniform(1.5, 2.6)
        top = -rng.uniform(0.0, person_h - 0.5 * h2)
        cx = w2 * rng.uniform(0.0, 1.0)
        figure = _Figure(draw, cx, top, person_h, 1)
        _draw_person(figure, stranger, int(rng.integers(4)), float(rng.uniform(0, 2 * np.pi)))
        if rng.random() < 0.5:
            _draw_occluder(draw, rng, h2, w2)

    return _shoot(world, [camera], rng, paint)[0], camera


def _shoot(world: World, cameras: list[int], rng: np.random.Generator, paint) -> np.ndarray:
    """One picture per camera id: a scene crop, ``paint(draw, cam_id)``, then camera effects.

    Drawing happens at twice the size and is reduced 2x2 (anti-aliasing). A
    blurry camera reduces 3x3 or 4x4 and scales back up, like the upscaled
    low-resolution detections of real datasets. Light, colour cast and sensor
    noise are applied to all pictures at once.
    """
    height, width = world.size
    h2, w2 = 2 * height, 2 * width
    n = len(cameras)
    frames = np.empty((n, height, width, 3), dtype=np.float32)
    gains = np.empty((n, 1, 1, 3), dtype=np.float32)
    slopes, sigmas = (np.empty((n, 1, 1, 1), dtype=np.float32) for _ in range(2))
    offsets = []
    for index, cam_id in enumerate(cameras):
        cam = world.cameras[cam_id]
        scene = cam.backgrounds[int(rng.integers(len(cam.backgrounds)))]
        ox, oy = int(rng.integers(scene.width - w2 + 1)), int(rng.integers(scene.height - h2 + 1))
        image = scene.crop((ox, oy, ox + w2, oy + h2))
        paint(ImageDraw.Draw(image), cam_id)
        blur = min(2, max(0, round(cam.blur + rng.uniform(0.0, 0.8))))
        image = image.reduce(2) if blur == 0 else image.reduce(2 + blur).resize((width, height), Image.BILINEAR)
        frames[index] = np.asarray(image, dtype=np.float32)
        gains[index, 0, 0] = cam.gain * rng.uniform(0.85, 1.15) * cam.cast * rng.uniform(0.95, 1.05, size=3)
        slopes[index] = rng.uniform(-0.3, 0.3)
        sigmas[index] = cam.noise * rng.uniform(0.7, 1.3)
        offsets.append((int(rng.integers(height)), int(rng.integers(width))))
    ramp = np.linspace(-0.5, 0.5, width, dtype=np.float32).reshape(1, 1, width, 1)
    frames *= gains * (1.0 + slopes * ramp)
    noise = np.stack([world.noise_bank[oy : oy + height, ox : ox + width] for oy, ox in offsets])
    noise *= sigmas
    frames += noise
    frames += 0.5  # round, not truncate, in the cast below
    return np.clip(frames, 0, 255, out=frames).astype(np.uint8)


def generate_world(
    out_dir: str | os.PathLike,
    identities: int = 200,
    world_seed: int = 0,
    size: tuple[int, int] = (128, 64),
    images_per_identity: int = 16,
    cameras: int = 6,
    distractors: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> ReidDataset:
    """Write a synthetic world in the Market-1501 layout and load it back.

    Identities ``1..identities//2`` form ``bounding_box_train``; the rest give
    one query per camera they appear in, their other images forming
    ``bounding_box_test``, with ``distractors`` extra ``0000`` images of
    passers-by cut off by a bad detection. ``workers > 1`` renders identities
    in that many processes (same bytes, as each identity has its own seed).
    The folder appears atomically (built beside it, then renamed); a
    non-empty ``out_dir`` is refused unless ``overwrite``.
    """
    out_dir = Path(out_dir)
    height, width = check_size(size)
    if identities < 2 or identities > 9999:
        raise ShuffleBitsError(f"identities must be between 2 and 9999, got {identities}")
    if images_per_identity < 4:
        raise ShuffleBitsError(f"images_per_identity must be at least 4, got {images_per_identity}")
    if not 2 <= cameras <= 9:
        raise ShuffleBitsError(f"cameras must be between 2 and 9 (Market names hold one digit), got {cameras}")
    if not 0 <= distractors <= 999_999:
        raise ShuffleBitsError(f"distractors must be between 0 and 999999, got {distractors}")
    if min(height, width) < 16:
        raise ShuffleBitsError(f"size must be at least 16x16, got {height}x{width}")
    if world_seed < 0:
        raise ShuffleBitsError(f"world_seed must be a non-negative integer, got {world_seed}")
    if workers < 1:
        raise ShuffleBitsError(f"workers must be at least 1, got {workers}")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise ShuffleBitsError(f"{out_dir} exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    tmp.chmod(umask_mode(0o777))  # mkdtemp makes 0700; the world is ordinary output
    total = identities * images_per_identity + distractors
    try:
        with tqdm(total=total, desc="synth", unit="img", disable=not progress) as bar:
            for name in MARKET_FOLDERS.values():
                (tmp / name).mkdir()
            job = _Job(tmp, world_seed, (height, width), cameras, images_per_identity, identities // 2)
            chunks = [list(range(start, min(start + 8, identities + 1))) for start in range(1, identities + 1, 8)]
            tables: dict = {"train": {}, "test": {}}
            for labels in _run_chunks(job, chunks, workers):
                for pid, (split, attributes) in labels.items():
                    tables[split][pid] = attributes
                bar.update(len(labels) * images_per_identity)
            world = _world(world_seed, (height, width), cameras)
            for index in range(distractors):
                image, cam = render_distractor(world, index)
                name = f"0000_c{cam + 1}s1_{index:06d}_01.jpg"
                Image.fromarray(image).save(tmp / MARKET_FOLDERS["gallery"] / name, quality=JPEG_QUALITY)
                bar.update(1)
        save_attributes(tmp / "market_attribute.mat", tables, "market")
        _replace_folder(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_market1501(out_dir)


@dataclass(frozen=True)
class _Job:
    """What a worker needs to render and write a chunk of identities."""

    folder: Path
    world_seed: int
    size: tuple[int, int]
    cameras: int
    images_per_identity: int
    n_train: int


@lru_cache(maxsize=2)
def _world(world_seed: int, size: tuple[int, int], cameras: int) -> World:
    """``make_world``, built once per process."""
    return make_world(world_seed, size, cameras)


def _run_chunks(job: _Job, chunks: list[list[int]], workers: int):
    """Yield ``{pid: (split, labels)}`` per chunk, in this process or in a pool."""
    if workers == 1:
        for chunk in chunks:
            yield _write_chunk(job, chunk)
        return
    context = multiprocessing.get_context("spawn")  # safe beside torch's threads, unlike fork
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(_write_chunk, [job] * len(chunks), chunks)


def _write_chunk(job: _Job, pids: list[int]) -> dict[int, tuple[str, dict[str, int]]]:
    """Render and write the images of ``pids``; return their split and attribute labels."""
    world = _world(job.world_seed, job.size, job.cameras)
    out = {}
    for pid in pids:
        person = make_person(world.seed, pid, world.season)
        images, cams = render_person(world, person, job.images_per_identity)
        split = "train" if pid <= job.n_train else "test"
        labels = dict(person.attributes)
        if not person.label_colours:
            labels["up_colour"] = labels["down_colour"] = -1
        out[pid] = (split, labels)
        seen: set[int] = set()
        for frame, (image, cam) in enumerate(zip(images, cams)):
            if split == "train":
                subfolder = MARKET_FOLDERS["train"]
            else:  # Market-style: the first image from each camera is that camera's query
                subfolder = MARKET_FOLDERS["gallery"] if cam in seen else MARKET_FOLDERS["query"]
                seen.add(cam)
            name = f"{pid:04d}_c{cam + 1}s1_{frame:06d}_01.jpg"
            Image.fromarray(image).save(job.folder / subfolder / name, quality=JPEG_QUALITY)
    return out


def _replace_folder(tmp: Path, out_dir: Path) -> None:
    """Rename the finished ``tmp`` to ``out_dir``, moving any old folder out of the way first."""
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()
        os.replace(tmp, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
    old.rmdir()
    os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old.is_dir():
        shutil.rmtree(old)
    else:
        old.unlink()

