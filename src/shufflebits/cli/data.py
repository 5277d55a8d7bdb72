"""``shufflebits synth``: generate the synthetic pedestrian world."""

from __future__ import annotations

import argparse
import time

from . import options


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="generate a synthetic pedestrian world in the Market-1501 layout",
        description="Render a synthetic re-ID world (Market-1501 folders + market_attribute.mat).",
    )
    parser.add_argument("--out", required=True, help="output folder (created atomically)")
    parser.add_argument("--identities", type=int, default=200, help="number of identities (half train, half test)")
    parser.add_argument(
        "--world-seed", type=int, default=0, help="world seed: other seeds give disjoint people and cameras"
    )
    options.add_size(parser, "128x64", "image size (default 128x64; 256x128 also common)")
    parser.add_argument(
        "--images-per-identity",
        type=_count_or_range,
        default="2-10",
        metavar="N|LOW-HIGH",
        help="images of each identity: a count, or a range each identity draws its own count from (default 2-10)",
    )
    parser.add_argument("--cameras", type=int, default=6, help="number of cameras (2-9)")
    parser.add_argument("--distractors", type=int, default=0, help="extra 0000 gallery images (bad detections)")
    parser.add_argument("--workers", type=int, default=1, help="processes rendering in parallel (same output)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    options.add_no_progress(parser)
    parser.set_defaults(func=run_synth)


def _count_or_range(text: str) -> int | tuple[int, int]:
    """``"8"`` -> 8, ``"2-10"`` -> (2, 10); limits are checked by ``generate_world``."""
    try:
        low, _, high = text.partition("-")
        return (int(low), int(high)) if high else int(low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count (8) or a range (2-10), got {text!r}") from None


def run_synth(args: argparse.Namespace) -> int:
    from ..data import generate_world
    from ..data.sizes import parse_size

    size = parse_size(args.size)
    start = time.perf_counter()
    dataset = generate_world(
        args.out,
        identities=args.identities,
        world_seed=args.world_seed,
        size=size,
        images_per_identity=args.images_per_identity,
        cameras=args.cameras,
        distractors=args.distractors,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    seconds = time.perf_counter() - start
    images = len(dataset.train) + len(dataset.query) + len(dataset.gallery)
    print(
        f"{dataset.root}: {args.identities} identities, {images} images "
        f"(train {len(dataset.train)}, query {len(dataset.query)}, gallery {len(dataset.gallery)}), "
        f"{size[0]}x{size[1]}, {images / seconds:.0f} images/s"
    )
    return 0
