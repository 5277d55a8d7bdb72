"""``shufflebits realism``: how real the synthetic world looks to a victim, measured against real labelled crops."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from . import options


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "realism",
        help="compare the synthetic world with real labelled crops through one victim",
        description="Feature statistics, a synthetic-vs-real linear classifier and the transfer of the attribute "
        "attack trained on the synthetic world to the real crops (Market-1501 layout and attribute file).",
    )
    parser.add_argument("--images", required=True, metavar="DIR", help="real crops in the Market-1501 layout")
    parser.add_argument("--attributes", required=True, metavar="FILE", help="market_attribute.mat of those crops")
    options.add_model(parser)
    parser.add_argument(
        "--synthetic-identities", type=int, default=200, help="identities of the synthetic world (default 200)"
    )
    parser.add_argument("--world-seed", type=int, default=2, help="synthetic world seed (default 2: the study's users)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    options.add_device(parser)
    options.add_no_progress(parser)
    parser.set_defaults(func=run_realism)


def _labelled(extractor, dataset, records):
    import numpy as np

    from ..attacks.types import LabelledFeatures

    return LabelledFeatures(
        features=extractor([record.path for record in records]),
        labels=dataset.labels(records),
        attribute_names=list(dataset.attribute_names),
        num_classes=[dataset.num_classes[name] for name in dataset.attribute_names],
        pids=np.array([record.pid for record in records], dtype=np.int64),
        camids=np.array([record.camid for record in records], dtype=np.int64),
    )


def run_realism(args: argparse.Namespace) -> int:
    from ..atomic import atomic_write
    from ..data import generate_world, load_market1501
    from ..models import build_extractor
    from ..study.realism import realism_gauge, transfer_attack

    extractor = build_extractor(args.model, weights=args.weights, pretrained=args.pretrained, device=args.device)
    real_set = load_market1501(args.images, args.attributes)
    real_records = [r for r in real_set.train + real_set.query + real_set.gallery if r.pid > 0]
    real = _labelled(extractor, real_set, real_records)
    with tempfile.TemporaryDirectory() as scratch:
        world = generate_world(
            Path(scratch) / "world",
            identities=args.synthetic_identities,
            world_seed=args.world_seed,
            size=extractor.input_size,
            images_per_identity=(2, 6),
            progress=not args.no_progress,
        )
        synthetic = _labelled(extractor, world, world.train + world.query + world.gallery)
    gauge = realism_gauge(synthetic, real, transfer_attack())
    print(realism_table(gauge))
    if args.json:
        with atomic_write(args.json, "w") as handle:
            handle.write(json.dumps(gauge, indent=2) + "\n")
    return 0


def realism_table(gauge: dict) -> str:
    """The gauge as aligned text: statistics side by side, then the attribute transfer."""
    synthetic, real = gauge["synthetic"], gauge["real"]
    lines = [f"{'feature statistic':<34}{'synthetic':>12}{'real':>12}"]
    for key, label in (
        ("zero_fraction", "exact-zero fraction"),
        ("mean_norm", "mean L2 norm"),
        ("mean_cosine_other_identity", "mean cosine, different identities"),
        ("n", "images"),
    ):
        lines.append(f"{label:<34}{synthetic[key]:>12.4g}{real[key]:>12.4g}")
    gap = gauge["domain_classifier"]
    lines.append(
        f"synthetic vs real, linear classifier: balanced accuracy {gap['balanced_accuracy']:.3f} "
        f"(0.5 = indistinguishable, {gap['folds']}-fold)"
    )
    transfer = gauge["attribute_transfer"]
    lines.append(f"{'attribute (trained synthetic, tested real)':<44}{'bal. acc.':>10}{'chance':>8}{'n':>6}")
    for name, per in transfer["attributes"].items():
        lines.append(f"{name:<44}{per['bacc']:>10.3f}{per['chance']:>8.3f}{per['n']:>6}")
    lines.append(f"{'mean':<44}{transfer['mean']:>10.3f}{transfer['chance_mean']:>8.3f}")
    return "\n".join(lines)
