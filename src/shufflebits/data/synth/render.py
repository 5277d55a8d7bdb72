"""Scenery and cameras: a world's cameras and backgrounds, occluders, and shooting pictures of people.

Images vary by camera (background, illumination, colour cast, blur, noise),
viewpoint (a camera mostly sees one), walking phase, scale, offset and partial
occlusion. Drawing uses Pillow at twice the output size, reduced for
anti-aliasing (or more, then scaled back up, for a blurry camera); light, colour
cast and noise are applied as numpy arrays on all images of one identity at once.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ...errors import ShuffleBitsError
from ..sizes import check_size
from .draw import Figure, draw_person
from .palette import muted, shade, stream
from .people import Person, make_person

VIEW_PROBS = (0.3, 0.3, 0.2, 0.2)  # front, back, side facing left, side facing right


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


def make_world(world_seed: int, size: tuple[int, int] = (128, 64), cameras: int = 6) -> World:
    """Cameras, backgrounds and style of one world (no people)."""
    height, width = check_size(size)
    if world_seed < 0:
        raise ShuffleBitsError(f"world_seed must be a non-negative integer, got {world_seed}")
    rng = stream(world_seed, 0, 0)
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
            draw.rectangle([0, y, bw, y + horizon * bh / 8 + 1], fill=shade(wall, 0.8 + 0.05 * band))
        for x, w, top, factor in layout:  # pillars, windows, doors
            x0 = (x + rng.normal(0, 0.02)) * bw
            draw.rectangle([x0, top * horizon * bh, x0 + w * bw, horizon * bh], fill=shade(wall, factor))
        draw.rectangle([0, horizon * bh, bw, bh], fill=ground)
        for line in range(int(rng.integers(2, 6))):  # paving joints
            y = horizon * bh + (line + rng.random()) * (1 - horizon) * bh / 5
            draw.line([0, y, bw, y + rng.normal(0, 6)], fill=shade(ground, 0.8), width=2)
        for _ in range(int(rng.integers(0, 4))):  # bushes, bins, bicycles, far-away people
            cx, cy = rng.uniform(0, bw), rng.uniform(0.3, 0.9) * bh
            rx, ry = rng.uniform(0.05, 0.2) * bw, rng.uniform(0.03, 0.12) * bh
            colour = muted(rng, (0.15, 0.8), (0.1, 0.7))
            if rng.random() < 0.5:
                draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=colour)
            else:
                draw.rectangle([cx - rx, cy - ry, cx + rx, cy + ry], fill=colour)
        out.append(image.filter(ImageFilter.GaussianBlur(3)))
    return tuple(out)


def _draw_occluder(draw: ImageDraw.ImageDraw, rng: np.random.Generator, h2: int, w2: int) -> None:
    """Something between camera and person: a low object, a pole or a passer-by."""
    kind = rng.integers(3)
    colour = muted(rng, (0.15, 0.85), (0.0, 0.6))
    if kind == 0:
        top = rng.uniform(0.68, 0.85) * h2
        x0 = rng.uniform(-0.3, 0.3) * w2
        draw.rectangle([x0, top, x0 + rng.uniform(0.7, 1.3) * w2, h2], fill=colour)
        draw.line([x0, top + 3, x0 + w2 * 1.3, top + 3], fill=shade(colour, 1.3), width=3)
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
        draw.ellipse([cx - 0.1 * w2, top, cx + 0.1 * w2, top + 0.13 * h2], fill=muted(rng, (0.3, 0.8)))


def render_person(world: World, person: Person, n_images: int) -> tuple[np.ndarray, list[int]]:
    """Draw ``n_images`` views of ``person``; returns uint8 ``(n, H, W, 3)`` and camera ids.

    The identity appears in at least two cameras (so a query from one has a
    match in another), each with at least one image (``n_images >= 2``); a
    camera mostly sees one viewpoint, as a person walks past it in one direction.
    """
    if n_images < 2:
        raise ShuffleBitsError(f"a person needs at least 2 images (two cameras), got {n_images}")
    rng = stream(world.seed, person.pid, 2)
    n_cams = len(world.cameras)
    chosen = rng.choice(n_cams, size=int(rng.integers(2, min(n_cams, n_images) + 1)), replace=False)
    extra = rng.choice(chosen, size=n_images - len(chosen))
    cameras = sorted([int(c) for c in chosen] + [int(c) for c in extra])
    view_of_camera = {c: int(rng.choice(4, p=VIEW_PROBS)) for c in chosen}
    h2, w2 = 2 * world.size[0], 2 * world.size[1]

    def paint(draw: ImageDraw.ImageDraw, cam_id: int) -> None:
        view = view_of_camera[cam_id] if rng.random() < 0.8 else int(rng.choice(4, p=VIEW_PROBS))
        person_h = h2 * rng.uniform(0.84, 1.0)
        top = (h2 - person_h) * rng.uniform(0.1, 0.9) + rng.normal(0, 0.015) * h2
        cx = w2 * (0.5 + rng.uniform(-0.08, 0.08))
        figure = Figure(draw, cx, top, person_h, -1 if view == 2 else 1)
        draw_person(figure, person, view, float(rng.uniform(0, 2 * np.pi)))
        if rng.random() < 0.2:
            _draw_occluder(draw, rng, h2, w2)

    return _shoot(world, cameras, rng, paint), cameras


def render_distractor(world: World, index: int) -> tuple[np.ndarray, int]:
    """A ``0000`` gallery image: a poor detection showing part of a passer-by."""
    rng = stream(world.seed, 0, 3, index)
    camera = int(rng.integers(len(world.cameras)))
    stranger = make_person(world.seed, 10_000 + index, world.season)
    h2, w2 = 2 * world.size[0], 2 * world.size[1]

    def paint(draw: ImageDraw.ImageDraw, cam_id: int) -> None:
        person_h = h2 * rng.uniform(1.5, 2.6)
        top = -rng.uniform(0.0, person_h - 0.5 * h2)
        cx = w2 * rng.uniform(0.0, 1.0)
        figure = Figure(draw, cx, top, person_h, 1)
        draw_person(figure, stranger, int(rng.integers(4)), float(rng.uniform(0, 2 * np.pi)))
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
