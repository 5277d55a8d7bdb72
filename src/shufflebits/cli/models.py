"""``shufflebits extract`` (images -> feature file) and ``shufflebits reid`` (feature files -> CMC/mAP/mINP)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import NamedTuple

from ..errors import ShuffleBitsError
from . import options
from .he import add_release_options

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
# Market-1501 ("0001_c1s1_001051_00.jpg") and DukeMTMC-reID ("0001_c2_f0046182.jpg") names.
REID_NAME = re.compile(r"^(-1|\d+)_c(\d+)")
MARKET_SPLITS = {"query": "query", "gallery": "bounding_box_test", "train": "bounding_box_train"}


class LabelledImage(NamedTuple):
    """An image with identity and camera parsed from its name (what extract_features records)."""

    path: Path
    pid: int
    camid: int


def register(subparsers) -> None:
    extract = subparsers.add_parser(
        "extract",
        help="extract re-ID features of an image folder into a .npz (paper layout) or a .parquet store",
        description="Extract features of every .jpg/.png under --images (recursively). Market/Duke-style "
        "names (0001_c1s1_...) add pids/camids to the file, which `shufflebits reid` needs.",
    )
    options.add_model(extract)
    extract.add_argument("--images", required=True, help="image folder, or a Market-1501 root with --split")
    extract.add_argument("--split", choices=sorted(MARKET_SPLITS), help="which split of a Market-1501 root")
    extract.add_argument(
        "--out", required=True, help="output feature file (.npz or .npy), or a Parquet feature store (.parquet)"
    )
    options.add_size(extract, None, "input size (default: the checkpoint's, else 256x128)")
    extract.add_argument("--flip", action="store_true", help="flip-test: average with the mirrored image")
    extract.add_argument("--batch-size", type=int, default=64)
    options.add_device(extract)
    extract.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="L2-normalise features (default: as the weights' framework does)",
    )
    options.add_engine(extract)
    options.add_no_progress(extract, "--quiet")
    extract.set_defaults(func=run_extract)

    reid = subparsers.add_parser(
        "reid",
        help="rank-1/5/10, mAP and mINP of query vs gallery feature files (plaintext, or ciphertexts of a "
        "matchable cipher, ranked by the scheme's own comparison without the key, or a CKKS gallery)",
        description="With a CKKS --gallery (ckks-encrypt) and its --key the command plays both roles: the matcher "
        "scores the query (plaintext, or a ckks-encrypt-query file) against the ciphertexts without a key, the key "
        "holder decrypts the scores, prints the figures it computes from its full ranking and releases only what "
        "the options below allow.",
    )
    reid.add_argument(
        "--query",
        required=True,
        help="query .npz (plaintext or encrypted; for a CKKS gallery also a ckks-encrypt-query file) or .parquet "
        "store, with pids/camids",
    )
    reid.add_argument(
        "--gallery", required=True, help="gallery .npz (plaintext or encrypted) or .parquet store, with pids/camids"
    )
    reid.add_argument(
        "--key",
        type=Path,
        help="key file: decrypt encrypted .parquet stores as they are read; for a CKKS gallery, the key holder's "
        "key that decrypts the scores",
    )
    reid.add_argument(
        "--metric",
        choices=("euclidean", "cosine"),
        default=None,
        help="plaintext distance (default euclidean); ciphertexts use their scheme's",
    )
    reid.add_argument("--max-rank", type=int, default=50)
    reid.add_argument(
        "--backend",
        choices=("auto", "numpy", "faiss"),
        default="auto",
        help="what ranks the gallery (auto: FAISS from 20000 gallery rows, numpy below)",
    )
    reid.add_argument("--ivf-lists", type=int, help="approximate FAISS IVF index with this many lists (default: exact)")
    reid.add_argument("--json", action="store_true", help="print the figures as JSON")
    add_release_options(reid)
    reid.set_defaults(func=run_reid)


def find_images(folder: Path, split: str | None = None) -> list[Path]:
    """Images under ``folder`` (sorted, recursive); a Market-1501 root needs ``split``."""
    if not folder.is_dir():
        raise ShuffleBitsError(f"image folder {folder} does not exist")
    is_market_root = (folder / "query").is_dir() and (folder / "bounding_box_test").is_dir()
    if split is not None:
        if not is_market_root:
            raise ShuffleBitsError(f"--split needs a Market-1501 root (with query/, bounding_box_test/), not {folder}")
        folder = folder / MARKET_SPLITS[split]
    elif is_market_root:
        raise ShuffleBitsError(f"{folder} is a Market-1501 root: pass --split query|gallery|train")
    images = sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())
    if not images:
        raise ShuffleBitsError(f"no .jpg/.png images under {folder}")
    return images


def parse_identity(path: Path) -> tuple[int, int] | None:
    """(pid, 0-based camid) from a Market/Duke-style file name, or None."""
    match = REID_NAME.match(path.name)
    return (int(match.group(1)), int(match.group(2)) - 1) if match else None


def run_extract(args) -> int:
    from ..data.sizes import parse_size
    from ..engine.extract import extract_features
    from ..models import build_extractor

    size = parse_size(args.size) if args.size else None
    if args.batch_size <= 0:
        raise ShuffleBitsError(f"--batch-size must be positive, got {args.batch_size}")
    out = Path(args.out)
    if out.suffix not in (".npz", ".npy", ".parquet"):
        raise ShuffleBitsError(f"--out must end in .npz, .npy or .parquet, got {out.name}")
    images = find_images(Path(args.images), args.split)
    identities = [parse_identity(path) for path in images]
    if all(identity is not None for identity in identities):
        items = [LabelledImage(path, pid, camid) for path, (pid, camid) in zip(images, identities)]
    else:
        items = images
    engine = options.engine_options(args)
    build = {
        "name": args.model,
        "weights": args.weights,
        "pretrained": args.pretrained,
        "device": args.device,
        "size": size,
        "normalize": args.normalize,
        "batch_size": args.batch_size,
    }
    extractor = build_extractor(**build)
    if engine is None:
        extract_features(
            extractor, items, out, batch_size=args.batch_size, flip=args.flip, progress=not args.no_progress
        )
    else:
        from ..engine.on_ray import extract_on_ray

        extract_on_ray(build, extractor.feature_dim, items, out, batch_size=args.batch_size, flip=args.flip, **engine)
    labelled = "with pids/camids" if items is not images else "without pids/camids (names are not Market-style)"
    print(
        f"wrote {len(images)} x {extractor.feature_dim} features to {out} ({labelled}; "
        f"{extractor.input_size[0]}x{extractor.input_size[1]}, normalized={extractor.normalize_features}, "
        f"compare with --metric {extractor.distance})"
    )
    return 0


REID_FIGURES = (("rank-1", "rank1"), ("rank-5", "rank5"), ("rank-10", "rank10"), ("mAP", "mAP"), ("mINP", "mINP"))


def _reid_inputs(args) -> tuple[dict, str]:
    """Query and gallery ``(features, pids, camids)`` and the metric: plaintext files, or matchable ciphertexts."""
    from ..ciphers.catalogue import format_params
    from ..ciphers.matching import comparable, is_encrypted_file, load_matchable, match_view
    from ..features import load_features
    from ..stores import is_store, read_store

    cipher = None
    if args.key is not None:
        from ..ciphers import cipher_for_key, load_key

        cipher = cipher_for_key(load_key(args.key))
    encrypted = {
        role: not is_store(path) and is_encrypted_file(path)
        for role, path in (("query", args.query), ("gallery", args.gallery))
    }
    if len(set(encrypted.values())) != 1:
        raise ShuffleBitsError("query and gallery must both be plaintext or both encrypted feature files")
    files, sealed = {}, {}
    for role, path in (("query", args.query), ("gallery", args.gallery)):
        if encrypted[role]:
            if cipher is not None:
                raise ShuffleBitsError(
                    f"{path}: encrypted .npz files are compared without the key (--key decrypts .parquet stores)"
                )
            sealed[role], passthrough = load_matchable(path)
            features, metric = match_view(sealed[role])
            pids, camids = passthrough.get("pids"), passthrough.get("camids")
        else:
            if is_store(path):
                loaded = read_store(path, cipher)
            elif cipher is not None:
                raise ShuffleBitsError(
                    f"--key decrypts .parquet stores; decrypt {path} with `shufflebits decrypt` first"
                )
            else:
                loaded = load_features(path)
            features, pids, camids, metric = loaded.features, loaded.pids, loaded.camids, args.metric or "euclidean"
        if pids is None or camids is None:
            raise ShuffleBitsError(f"{path} has no pids/camids; extract it from Market-style image names")
        files[role] = (features, pids, camids)
    if sealed:
        comparable(sealed["query"], sealed["gallery"])
        if args.metric is not None and args.metric != metric:
            raise ShuffleBitsError(f"{sealed['query'].cipher} ciphertexts are compared by {metric}, not {args.metric}")
        params = f" ({format_params(sealed['query'].params)})" if sealed["query"].params else ""
        print(
            f"comparing {sealed['query'].cipher}{params} ciphertexts by {metric} without the key "
            "(so their file MACs are not checked)",
            file=sys.stderr,
        )
    return files, metric


def run_reid(args) -> int:
    from ..ciphers.ckks_files import is_ckks_gallery
    from ..reid import evaluate
    from ..reid.metrics import matches_per_query
    from ..study.numbers import figure

    if is_ckks_gallery(args.gallery):
        from .he import ckks_reid

        result, metric = ckks_reid(args)
        if result is None:  # no pids/camids: the release was all there was to do
            return 0
        result.update(metric=metric, backend="ckks")
    else:
        from .he import refuse_ckks_inputs

        refuse_ckks_inputs(args)
        files, metric = _reid_inputs(args)
        (qf, qp, qc), (gf, gp, gc) = files["query"], files["gallery"]
        result = evaluate(
            qf,
            gf,
            qp,
            gp,
            qc,
            gc,
            metric=metric,
            max_rank=args.max_rank,
            backend=args.backend,
            ivf_lists=args.ivf_lists,
        )
        result["matches_per_query"] = matches_per_query(qp, gp, qc, gc)
    if args.json:
        print(json.dumps({**result, "cmc": [float(v) for v in result["cmc"]]}))
        return 0
    shown = "  ".join(f"{name} {figure(result[key])}" for name, key in REID_FIGURES)
    if result.get("matches_per_query") == [1, 1]:
        shown += "  (mAP = mINP: each query has one correct gallery match)"
    print(
        f"{shown}  (fractions; {metric}, ranked by {result['backend']}; {result['num_query']} queries, "
        f"{result['num_skipped']} skipped without a valid match)"
    )
    return 0
