"""Feature-extraction throughput of OSNet-x0.25 at 256x128 and 128x64 on this machine.

Two figures per size: the model alone on preprocessed batches, and end to end
(``extract_features`` on JPEG files: decode, resize, normalise, model, write
the .npz). Images are 128x64 JPEG crops written to a temporary folder (Market-
1501's native size), so nothing outside the checkout is needed; the real
torchreid weights are used when ../shared has them (speed does not depend on
the weight values).

    .venv/bin/python scripts/bench_extract.py [--images 512] [--batch-size 64] [--threads N]

Run it on an otherwise idle machine: with more busy processes than cores,
torch's OpenMP threads wait on each other at every layer and OSNet's many
small layers make that dominate (figures drop by 10x or more).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from shufflebits.engine.extract import extract_features
from shufflebits.models import build_extractor

SHARED_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights" / "osnet_x0_25_msmt17.pth"
SIZES = ((256, 128), (128, 64))


def write_crops(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        pixels = rng.integers(0, 256, size=(128, 64, 3), dtype=np.uint8)
        path = folder / f"{index:04d}_c1s1_{index:06d}_00.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def model_only(extractor, count: int, batch_size: int) -> float:
    batch = np.random.default_rng(1).standard_normal((batch_size, 3, *extractor.input_size)).astype(np.float32)
    extractor.embed_array(batch)  # warm-up
    done, start = 0, time.perf_counter()
    while done < count:
        extractor.embed_array(batch)
        done += batch_size
    return done / (time.perf_counter() - start)


def end_to_end(extractor, paths: list[Path], batch_size: int, out: Path) -> float:
    extract_features(extractor, paths[:batch_size], out, batch_size=batch_size, progress=False)  # warm-up
    start = time.perf_counter()
    extract_features(extractor, paths, out, batch_size=batch_size, progress=False)
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    weights = SHARED_WEIGHTS if SHARED_WEIGHTS.is_file() else None
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, weights: {weights or 'random'}")
    print(f"{args.images} images, batch {args.batch_size}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_crops(Path(tmp), args.images)
        for size in SIZES:
            extractor = build_extractor("osnet_x0_25", weights=weights, size=size, batch_size=args.batch_size)
            rows.append(
                (
                    f"{size[0]}x{size[1]}",
                    model_only(extractor, args.images, args.batch_size),
                    end_to_end(extractor, paths, args.batch_size, Path(tmp) / "features.npz"),
                )
            )
    print(f"{'input':>8} | {'model only (img/s)':>18} | {'end to end (img/s)':>18}")
    for size, model_rate, e2e_rate in rows:
        print(f"{size:>8} | {model_rate:18.1f} | {e2e_rate:18.1f}")
    (_, model_big, e2e_big), (_, model_small, e2e_small) = rows
    print(f"speed-up 128x64 vs 256x128: model {model_small / model_big:.2f}x, end to end {e2e_small / e2e_big:.2f}x")


if __name__ == "__main__":
    main()
