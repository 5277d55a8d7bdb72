"""Writing a synthetic world: identities rendered in a process pool, the Market-1501 layout, the ``.mat``.

Everything is a function of ``(world_seed, identity)``: the same seed gives the
same bytes whatever the number of workers, and another world seed gives other
people under other cameras (a domain shift, as MSMT17 vs Market-1501).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from ...atomic import umask_mode
from ...errors import ShuffleBitsError
from ..attributes import save_attributes
from ..layouts import MARKET_FOLDERS, load_market1501
from ..records import ReidDataset
from ..sizes import check_size
from .palette import stream
from .people import make_person
from .render import World, make_world, render_distractor, render_person

JPEG_QUALITY = 90


def generate_world(
    out_dir: str | os.PathLike,
    identities: int = 200,
    world_seed: int = 0,
    size: tuple[int, int] = (128, 64),
    images_per_identity: int | tuple[int, int] = 16,
    cameras: int = 6,
    distractors: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> ReidDataset:
    """Write a synthetic world in the Market-1501 layout and load it back.

    Identities ``1..identities//2`` form ``bounding_box_train``; the rest give
    one query per camera they appear in except the camera holding most of
    their images, whose images all stay in ``bounding_box_test`` with the
    others (so every query has a match in another camera), plus
    ``distractors`` extra ``0000`` images of passers-by cut off by a bad
    detection. ``images_per_identity`` is a count or a ``(low, high)`` range:
    each identity then gets its own count in it (from the world seed), so
    queries have different numbers of matches and mAP differs from mINP. ``workers > 1`` renders identities
    in that many processes (same bytes, as each identity has its own seed).
    The folder appears atomically (built beside it, then renamed); a
    non-empty ``out_dir`` is refused unless ``overwrite``.
    """
    out_dir = Path(out_dir)
    height, width = check_size(size)
    if identities < 2 or identities > 9999:
        raise ShuffleBitsError(f"identities must be between 2 and 9999, got {identities}")
    low, high = image_counts(images_per_identity)
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
        raise ShuffleBitsError(f"{out_dir} exists and is not empty; pass overwrite=True to replace it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    tmp.chmod(umask_mode(0o777))  # mkdtemp makes 0700; the world is ordinary output
    total = sum(images_of(world_seed, pid, (low, high)) for pid in range(1, identities + 1)) + distractors
    try:
        with tqdm(total=total, desc="synth", unit="img", disable=not progress) as bar:
            for name in MARKET_FOLDERS.values():
                (tmp / name).mkdir()
            job = _Job(tmp, world_seed, (height, width), cameras, (low, high), identities // 2)
            chunks = [list(range(start, min(start + 8, identities + 1))) for start in range(1, identities + 1, 8)]
            tables: dict = {"train": {}, "test": {}}
            for labels in _run_chunks(job, chunks, workers):
                for pid, (split, attributes) in labels.items():
                    tables[split][pid] = attributes
                bar.update(sum(images_of(world_seed, pid, (low, high)) for pid in labels))
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
    images_per_identity: tuple[int, int]
    n_train: int


def image_counts(images_per_identity: int | tuple[int, int]) -> tuple[int, int]:
    """``(low, high)`` images per identity from a count or a range; at least 2 (two cameras)."""
    if isinstance(images_per_identity, int):
        low = high = images_per_identity
    else:
        try:
            low, high = (int(n) for n in images_per_identity)
        except (TypeError, ValueError):
            raise ShuffleBitsError(
                f"images_per_identity must be a count or a (low, high) range, got {images_per_identity!r}"
            ) from None
    if low < 2 or high < low:
        raise ShuffleBitsError(
            f"images_per_identity must be at least 2 (one image in each of two cameras), with low <= high; "
            f"got {images_per_identity!r}"
        )
    return low, high


def images_of(world_seed: int, pid: int, counts: tuple[int, int]) -> int:
    """How many images identity ``pid`` has: its own draw in ``counts``, a function of the world seed."""
    low, high = counts
    return low if low == high else int(stream(world_seed, pid, 4).integers(low, high + 1))


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
        images, cams = render_person(world, person, images_of(job.world_seed, pid, job.images_per_identity))
        split = "train" if pid <= job.n_train else "test"
        labels = dict(person.attributes)
        if not person.label_colours:
            labels["up_colour"] = labels["down_colour"] = -1
        out[pid] = (split, labels)
        gallery_camera = max(set(cams), key=lambda cam: (cams.count(cam), cam))
        seen: set[int] = {gallery_camera}
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
