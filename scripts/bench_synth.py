"""Synthetic world generation throughput, in images per second.

    .venv/bin/python scripts/bench_synth.py [--identities 200] [--size 128x64]

Two figures: ``generate_world`` end to end (render, JPEG, one file per image,
attribute file), and rendering + JPEG encoding in memory, which leaves out
the file system. The generator is single-threaded, so images per CPU-second
is the per-core figure; wall-clock images/s also counts other load.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

from PIL import Image

from shufflebits.data import generate_world, parse_size
from shufflebits.data.synth import make_person, make_world, render_person


def timed(work) -> tuple[int, float, float]:
    """Run ``work() -> images``; return images, wall seconds, CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    images = work()
    return images, time.perf_counter() - wall, time.process_time() - cpu


def end_to_end(identities: int, per_identity: int, size: tuple[int, int]) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        dataset = generate_world(
            Path(scratch) / "world", identities, images_per_identity=per_identity, size=size, progress=False
        )
        return len(dataset.train) + len(dataset.query) + len(dataset.gallery)


def in_memory(identities: int, per_identity: int, size: tuple[int, int]) -> int:
    world = make_world(0, size)
    count = 0
    for pid in range(1, identities + 1):
        images, _ = render_person(world, make_person(0, pid, world.season), per_identity)
        for image in images:
            Image.fromarray(image).save(io.BytesIO(), format="JPEG", quality=90)
        count += len(images)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=200)
    parser.add_argument("--images-per-identity", type=int, default=16)
    parser.add_argument("--size", default="128x64")
    parser.add_argument("--repeats", type=int, default=3, help="report the best of this many runs")
    args = parser.parse_args()
    size = parse_size(args.size)
    for name, work in (("generate_world", end_to_end), ("render+jpeg in memory", in_memory)):
        runs = [timed(lambda: work(args.identities, args.images_per_identity, size)) for _ in range(args.repeats)]
        images = runs[0][0]
        wall = max(n / w for n, w, _ in runs)
        cpu = max(n / c for n, _, c in runs)
        print(
            f"synth {size[0]}x{size[1]} {name}: {images} images, {wall:.0f} images/s wall, "
            f"{cpu:.0f} images per CPU-second (best of {args.repeats})"
        )


if __name__ == "__main__":
    main()
